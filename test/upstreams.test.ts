import assert from "node:assert/strict";
import {mkdtemp, rm} from "node:fs/promises";
import {request as httpRequest} from "node:http";
import type {IncomingMessage} from "node:http";
import os from "node:os";
import path from "node:path";
import {Writable} from "node:stream";
import {after, before, describe, test} from "node:test";
import fc from "fast-check";
import OpenAI from "openai";
import {parseServeArgs} from "../server/config.js";
import {SseRelay} from "../server/upstreams/SseRelay.js";
import {metricValue} from "./helpers/metrics.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {assertLoadSurvived, startChatLoad, upstreamFailures} from "./helpers/chatLoad.js";
import {eventually} from "./helpers/eventually.js";
import {upstreamsOf} from "./helpers/upstreamViews.js";
import type {UpstreamView} from "./helpers/upstreamViews.js";
import {tinyUpstream} from "./helpers/tinyUpstream.js";


const MODEL = "stories260K";
const UPSTREAM_KEY = "upstream-secret-key-b";

async function upstreamsUp(server: TestServer, count: number, headers: Record<string, string> = {}): Promise<UpstreamView[]> {
    return eventually(async () => {
        const upstreams = await upstreamsOf(server, headers);
        assert.equal(upstreams.filter((upstream) => upstream.health === "up").length, count, JSON.stringify(upstreams));
        return upstreams;
    });
}

async function metricsOf(url: string, headers: Record<string, string> = {}): Promise<string> {
    const response = await fetch(`${url}/metrics`, {headers});
    assert.equal(response.status, 200);
    return response.text();
}

/** Chat completions a Hearth server has answered (any status), from its own `/metrics`. */
async function chatRequestsServed(url: string, headers: Record<string, string> = {}): Promise<number> {
    const text = await metricsOf(url, headers);
    let total = 0;
    for (const line of text.split("\n"))
        if (line.startsWith("hearth_http_requests_total{") && line.includes('route="/v1/chat/completions"'))
            total += Number(line.split(" ").at(-1));
    return total;
}

const chatReply = (model: string, text: string) => ({
    id: "chatcmpl-tiny", object: "chat.completion", created: 1, model,
    choices: [{index: 0, message: {role: "assistant", content: text}, finish_reason: "stop"}],
    usage: {prompt_tokens: 3, completion_tokens: 2, total_tokens: 5}
});

/** Events of about 1 KB the "firehose" upstream sends: some 8 MB, more than loopback sockets hold. */
const FIREHOSE_EVENTS = 8192;

const ask = {messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0};

