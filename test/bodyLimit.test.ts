import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import http from "node:http";
import {after, before, describe, it} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {ConfigError, DEFAULT_MAX_BODY_BYTES, parseServeArgs} from "../server/config.js";
import {rawUpload} from "./helpers/rawUpload.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";
import {useTestServer} from "./helpers/testServer.js";

const MODEL = "stories260K";
const MiB = 1024 * 1024;
/** The size of body that Node's fetch saw reset five times in six when a 413 closed the connection under it. */
const SIXTY_MB = 60_000_000;

/** In this process: the default limit, and lingering bounds (no flag sets them) small enough to reach in a test. */
const LINGER = {bytes: 8 * MiB, ms: 1500};
const local = useTestServer({ctxSize: 256, parallel: 1, linger: LINGER});

/**
 * A server in a process of its own, as clients meet it: in one process the client's writes and the server's close
 * take turns on one event loop, and the reset that Node's fetch saw five times in six never shows.
 */
const server = {url: "", baseURL: "", pid: 0};
let stopServer: () => Promise<unknown> = async () => undefined;
before(async () => {
    const hearth = spawnHearth(["serve", "--model", await testModel("stories260K.gguf"), "--port", "0", "--threads", "1", "--parallel", "2", "--ctx-size", "256",
        "--gpu", "cpu", "--max-body-size", "4mb"]);
    const [, url] = await hearth.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    await hearth.waitForOutput(/Ready/);
    Object.assign(server, {url, baseURL: `${url}/v1`, pid: hearth.child.pid});
    stopServer = () => {
        hearth.child.kill("SIGTERM");
        return hearth.exited;
    };
});
after(() => stopServer());

/** The most memory the server's process has held since it started (Linux's `VmHWM`). */
function peakMemoryBytes(pid: number): number {
    return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;
}

/** A chat request whose body is about `bytes` long. */
function chatBody(bytes: number): string {
    return JSON.stringify({model: MODEL, messages: [{role: "user", content: "x".repeat(bytes)}], max_tokens: 2});
}

function countingFetch(): {fetch: typeof fetch, calls: () => number} {
    let calls = 0;
    return {fetch: (input, init) => {
        calls++;
        return fetch(input, init);
    }, calls: () => calls};
}

function assertExplains413(message: string, limitText = "4 MiB"): void {
    assert.match(message, new RegExp(`limit of ${limitText}`), message);
    assert.match(message, /--max-body-size \d+mb/, message);
    assert.match(message, /HEARTH_MAX_BODY_SIZE/, message);
}

describe("--max-body-size", () => {
    it("reads a size with a unit from the flag or HEARTH_MAX_BODY_SIZE, defaults to 128 MiB, and refuses what it cannot read", () => {
        assert.equal(DEFAULT_MAX_BODY_BYTES, 128 * MiB);
        assert.equal(parseServeArgs([], {}, "/work").config.maxBodyBytes, 128 * MiB);
        assert.equal(parseServeArgs(["--max-body-size", "256mb"], {HEARTH_MAX_BODY_SIZE: "64mb"}, "/work").config.maxBodyBytes, 256 * MiB);
        assert.equal(parseServeArgs([], {HEARTH_MAX_BODY_SIZE: "1.5MiB"}, "/work").config.maxBodyBytes, 1.5 * MiB);
        assert.equal(parseServeArgs(["--max-body-size", "2097152"], {}, "/work").config.maxBodyBytes, 2 * MiB);
        assert.equal(parseServeArgs(["--max-body-size", "500m"], {}, "/work").config.maxBodyBytes, 500 * MiB);
        for (const value of ["lots", "12parsecs", "0.5mb", "100kb", "1gb"])
            assert.throws(() => parseServeArgs(["--max-body-size", value], {}, "/work"),
                (error: unknown) => error instanceof ConfigError && error.message.includes(`--max-body-size must be a size from 1mb to 500mb, such as 64mb or 256mb, got "${value}"`), value);
    });

    it("fits four full-size images by default: a 110 MB body is read", async () => {
        // Four 20 MiB photos as base64 are 4 * 20 MiB * 4/3; the field is one the server ignores, so the model answers.
        const response = await fetch(`${local.baseURL}/chat/completions`, {
            method: "POST", headers: {"content-type": "application/json"},
            body: JSON.stringify({model: MODEL, messages: [{role: "user", content: "Once upon a time"}], max_tokens: 2, metadata_padding: "A".repeat(110_000_000)})
        });
        assert.equal(response.status, 200, await response.clone().text());
        assert.equal(((await response.json()) as {object: string}).object, "chat.completion");
    });
});