describe("upstreams: Hearth in front of other OpenAI-compatible servers", () => {
    let upstreamA: TestServer;
    let upstreamB: TestServer;
    let front: TestServer;
    const frontLogs: string[] = [];

    before(async () => {
        [upstreamA, upstreamB] = await Promise.all([
            startTestServer(),
            startTestServer({modelFiles: ["stories260K.gguf", "derived/stories260K-F16.gguf"], apiKeys: [UPSTREAM_KEY]})
        ]);
        front = await startTestServer({
            modelFiles: [],
            upstreams: [{url: upstreamA.url, key: undefined}, {url: `${upstreamB.url}/v1`, key: UPSTREAM_KEY}],
            logger: {level: "info", stream: new Writable({write(chunk: Buffer, _encoding, done) {
                frontLogs.push(chunk.toString());
                done();
            }})}
        });
        await upstreamsUp(front, 2);
    });
    after(async () => {
        await front?.close();
        await Promise.all([upstreamA?.close(), upstreamB?.close()]);
    });

    test("the SDK sees the upstreams' models, owned by the upstreams, and gets chat completions from them, streamed and not", async () => {
        const models = await front.client.models.list();
        const entry = models.data.find((model) => model.id === MODEL);
        assert.ok(entry != null, JSON.stringify(models.data));
        const [nameA, nameB] = [new URL(upstreamA.url).host, new URL(upstreamB.url).host];
        assert.deepEqual(entry.owned_by.split(", ").sort(), [nameA, nameB].sort());
        assert.equal(models.data.find((model) => model.id === "stories260K-F16")?.owned_by, nameB);
        assert.equal((await front.client.models.retrieve("stories260K-F16")).owned_by, nameB);

        const completion = await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 12});
        assert.equal(completion.object, "chat.completion");
        assert.equal(completion.model, MODEL);
        assert.ok(completion.choices[0]!.message.content!.length > 0);
        assert.ok(completion.usage!.completion_tokens > 0);

        const stream = await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 12, stream: true, stream_options: {include_usage: true}});
        let text = "";
        let chunks = 0;
        let usage;
        for await (const chunk of stream) {
            chunks += 1;
            text += chunk.choices[0]?.delta.content ?? "";
            usage = chunk.usage ?? usage;
        }
        assert.ok(chunks > 3, `only ${chunks} chunks`);
        assert.equal(text, completion.choices[0]!.message.content);
        assert.equal(usage?.completion_tokens, completion.usage!.completion_tokens);

        // The upstream's key went to it (it needs one) and nowhere else: not in /api/upstreams, not in the log.
        const listed = await upstreamsOf(front);
        assert.equal(listed.find((upstream) => upstream.name === nameB)?.has_key, true);
        assert.ok(!JSON.stringify(listed).includes(UPSTREAM_KEY));
        assert.ok(frontLogs.length > 0 && !frontLogs.join("").includes(UPSTREAM_KEY));
    });

    test("completions, embeddings and responses are forwarded too", async () => {
        const completion = await front.client.completions.create({model: MODEL, prompt: "Once upon a time", max_tokens: 8, temperature: 0});
        assert.ok(completion.choices[0]!.text.length > 0);
        const embedding = await front.client.embeddings.create({model: "stories260K-F16", input: ["a", "b"]});
        assert.equal(embedding.data.length, 2);
        assert.equal(embedding.data[0]!.embedding.length, 64);
        const response = await front.client.responses.create({model: MODEL, input: "Once upon a time", max_output_tokens: 8});
        assert.equal(response.object, "response");
        assert.ok(response.output_text.length > 0);
        const events: string[] = [];
        for await (const event of await front.client.responses.create({model: MODEL, input: "Once upon a time", max_output_tokens: 8, stream: true}))
            events.push(event.type);
        assert.equal(events[0], "response.created");
        assert.match(events.at(-1)!, /^response\.(completed|incomplete)$/);
    });

    test("concurrent requests are spread over both upstreams serving the model (least outstanding)", async () => {
        const keyB = {authorization: `Bearer ${UPSTREAM_KEY}`};
        const [beforeA, beforeB] = await Promise.all([chatRequestsServed(upstreamA.url), chatRequestsServed(upstreamB.url, keyB)]);
        await Promise.all(Array.from({length: 8}, () => front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 24})));
        const [servedA, servedB] = [await chatRequestsServed(upstreamA.url) - beforeA, await chatRequestsServed(upstreamB.url, keyB) - beforeB];
        assert.equal(servedA + servedB, 8);
        assert.ok(servedA >= 2 && servedB >= 2, `A answered ${servedA}, B ${servedB}`);

        const metrics = await metricsOf(front.url);
        const nameA = new URL(upstreamA.url).host;
        assert.ok(metricValue(metrics, "hearth_upstream_requests_total", {upstream: nameA, status: "200"})! >= 2);
        assert.equal(metricValue(metrics, "hearth_upstream_up", {upstream: nameA}), 1);
        assert.equal(metricValue(metrics, "hearth_upstream_in_flight", {upstream: nameA}), 0);
        assert.ok(metricValue(metrics, "hearth_upstream_request_duration_seconds_count", {upstream: nameA})! >= 2);
    });

    test("a client that aborts a stream frees the upstream: its request ends there and the in-flight count returns to 0", async () => {
        const stream = await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 1500, stream: true});
        let chunks = 0;
        for await (const chunk of stream) {
            void chunk;
            if (++chunks < 3)
                continue;
            assert.deepEqual((await upstreamsOf(front)).map((upstream) => upstream.in_flight).sort(), [0, 1]);
            break;
        }
        // Leaving the loop aborts the SDK's request; the reply had 1,500 tokens to go.
        assert.equal(chunks, 3);
        await eventually(async () => {
            assert.deepEqual((await upstreamsOf(front)).map((upstream) => upstream.in_flight), [0, 0]);
            assert.equal(metricValue(await metricsOf(upstreamA.url), "hearth_busy_slots", {model: MODEL}), 0);
            assert.equal(metricValue(await metricsOf(upstreamB.url, {authorization: `Bearer ${UPSTREAM_KEY}`}), "hearth_busy_slots", {model: MODEL}), 0);
        }, 5000);
    });

    test("random client aborts, streamed and not, at any point, leave nothing in flight here or upstream", async () => {
        await Promise.all(Array.from({length: 30}, async (_, index) => {
            const controller = new AbortController();
            setTimeout(() => controller.abort(), Math.floor(Math.random() * 300));
            try {
                const response = await fetch(`${front.baseURL}/chat/completions`, {
                    method: "POST", headers: {"content-type": "application/json"}, signal: controller.signal,
                    body: JSON.stringify({model: MODEL, ...ask, max_tokens: 400, stream: index % 2 === 0})
                });
                await response.text();
            } catch (error) {
                assert.equal((error as Error).name, "AbortError");
            }
        }));
        await eventually(async () => {
            assert.deepEqual((await upstreamsOf(front)).map((upstream) => upstream.in_flight), [0, 0]);
            assert.equal(metricValue(await metricsOf(upstreamA.url), "hearth_busy_slots", {model: MODEL}), 0);
            assert.equal(metricValue(await metricsOf(upstreamB.url, {authorization: `Bearer ${UPSTREAM_KEY}`}), "hearth_busy_slots", {model: MODEL}), 0);
        }, 10_000);
        assert.deepEqual((await upstreamsOf(front)).map((upstream) => upstream.health), ["up", "up"]);
        assert.ok((await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 4})).choices.length === 1);
    });

    test("an upstream killed under load costs no request that had not started streaming, and none after it is marked down", async (t) => {
        // The victim also serves the model under a name of its own, so one stream is sure to be running on it when it dies.
        const victim = spawnHearth(["serve", "--model", await testModel("stories260K.gguf"), "--alias", "victim-only", "--port", "0", "--threads", "1", "--gpu", "cpu"]);
        try {
            const url = (await victim.waitForOutput(/listening on (http:\/\/\S+) /))[1]!;
            await victim.waitForOutput(/Ready/);
            const added = await fetch(`${front.url}/api/upstreams`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({url})});
            assert.equal(added.status, 201);
            const victimView = await added.json() as UpstreamView;
            assert.equal(victimView.health, "up");
            assert.deepEqual(victimView.models.sort(), [MODEL, "victim-only"]);

            let ownChunks = 0;
            const ownStream = (async () => {
                for await (const chunk of await front.client.chat.completions.create({model: "victim-only", ...ask, max_tokens: 4000, stream: true})) {
                    void chunk;
                    ownChunks += 1;
                }
            })();
            ownStream.catch(() => undefined);
            await eventually(async () => assert.ok(ownChunks > 0));

            const load = startChatLoad(front.client, {model: MODEL, ...ask, max_tokens: 200});
            await eventually(async () => {
                const view = (await upstreamsOf(front)).find((upstream) => upstream.id === victimView.id)!;
                assert.ok(view.in_flight >= 3, `the victim has ${view.in_flight} requests in flight`);
            }, 20_000);
            victim.child.kill("SIGKILL");

            // The stream running on it when it died ends with the error event, at once.
            await assert.rejects(ownStream, (error: Error) => error.constructor.name === "APIError" && /stopped in the middle of its reply/.test(error.message));
            const brokenStreams = await assertLoadSurvived(load);
            const name = new URL(url).host;
            const failedOnVictim = upstreamFailures(await metricsOf(front.url), name);
            t.diagnostic(`the kill failed ${failedOnVictim} requests on the victim: ${brokenStreams + 1} streams that had begun (its own model's included), the rest retried elsewhere; `
                + `18 of 18 plain requests and ${9 - brokenStreams} of 9 streams completed`);
            assert.ok(failedOnVictim >= 1, "the kill hit no request in flight");

            const view = (await upstreamsOf(front)).find((upstream) => upstream.id === victimView.id)!;
            assert.equal(view.health, "down");
            const sentToVictim = () => metricsOf(front.url).then((text) => metricValue(text, "hearth_upstream_requests_total", {upstream: name, status: "200"}) ?? 0);
            const before = await sentToVictim();
            const afterwards = await Promise.all(Array.from({length: 8}, () => front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 8})));
            assert.equal(afterwards.length, 8);
            assert.equal(await sentToVictim(), before);
            const orphan = await fetch(`${front.baseURL}/chat/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: "victim-only", ...ask})});
            assert.equal(orphan.status, 503);
            assert.ok(Number(orphan.headers.get("retry-after")) >= 1);

            const removed = await fetch(`${front.url}/api/upstreams/${victimView.id}`, {method: "DELETE"});
            assert.equal(removed.status, 204);
        } finally {
            victim.child.kill("SIGKILL");
        }
    });

    test("the front's request log and audit log record routed requests with their model and tokens", async () => {
        await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 6});
        const audit = await (await fetch(`${front.url}/api/audit?limit=50`)).json() as {entries: {path: string, model: string, status: number, completion_tokens: number | null}[]};
        const entry = audit.entries.find((candidate) => candidate.path === "/v1/chat/completions" && candidate.status === 200);
        assert.equal(entry?.model, MODEL);
        assert.ok(entry.completion_tokens! > 0);
    });
});

describe("upstreams: failures are answered, never a crash", () => {
    let front: TestServer;
    const tiny: Awaited<ReturnType<typeof tinyUpstream>>[] = [];

    before(async () => {
        tiny.push(await tinyUpstream(["garbled"], (request) => {
            request.socket.end("this is not HTTP\r\n\r\n");
        }));
        tiny.push(await tinyUpstream(["plain-text"], (_request, response) => {
            response.writeHead(200, {"content-type": "text/html"});
            response.end("<html>hello</html>");
        }));
        tiny.push(await tinyUpstream(["sleepy"], () => undefined));
        tiny.push(await tinyUpstream(["echo"], (_request, response) => {
            response.writeHead(500, {"content-type": "application/json"});
            response.end(JSON.stringify({error: {message: "boom", type: "server_error", param: null, code: null}}));
        }));
        tiny.push(await tinyUpstream(["echo"], (_request, response, body) => {
            response.writeHead(200, {"content-type": "application/json"});
            response.end(JSON.stringify(chatReply(String(body.model), "hi")));
        }));
        tiny.push(await tinyUpstream(["breaker"], (_request, response, body) => {
            response.writeHead(200, {"content-type": "text/event-stream"});
            const chunk = (content: string) => `data: ${JSON.stringify({id: "c", object: "chat.completion.chunk", created: 1, model: body.model, choices: [{index: 0, delta: {content}, finish_reason: null}]})}\n\n`;
            response.write(chunk("one "));
            // The second event arrives cut in half, then the connection dies.
            response.write(`${chunk("two ")}${chunk("three").slice(0, 20)}`, () => setTimeout(() => response.socket?.destroy(), 50));
        }));
        tiny.push(await tinyUpstream(["breaker-responses"], (_request, response) => {
            response.writeHead(200, {"content-type": "text/event-stream"});
            response.write('event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1"}}\n\n');
            response.write('event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":1,"delta":"one"}\n\n',
                () => setTimeout(() => response.socket?.destroy(), 50));
        }));
        tiny.push(await tinyUpstream(["locked"], (_request, response) => {
            response.writeHead(401, {"content-type": "application/json"});
            response.end(JSON.stringify({error: {message: "Invalid API key", type: "invalid_request_error", param: null, code: "invalid_api_key"}}));
        }));
        tiny.push(await tinyUpstream(["flood"], (_request, response) => {
            // One "event" that never ends: it must not be held in memory without bound.
            response.writeHead(200, {"content-type": "text/event-stream"});
            response.write("data: ");
            const block = "x".repeat(64 * 1024);
            for (let index = 0; index < 160; index++)
                response.write(block);
        }));
        tiny.push(await tinyUpstream(["stalls"], (_request, response) => {
            response.writeHead(200, {"content-type": "text/event-stream"});
            response.write('data: {"choices":[{"index":0,"delta":{"content":"one "}}]}\n\n');
        }));
        tiny.push(await tinyUpstream(["firehose"], (_request, response) => {
            // More than the sockets on the way hold: the front must stop reading while its client does.
            response.writeHead(200, {"content-type": "text/event-stream"});
            const event = `data: ${JSON.stringify({choices: [{index: 0, delta: {content: "x".repeat(1000)}}]})}\n\n`;
            for (let index = 0; index < FIREHOSE_EVENTS; index++)
                response.write(event);
            response.end("data: [DONE]\n\n");
        }));
        tiny.push(await tinyUpstream(["one-shot"], (_request, response, body) => {
            // A whole short stream in one write: its end comes right after its first and only chunk.
            response.writeHead(200, {"content-type": "text/event-stream"});
            const chunk = (delta: object, finish: string | null) => `data: ${JSON.stringify({id: "c", object: "chat.completion.chunk", created: 1, model: body.model, choices: [{index: 0, delta, finish_reason: finish}]})}\n\n`;
            response.end(`${chunk({role: "assistant", content: "all "}, null)}${chunk({content: "at once"}, "stop")}data: [DONE]\n\n`);
        }));
        front = await startTestServer({modelFiles: [], upstreams: tiny.map(({url}) => ({url, key: undefined})), upstreamTimeoutMs: 1000});
        await upstreamsUp(front, tiny.length);
    });
    after(async () => {
        await front?.close();
        await Promise.all(tiny.map((server) => server.close()));
    });

    const post = (model: string, extra: object = {}) => fetch(`${front.url}/v1/chat/completions`, {
        method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model, ...ask, ...extra})
    });

    test("a stream that arrives whole in one chunk is relayed whole, streamed and not", async () => {
        const client = new OpenAI({baseURL: `${front.url}/v1`, apiKey: "x", maxRetries: 0});
        for (let round = 0; round < 5; round++) {
            let text = "";
            for await (const chunk of await client.chat.completions.create({model: "one-shot", ...ask, stream: true}))
                text += chunk.choices[0]?.delta.content ?? "";
            assert.equal(text, "all at once");
        }
    });

    test("an upstream that answers something that is not HTTP, or not JSON, gets a 502 in OpenAI's shape", async () => {
        for (const model of ["garbled", "plain-text"]) {
            const response = await post(model);
            assert.equal(response.status, 502, model);
            const body = await response.json() as {error: {type: string, code: string, message: string}};
            assert.equal(body.error.type, "server_error");
            assert.equal(body.error.code, "upstream_invalid_reply");
            assert.match(body.error.message, /not a valid reply/);
        }
        // Both are now out for their back-off: the next request is told so, with Retry-After.
        const again = await post("garbled");
        assert.equal(again.status, 503);
        assert.ok(Number(again.headers.get("retry-after")) >= 1);
        assert.equal((await again.json() as {error: {code: string}}).error.code, "upstream_unavailable");
    });

    test("an upstream that refuses Hearth's key for it gets a 502 that says so, never the client's 401", async () => {
        const response = await post("locked");
        assert.equal(response.status, 502);
        const body = await response.json() as {error: {code: string, message: string}};
        assert.equal(body.error.code, "upstream_key_refused");
        assert.match(body.error.message, /refused Hearth's key/);
    });

    test("an upstream that sends no headers within the timeout gets a 504, and the front goes on answering", async () => {
        const startedMs = Date.now();
        const response = await post("sleepy");
        assert.equal(response.status, 504);
        assert.equal((await response.json() as {error: {code: string}}).error.code, "upstream_timeout");
        assert.ok(Date.now() - startedMs < 5000);
        const health = await fetch(`${front.url}/health`);
        assert.equal(health.status, 200);
    });

    test("a request that fails on one upstream before its first byte is retried once on another", async () => {
        const [failing, working] = [tiny[3]!, tiny[4]!];
        const replies = await Promise.all([post("echo"), post("echo")]);
        assert.deepEqual(replies.map((reply) => reply.status), [200, 200]);
        assert.equal((await replies[0]!.json() as {choices: {message: {content: string}}[]}).choices[0]!.message.content, "hi");
        assert.equal(failing.posts, 1);
        assert.equal(working.posts, 2);
        const view = (await upstreamsOf(front)).find((upstream) => upstream.url === failing.url)!;
        assert.equal(view.health, "down");
        assert.match(await metricsOf(front.url), new RegExp(`hearth_upstream_errors_total\\{upstream="${new URL(failing.url).host}",reason="server_error"\\} 1`));
    });

    test("a stream that breaks after it began ends with an error event in OpenAI's shape, whole events before it", async () => {
        const client = new OpenAI({baseURL: front.baseURL, apiKey: "unused", maxRetries: 0});
        const received: string[] = [];
        await assert.rejects(async () => {
            for await (const chunk of await client.chat.completions.create({model: "breaker", ...ask, stream: true}))
                received.push(chunk.choices[0]!.delta.content ?? "");
        }, (error: Error) => error.constructor.name === "APIError" && /stopped in the middle/.test(error.message));
        assert.deepEqual(received, ["one ", "two "]);
        // The break took the upstream out; once its back-off is over, the same stream as the wire carries it.
        const raw = await eventually(async () => {
            const response = await post("breaker", {stream: true});
            assert.equal(response.status, 200);
            return response.text();
        });
        assert.match(raw, /^data: \{.*"one "/);
        assert.match(raw, /"two "\}.*\n\ndata: \{"error":\{"message":"The upstream [^"]+ stopped in the middle of its reply[^"]*","type":"server_error","param":null,"code":"upstream_stream_broken"\}\}\n\ndata: \[DONE\]\n\n$/s);
    });

    test("a stream whose event never ends is cut off at 8 MiB with an error event, not held without bound", async () => {
        const response = await post("flood", {stream: true});
        assert.equal(response.status, 200);
        const text = await response.text();
        assert.ok(text.length < 4096, `${text.length} characters reached the client`);
        assert.match(text, /^data: \{"error":\{"message":"The upstream [^"]+ answered with something that is not a valid reply: an event over 8 MiB".*"code":"upstream_invalid_reply"\}\}\n\ndata: \[DONE\]\n\n$/);
    });

    test("a stream that goes silent after it began ends with a timeout error event", async () => {
        const started = performance.now();
        const response = await post("stalls", {stream: true});
        assert.equal(response.status, 200);
        const text = await response.text();
        assert.ok(performance.now() - started >= 900, "it ended before the timeout");
        assert.match(text, /^data: \{"choices".*"one "\}\}\]\}\n\ndata: \{"error":\{"message":"The upstream [^"]+ sent nothing for 1 s","type":"server_error","param":null,"code":"upstream_timeout"\}\}\n\ndata: \[DONE\]\n\n$/s);
    });

    test("a client that reads slowly slows the stream, without a timeout while the front waits for it", async () => {
        const response = await new Promise<IncomingMessage>((resolve, reject) => {
            const request = httpRequest(`${front.url}/v1/chat/completions`, {method: "POST", headers: {"content-type": "application/json"}}, resolve);
            request.on("error", reject);
            request.end(JSON.stringify({model: "firehose", ...ask, stream: true}));
        });
        assert.equal(response.statusCode, 200);
        response.pause();
        // Longer than the upstream timeout: the front waits on this client, not on its upstream.
        await new Promise((resolve) => setTimeout(resolve, 1500));
        let text = "";
        response.setEncoding("utf8");
        for await (const chunk of response)
            text += chunk as string;
        assert.equal(text.split("\n\n").filter((event) => event.includes('"x')).length, FIREHOSE_EVENTS);
        assert.ok(text.endsWith("}]}\n\ndata: [DONE]\n\n"), text.slice(-200));
        assert.ok(!text.includes('"error"'));
    });

    test("a Responses API stream that breaks ends with a named error event that continues its sequence numbers", async () => {
        const response = await fetch(`${front.baseURL}/responses`, {
            method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: "breaker-responses", input: "Hi", stream: true})
        });
        assert.equal(response.status, 200);
        const text = await response.text();
        const events = text.trim().split("\n\n").map((block) => block.split("\n")[0]);
        assert.deepEqual(events, ["event: response.created", "event: response.output_text.delta", "event: error"]);
        const error = JSON.parse(text.trim().split("\n").at(-1)!.slice("data: ".length)) as {type: string, code: string, sequence_number: number};
        assert.equal(error.type, "error");
        assert.equal(error.code, "upstream_stream_broken");
        assert.equal(error.sequence_number, 2);
    });
});

describe("upstreams: keys, rate limits, local models first, and stored upstreams", () => {
    let upstream: TestServer;
    let home: string;

    before(async () => {
        upstream = await startTestServer({modelFiles: ["stories260K.gguf", "derived/stories260K-F16.gguf"]});
        home = await mkdtemp(path.join(os.tmpdir(), "hearth-upstreams-"));
    });
    after(async () => {
        await upstream?.close();
        await rm(home, {recursive: true, force: true});
    });

    test("the front's API keys and rate limit hold for routed requests", async () => {
        const front = await startTestServer({modelFiles: [], apiKeys: ["front-key-123"], rateLimitPerMinute: 3, upstreams: [{url: upstream.url, key: undefined}]});
        try {
            await upstreamsUp(front, 1, {authorization: "Bearer front-key-123"});
            const anonymous = new OpenAI({baseURL: front.baseURL, apiKey: "wrong-key-000", maxRetries: 0});
            await assert.rejects(anonymous.chat.completions.create({model: MODEL, ...ask, max_tokens: 4}), (error: {status?: number}) => error.status === 401);
            const noKey = await fetch(`${front.baseURL}/chat/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: MODEL, ...ask})});
            assert.equal(noKey.status, 401);
            assert.equal((await noKey.json() as {error: {code: string}}).error.code, "missing_api_key");

            const client = new OpenAI({baseURL: front.baseURL, apiKey: "front-key-123", maxRetries: 0});
            for (let index = 0; index < 3; index++)
                await client.chat.completions.create({model: MODEL, ...ask, max_tokens: 4});
            await assert.rejects(client.chat.completions.create({model: MODEL, ...ask, max_tokens: 4}), (error: {status?: number, code?: string}) => error.status === 429 && error.code === "rate_limit_exceeded");
            assert.equal(await chatRequestsServed(upstream.url), 3);

            const audit = await (await fetch(`${front.url}/api/audit`, {headers: {authorization: "Bearer front-key-123"}})).json() as {entries: {key_id: string | null, path: string, status: number}[]};
            assert.deepEqual(audit.entries.filter((entry) => entry.path === "/v1/chat/completions").map((entry) => [entry.status, entry.key_id]),
                [[429, "startup-1"], [200, "startup-1"], [200, "startup-1"], [200, "startup-1"], [401, null], [401, null]]);
        } finally {
            await front.close();
        }
    });

    test("a local model wins over an upstream's of the same name", async () => {
        const front = await startTestServer({modelFiles: ["derived/stories260K-F16.gguf"], upstreams: [{url: upstream.url, key: undefined}]});
        try {
            await upstreamsUp(front, 1);
            const models = (await front.client.models.list()).data.filter((model) => model.id === "stories260K-F16");
            assert.deepEqual(models.map((model) => model.owned_by), ["hearth"]);
            const before = await chatRequestsServed(upstream.url);
            await front.client.chat.completions.create({model: "stories260K-F16", ...ask, max_tokens: 4});
            await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 4});
            assert.equal(await chatRequestsServed(upstream.url) - before, 1);
        } finally {
            await front.close();
        }
    });

    test("at shutdown a forwarded stream still running ends with an error event, and its request upstream is cancelled", async () => {
        const front = await startTestServer({modelFiles: [], upstreams: [{url: upstream.url, key: undefined}]});
        let chunks = 0;
        let streaming: Promise<void> | undefined;
        try {
            await upstreamsUp(front, 1);
            streaming = (async () => {
                for await (const chunk of await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 4000, stream: true})) {
                    void chunk;
                    chunks += 1;
                }
            })();
            streaming.catch(() => undefined);
            await eventually(async () => assert.ok(chunks > 0));
        } finally {
            // No drain time: the stream is ended at once.
            await front.close();
        }
        await assert.rejects(streaming, (error: Error) => error.constructor.name === "APIError" && /shutting down/.test(error.message));
        await eventually(async () => assert.equal(metricValue(await metricsOf(upstream.url), "hearth_busy_slots", {model: MODEL}), 0), 5000);
    });

    test("upstreams added with POST /api/upstreams are kept in the data folder across a restart, and DELETE removes them", async () => {
        let front = await startTestServer({modelFiles: [], home});
        try {
            const bad = await fetch(`${front.url}/api/upstreams`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({url: "ftp://nowhere"})});
            assert.equal(bad.status, 400);
            assert.match((await bad.json() as {error: string}).error, /not an upstream URL/);
            const added = await fetch(`${front.url}/api/upstreams`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({url: `${upstream.url}/v1/`, key: "stored-key-1"})});
            assert.equal(added.status, 201);
            const view = await added.json() as UpstreamView;
            assert.equal(view.url, upstream.url);
            assert.equal(view.source, "stored");
            assert.equal(view.has_key, true);
            assert.ok(!JSON.stringify(view).includes("stored-key-1"));
            const twice = await fetch(`${front.url}/api/upstreams`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({url: upstream.url})});
            assert.equal(twice.status, 409);

            await front.close();
            front = await startTestServer({modelFiles: [], home});
            const [restored] = await upstreamsUp(front, 1);
            assert.equal(restored!.id, view.id);
            assert.ok(restored!.models.includes(MODEL));
            assert.ok((await front.client.chat.completions.create({model: MODEL, ...ask, max_tokens: 4})).choices.length === 1);

            assert.equal((await fetch(`${front.url}/api/upstreams/${view.id}`, {method: "DELETE"})).status, 204);
            assert.equal((await fetch(`${front.url}/api/upstreams/${view.id}`, {method: "DELETE"})).status, 404);
            assert.deepEqual(await upstreamsOf(front), []);
            const gone = await fetch(`${front.baseURL}/chat/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: MODEL, ...ask})});
            assert.equal(gone.status, 404);
        } finally {
            await front.close();
        }
    });

    test("--upstream, URL#KEY, --upstream-key and HEARTH_UPSTREAMS are read, and a bad URL is refused without echoing a key", () => {
        const {config} = parseServeArgs(["--upstream", "http://a:8080/v1", "--upstream", "https://b.example/openai/v1/#sk-b", "--upstream", "http://c:1", "--upstream-key", "sk-a"], {});
        assert.deepEqual(config.upstreams, [{url: "http://a:8080", key: "sk-a"}, {url: "https://b.example/openai", key: "sk-b"}, {url: "http://c:1", key: undefined}]);
        assert.deepEqual(parseServeArgs([], {HEARTH_UPSTREAMS: "http://a:1, http://b:2#k2"}).config.upstreams, [{url: "http://a:1", key: undefined}, {url: "http://b:2", key: "k2"}]);
        assert.throws(() => parseServeArgs(["--upstream", "gpu-box#sk-secret"], {}), (error: Error) => /--upstream must be/.test(error.message) && !error.message.includes("sk-secret"));
        assert.throws(() => parseServeArgs(["--upstream", "http://a:1", "--upstream", "http://a:1/v1"], {}), /given twice/);
        assert.equal(parseServeArgs(["--upstream-timeout", "2s"], {}).config.upstreamTimeoutMs, 2000);
    });
});

describe("upstreams: the relay of server-sent events", () => {
    const named = [
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0}\n\n",
        "event: response.output_text.delta\r\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"é \\\"usage\\\": {\",\"sequence_number\":1}\r\n\r\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\" : {\"input_tokens\":3,\"output_tokens\":2}},\"sequence_number\": 2}\n\n"
    ];
    const plain = [
        "data: {\"choices\":[{\"text\":\"Once \"}],\"usage\":null}\n\n",
        ": a comment\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}\n\n",
        "data: [DONE]\n\n"
    ];

    /** Feeds `events` to a relay cut at `cuts`, checking that each push passes on whole events only. */
    function relayed(events: string[], cuts: number[]): {relay: SseRelay, out: Buffer} {
        const bytes = Buffer.from(events.join(""));
        const ends = new Set(events.map((_, index) => Buffer.byteLength(events.slice(0, index + 1).join(""))));
        const relay = new SseRelay();
        const out: Buffer[] = [];
        let sent = 0;
        let from = 0;
        for (const cut of [...new Set(cuts.map((cut) => cut % bytes.length))].sort((a, b) => a - b).concat(bytes.length)) {
            const passed = relay.push(bytes.subarray(from, cut));
            from = cut;
            sent += passed.length;
            assert.ok(passed.length === 0 || ends.has(sent), `a push ended at byte ${sent}, inside an event`);
            out.push(passed);
        }
        out.push(relay.flush());
        return {relay, out: Buffer.concat(out)};
    }

    test("a stream cut anywhere passes on whole, as whole events, with its usage and its last sequence number read", () => {
        fc.assert(fc.property(fc.array(fc.nat(), {maxLength: 12}), (cuts) => {
            const {relay, out} = relayed(named, cuts);
            assert.equal(out.toString(), named.join(""));
            assert.deepEqual(relay.usage, {promptTokens: 3, completionTokens: 2});
            const error = relay.errorEvent("broken", "upstream_stream_broken");
            assert.match(error, /^event: error\ndata: /);
            assert.equal((JSON.parse(error.split("\n")[1]!.slice("data: ".length)) as {sequence_number: number}).sequence_number, 3);
        }), {numRuns: 300});
        fc.assert(fc.property(fc.array(fc.nat(), {maxLength: 12}), (cuts) => {
            const {relay, out} = relayed(plain, cuts);
            assert.equal(out.toString(), plain.join(""));
            assert.deepEqual(relay.usage, {promptTokens: 4, completionTokens: 1});
            assert.match(relay.errorEvent("broken", "upstream_stream_broken"), /^data: \{"error":\{"message":"broken"/);
        }), {numRuns: 300});
    });
});