describe("a body over the limit", () => {
    it("gets 413 in each API's own error shape, saying the size, the limit and how to raise it", async () => {
        const body = chatBody(5 * MiB);
        const post = (path: string) => fetch(`${server.url}${path}`, {method: "POST", headers: {"content-type": "application/json"}, body});
        const openAi = await post("/v1/chat/completions");
        assert.equal(openAi.status, 413);
        const openAiBody = await openAi.json() as {error: {message: string, type: string, code: string}};
        assert.equal(openAiBody.error.type, "invalid_request_error");
        assert.equal(openAiBody.error.code, "request_too_large");
        assertExplains413(openAiBody.error.message);
        assert.match(openAiBody.error.message, /The request body is 5\.0 MiB, over/);
        assert.match(openAiBody.error.message, /--max-body-size 64mb/);

        const responses = await post("/v1/responses");
        assert.equal(responses.status, 413);
        assertExplains413((await responses.json() as {error: {message: string}}).error.message);

        const anthropic = await post("/v1/messages");
        assert.equal(anthropic.status, 413);
        const anthropicBody = await anthropic.json() as {type: string, error: {type: string, message: string}};
        assert.equal(anthropicBody.type, "error");
        assert.equal(anthropicBody.error.type, "request_too_large");
        assertExplains413(anthropicBody.error.message);

        for (const path of ["/api/chat", "/api/generate"]) {
            const ollama = await post(path);
            assert.equal(ollama.status, 413, path);
            const ollamaBody = await ollama.json() as {error: string};
            assert.deepEqual(Object.keys(ollamaBody), ["error"]);
            assertExplains413(ollamaBody.error);
        }
    });

    it("sent chunked, without a Content-Length, gets the same 413 once the limit is passed", async () => {
        const chunk = new TextEncoder().encode("x".repeat(MiB));
        let sent = 0;
        const stream = new ReadableStream<Uint8Array>({
            pull(controller) {
                if (sent++ < 12)
                    controller.enqueue(chunk);
                else
                    controller.close();
            }
        });
        const response = await fetch(`${server.url}/v1/chat/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: stream, duplex: "half"} as RequestInit);
        assert.equal(response.status, 413);
        const {error} = await response.json() as {error: {message: string}};
        assertExplains413(error.message);
        assert.match(error.message, /The request body is over this server's limit/);
    });

    it("reaches Node's fetch as a 413 it can read, six times in six, and the server goes on answering", async () => {
        const body = chatBody(SIXTY_MB);
        const outcomes: string[] = [];
        for (let attempt = 0; attempt < 6; attempt++) {
            try {
                const response = await fetch(`${server.baseURL}/chat/completions`, {method: "POST", headers: {"content-type": "application/json"}, body});
                const {error} = await response.json() as {error: {message: string}};
                outcomes.push(`${response.status} ${/limit of 4 MiB/.test(error.message)}`);
            } catch (error) {
                outcomes.push(String((error as {cause?: {code?: string}}).cause?.code ?? error));
            }
        }
        assert.deepEqual(outcomes, Array(6).fill("413 true"));
        const completion = await new OpenAI({baseURL: server.baseURL, apiKey: "x", maxRetries: 0}).chat.completions.create({model: MODEL, messages: [{role: "user", content: "Once upon a time"}], max_tokens: 2});
        assert.equal(completion.object, "chat.completion");
    });

    it("raises a 413 error in the openai SDK six times in six, each without a retry", async () => {
        const counter = countingFetch();
        const client = new OpenAI({baseURL: server.baseURL, apiKey: "x", maxRetries: 2, fetch: counter.fetch});
        const content = "x".repeat(SIXTY_MB);
        for (let attempt = 0; attempt < 6; attempt++) {
            const error = await client.chat.completions.create({model: MODEL, messages: [{role: "user", content}]}).then(() => undefined, (caught: unknown) => caught);
            assert.ok(error instanceof OpenAI.APIError && !(error instanceof OpenAI.APIConnectionError), String(error));
            assert.equal(error.status, 413);
            assertExplains413(error.message);
        }
        assert.equal(counter.calls(), 6);
    });

    it("raises a 413 request_too_large error in the Anthropic SDK six times in six, each without a retry", async () => {
        const counter = countingFetch();
        const client = new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 2, fetch: counter.fetch});
        const content = "x".repeat(SIXTY_MB);
        for (let attempt = 0; attempt < 6; attempt++) {
            const error = await client.messages.create({model: MODEL, max_tokens: 2, messages: [{role: "user", content}]}).then(() => undefined, (caught: unknown) => caught);
            assert.ok(error instanceof Anthropic.APIError && !(error instanceof Anthropic.APIConnectionError), String(error));
            assert.equal(error.status, 413);
            assert.equal((error.error as {error?: {type?: string}}).error?.type, "request_too_large");
            assertExplains413(error.message);
        }
        assert.equal(counter.calls(), 6);
    });

    it("declared in Content-Length is answered before the upload, and a client that sends it all anyway reads the 413 and keeps its connection", async () => {
        const first = await rawUpload(`${server.url}/v1/chat/completions`, {declaredBytes: SIXTY_MB, sendBytes: SIXTY_MB, bodyAfterAnswer: true});
        try {
            assert.equal(first.status, 413);
            assert.equal(first.sentBytesAtResponse, 0);
            assert.equal(first.errorCode, undefined, "the whole body was taken");
            assert.equal(first.sentBytes, SIXTY_MB);
            assertExplains413(first.body!);
            // The body was read to its end, so the connection is in step and serves the next request.
            const second = await rawUpload(`${server.url}/v1/chat/completions`, {declaredBytes: SIXTY_MB, sendBytes: SIXTY_MB, socket: first.socket});
            assert.equal(second.status, 413);
            assert.equal(second.errorCode, undefined);
            assertExplains413(second.body!);
        } finally {
            first.socket.destroy();
        }
    });

    it("with Expect: 100-continue is answered without a 100 Continue, so nothing is uploaded; a body within the limit gets one", async () => {
        const refused = await rawUpload(`${server.url}/v1/chat/completions`, {declaredBytes: SIXTY_MB, sendBytes: SIXTY_MB, expectContinue: true});
        refused.socket.destroy();
        assert.equal(refused.status, 413);
        assert.equal(refused.continued, false);
        assert.equal(refused.sentBytes, 0);
        assertExplains413(refused.body!);
        const small = await rawUpload(`${server.url}/v1/chat/completions`, {declaredBytes: 64 * 1024, sendBytes: 64 * 1024, expectContinue: true});
        small.socket.destroy();
        assert.equal(small.continued, true);
        assert.equal(small.sentBytes, 64 * 1024);
        assert.equal(small.status, 400, "the body came and was read: it is not JSON");
    });

    it("is thrown away as it comes, not kept: 200 MB after the 413 leave the server's memory where it was", async () => {
        const sizeBytes = 200 * MiB;
        const before = peakMemoryBytes(server.pid);
        const outcome = await rawUpload(`${server.url}/v1/chat/completions`, {declaredBytes: sizeBytes, sendBytes: sizeBytes});
        outcome.socket.destroy();
        assert.equal(outcome.status, 413);
        assert.equal(outcome.errorCode, undefined);
        assert.equal(outcome.sentBytes, sizeBytes);
        const grownBytes = peakMemoryBytes(server.pid) - before;
        // Keeping the body would add its 200 MiB; reading it in chunks that are dropped at once lets the heap grow a little.
        assert.ok(grownBytes < 64 * MiB, `the server's peak memory grew by ${Math.round(grownBytes / MiB)} MiB while it discarded ${sizeBytes / MiB} MiB`);
    });
});

describe("discarding a refused body has bounds", () => {
    const overDefault = DEFAULT_MAX_BODY_BYTES + MiB;

    it("past the bytes bound the connection is cut, after the 413 was read", async () => {
        const outcome = await rawUpload(`${local.url}/v1/chat/completions`, {declaredBytes: overDefault, sendBytes: overDefault});
        outcome.socket.destroy();
        assert.equal(outcome.status, 413);
        assertExplains413(outcome.body!, "128 MiB");
        assert.ok(outcome.errorCode != null, "the upload was cut");
        assert.ok(outcome.sentBytes < LINGER.bytes + 32 * MiB, `${outcome.sentBytes} bytes were taken`);
    });

    it("past the time bound a client that stalls is cut off", async () => {
        const started = performance.now();
        const closed = await new Promise<{status?: number, closedAfterMs: number}>((resolve) => {
            const request = http.request(`${local.url}/v1/chat/completions`, {method: "POST", headers: {"content-type": "application/json", "content-length": String(overDefault)}});
            let status: number | undefined;
            request.on("response", (response) => {
                status = response.statusCode;
                response.resume();
            });
            request.on("error", () => undefined);
            request.on("close", () => resolve({status, closedAfterMs: performance.now() - started}));
            request.write(Buffer.alloc(MiB));
        });
        assert.equal(closed.status, 413);
        assert.ok(closed.closedAfterMs >= LINGER.ms - 100 && closed.closedAfterMs < LINGER.ms + 3000, `closed after ${Math.round(closed.closedAfterMs)} ms`);
    });

    it("leaves other requests as they were: a streamed reply after the refusals is whole", async () => {
        const stream = await local.client.chat.completions.create({model: MODEL, messages: [{role: "user", content: "Once upon a time"}], max_tokens: 8, stream: true});
        let finishReason: string | null | undefined;
        for await (const chunk of stream)
            finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
        assert.equal(finishReason, "length");
    });
});
