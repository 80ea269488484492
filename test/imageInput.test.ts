import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import {Ollama} from "ollama";
import OpenAI from "openai";
import {InvalidImageError} from "../native/errors.js";
import {fetchRemoteImage} from "../server/images/index.js";
import {crafted, fixtureDataUri, fixtureImage} from "./helpers/imageBytes.js";
import {startImageHost} from "./helpers/imageHost.js";
import type {ImageHost} from "./helpers/imageHost.js";
import {startTestServer, useTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

/** Images sent over each API to models that cannot see (the scripted models have no projector), and bad images to any model. */

const qwen = "qwen3-script";
const llama = "llama3.1-script";
const server = useTestServer({modelFiles: ["scripted/qwen3-script.gguf", "scripted/llama3.1-script.gguf", "stories260K.gguf"], ctxSize: 2048, parallel: 1});
const openai = () => server.client;
const anthropic = () => new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0});
const ollama = () => new Ollama({host: server.url});

type OpenAIError = InstanceType<typeof OpenAI.APIError>;
type OllamaError = Error & {status_code?: number};

/** The server still answers a plain text request after what came before. */
async function assertAlive(target: TestServer = server): Promise<void> {
    const reply = await target.client.chat.completions.create({model: llama, messages: [{role: "user", content: "Hi"}], max_tokens: 8, temperature: 0});
    assert.equal(reply.choices[0]!.message.content, "Hello from Llama.");
}

async function post(path: string, body: unknown, target: TestServer = server): Promise<{status: number, json: Record<string, unknown>}> {
    const response = await fetch(`${target.url}${path}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    return {status: response.status, json: await response.json() as Record<string, unknown>};
}

/** The message of an Anthropic error body (the SDK's own message has it as escaped JSON). */
const anthropicMessage = (error: unknown) => error instanceof Anthropic.BadRequestError ? (error.error as {error: {message: string}}).error.message : String(error);

const cannotSee = (model: string) => new RegExp(`The model "${model}" cannot see images: it was loaded without a projector \\(mmproj\\)`);

describe("an image sent to a model without a projector", () => {
    it("is a 400 naming the model on /v1/chat/completions, in OpenAI's shape, image_url as an object or a string", async () => {
        const red = await fixtureDataUri("red.png");
        for (const imageUrl of [{url: red, detail: "high" as const}, red]) {
            await assert.rejects(openai().chat.completions.create({
                model: qwen,
                messages: [{role: "user", content: [{type: "text", text: "What colour is this image?"}, {type: "image_url", image_url: imageUrl as {url: string}}]}]
            }), (error: OpenAIError) => {
                assert.ok(error instanceof OpenAI.BadRequestError, String(error));
                assert.match(error.message, cannotSee(qwen));
                assert.equal(error.code, "images_not_supported");
                assert.equal(error.param, "messages");
                assert.equal(error.type, "invalid_request_error");
                return true;
            });
        }
        await assertAlive();
    });

    it("is a 400 naming the model on /v1/responses", async () => {
        await assert.rejects(openai().responses.create({
            model: qwen,
            input: [{role: "user", content: [{type: "input_text", text: "What colour?"}, {type: "input_image", image_url: await fixtureDataUri("blue.png"), detail: "auto"}]}]
        }), (error: OpenAIError) => {
            assert.ok(error instanceof OpenAI.BadRequestError, String(error));
            assert.match(error.message, cannotSee(qwen));
            assert.equal(error.param, "input");
            return true;
        });
        await assertAlive();
    });

    it("is a 400 naming the model on /v1/messages (and count_tokens), in Anthropic's shape, from a user turn or a tool result", async () => {
        const data = (await fixtureImage("green.png")).toString("base64");
        const image = {type: "image" as const, source: {type: "base64" as const, media_type: "image/png" as const, data}};
        const requests: Anthropic.MessageCreateParamsNonStreaming[] = [
            {model: llama, max_tokens: 16, messages: [{role: "user", content: [image, {type: "text", text: "What colour?"}]}]},
            {
                model: llama, max_tokens: 16, tools: [{name: "screenshot", input_schema: {type: "object"}}],
                messages: [
                    {role: "user", content: "Take a screenshot"},
                    {role: "assistant", content: [{type: "tool_use", id: "toolu_1", name: "screenshot", input: {}}]},
                    {role: "user", content: [{type: "tool_result", tool_use_id: "toolu_1", content: [{type: "text", text: "Here it is"}, image]}]}
                ]
            }
        ];
        for (const request of requests)
            await assert.rejects(anthropic().messages.create(request), (error: unknown) => {
                assert.ok(error instanceof Anthropic.BadRequestError, String(error));
                assert.match(anthropicMessage(error), cannotSee(llama));
                const body = error.error as {type: string, error: {type: string}};
                assert.equal(body.type, "error");
                assert.equal(body.error.type, "invalid_request_error");
                return true;
            });
        await assert.rejects(anthropic().messages.countTokens({model: llama, messages: requests[0]!.messages}),
            (error: unknown) => cannotSee(llama).test(anthropicMessage(error)));
        await assertAlive();
    });

    it("is a 400 naming the model on /api/chat and /api/generate, in Ollama's shape", async () => {
        const image = (await fixtureImage("yellow.jpg")).toString("base64");
        await assert.rejects(ollama().chat({model: qwen, messages: [{role: "user", content: "What colour?", images: [image]}]}),
            (error: OllamaError) => error.status_code === 400 && cannotSee(qwen).test(error.message));
        await assert.rejects(ollama().generate({model: qwen, prompt: "What colour?", images: [image]}),
            (error: OllamaError) => error.status_code === 400 && cannotSee(qwen).test(error.message));
        // Without a prompt, images alone are still a generation, not a request to load the model.
        const {status, json} = await post("/api/generate", {model: qwen, images: [image], stream: false});
        assert.equal(status, 400);
        assert.match(json.error as string, cannotSee(qwen));
        await assertAlive();
    });

    it("is the model's 404 for a model that is not served", async () => {
        await assert.rejects(openai().chat.completions.create({
            model: "no-such-model", messages: [{role: "user", content: [{type: "image_url", image_url: {url: await fixtureDataUri("red.png")}}]}]
        }), (error: OpenAIError) => error.status === 404);
    });
});

describe("bad images, on any model", () => {
    it("are 400s from the edge on /v1/chat/completions, naming where the image was", async () => {
        const red = await fixtureImage("red.png");
        const cases: [string, RegExp][] = [
            [`data:image/jpeg;base64,${red.toString("base64")}`, /^400 messages\[0\]\.content\[1\] is declared as image\/jpeg, but its bytes are a PNG image \(image\/png\)$/],
            [`data:image/png;base64,${red.subarray(0, 20).toString("base64")}`, /truncated PNG/],
            [`data:image/png;base64,${Buffer.from(crafted.png(0, 10)).toString("base64")}`, /0×10 pixels/],
            [`data:image/png;base64,${Buffer.from(crafted.png(60_000, 60_000)).toString("base64")}`, /megapixels/],
            [`data:image/gif;base64,${Buffer.from("GIF89a").toString("base64")}`, /truncated GIF/],
            ["data:image/png;base64,@@not base64@@", /not valid base64/],
            [`data:image/png;base64,${Buffer.from("plain text").toString("base64")}`, /not a PNG, JPEG, WebP, GIF or BMP/],
            ["https://example.com/cat.png", /remote image URLs are not fetched \(https:\/\/example\.com\/cat\.png\): Hearth does not reach the network for a request; .*--allow-remote-images/]
        ];
        for (const [url, pattern] of cases)
            await assert.rejects(openai().chat.completions.create({
                model: llama, messages: [{role: "user", content: [{type: "text", text: "Look"}, {type: "image_url", image_url: {url}}]}]
            }), (error: OpenAIError) => {
                assert.equal(error.status, 400, String(error));
                assert.match(error.message, pattern);
                assert.equal(error.code, "invalid_image");
                assert.equal(error.param, "messages[0].content[1]");
                return true;
            });
        await assertAlive();
    });

    it("are 400s on /v1/responses, /v1/messages and /api/chat", async () => {
        const red = (await fixtureImage("red.png")).toString("base64");
        await assert.rejects(openai().responses.create({model: llama, input: [{role: "user", content: [{type: "input_image", image_url: "http://127.0.0.1:9/x.png", detail: "auto"}]}]}),
            (error: OpenAIError) => error.status === 400 && /remote image URLs are not fetched/.test(error.message) && error.param === "input.0.content.0");
        await assert.rejects(anthropic().messages.create({
            model: llama, max_tokens: 8, messages: [{role: "user", content: [{type: "image", source: {type: "base64", media_type: "image/gif", data: red}}]}]
        }), (error: unknown) => /^messages\[0\]\.content\[0\] is declared as image\/gif, but its bytes are a PNG image/.test(anthropicMessage(error)));
        await assert.rejects(anthropic().messages.create({
            model: llama, max_tokens: 8, messages: [{role: "user", content: [{type: "image", source: {type: "url", url: "https://example.com/cat.png"}}]}]
        }), (error: unknown) => /remote image URLs are not fetched/.test(anthropicMessage(error)));
        await assert.rejects(ollama().chat({model: llama, messages: [{role: "user", content: "Look", images: ["bm90IGFuIGltYWdl"]}]}),
            (error: OllamaError) => error.status_code === 400 && /messages\[0\]\.images\[0\] cannot be read as an image/.test(error.message));
        await assert.rejects(ollama().generate({model: llama, prompt: "Look", images: ["%%%"]}),
            (error: OllamaError) => error.status_code === 400 && /images\[0\] is not valid base64/.test(error.message));
        const raw = await post("/api/generate", {model: llama, prompt: "Look", raw: true, images: [red], stream: false});
        assert.equal(raw.status, 400);
        assert.match(raw.json.error as string, /images cannot go with raw/);
        await assertAlive();
    });

    it("an image where no image can be is refused by name", async () => {
        const {status, json} = await post("/v1/chat/completions", {
            model: llama, messages: [{role: "assistant", content: [{type: "image_url", image_url: {url: await fixtureDataUri("red.png")}}]}, {role: "user", content: "Hi"}]
        });
        assert.equal(status, 400);
        assert.match((json.error as {message: string}).message, /"image_url" part; this server reads text parts only in an assistant message/);
    });
});

describe("remote image URLs with --allow-remote-images", () => {
    let host: ImageHost;
    let remote: TestServer;
    before(async () => {
        host = await startImageHost(await fixtureImage("red.png"));
        remote = await startTestServer({modelFiles: ["scripted/llama3.1-script.gguf"], ctxSize: 1024, parallel: 1, allowRemoteImages: true});
    });
    after(async () => {
        await remote?.close();
        await host?.close();
    });

    it("fetches an image over http, through a redirect, and checks it as any other", async () => {
        for (const path of ["/red.png", "/redirect"])
            await assert.rejects(remote.client.chat.completions.create({model: llama, messages: [{role: "user", content: [{type: "image_url", image_url: {url: `${host.url}${path}`}}]}]}),
                // The image was fetched and read: only the model's lack of a projector stops it.
                (error: OpenAIError) => error.status === 400 && cannotSee(llama).test(error.message));
        assert.ok(host.requests.includes("/red.png"));
        const fetched = host.requests.length;
        await assert.rejects(new Anthropic({baseURL: remote.url, apiKey: "x", maxRetries: 0}).messages.create({
            model: llama, max_tokens: 8, messages: [{role: "user", content: [{type: "image", source: {type: "url", url: `${host.url}/red.png`}}]}]
        }), (error: unknown) => cannotSee(llama).test(anthropicMessage(error)));
        assert.equal(host.requests.length, fetched + 1);
    });

    it("refuses what cannot be fetched or is too large with a 400 naming the URL, and stays up", async () => {
        const cases: [string, RegExp][] = [
            ["/missing.png", /the image at http:\/\/127\.0\.0\.1:\d+\/missing\.png could not be fetched: HTTP 404/],
            ["/huge.png", /the image at .*\/huge\.png could not be fetched: it is larger than 20 MiB/],
            ["/huge-unsized.png", /could not be fetched: it is larger than 20 MiB/],
            ["/loop", /could not be fetched: more than 3 redirects/],
            ["/text", /cannot be read as an image: it is not a PNG/]
        ];
        for (const [path, pattern] of cases) {
            const {status, json} = await post("/v1/chat/completions", {model: llama, messages: [{role: "user", content: [{type: "image_url", image_url: {url: `${host.url}${path}`}}]}]}, remote);
            assert.equal(status, 400, `${path}: ${JSON.stringify(json)}`);
            assert.match((json.error as {message: string}).message, pattern);
        }
        const {status, json} = await post("/v1/chat/completions", {model: llama, messages: [{role: "user", content: [{type: "image_url", image_url: {url: "ftp://127.0.0.1/red.png"}}]}]}, remote);
        assert.equal(status, 400);
        assert.match((json.error as {message: string}).message, /neither a data URI nor an http\(s\) URL/);
        await assertAlive(remote);
    });

    it("gives up on a server that stops sending within the time limit, and on a body over the byte limit as it comes", async () => {
        const limits = {maxBytes: 1000, timeoutMs: 300, maxRedirects: 1};
        const started = performance.now();
        await assert.rejects(fetchRemoteImage(`${host.url}/slow.png`, "p", {limits}), (error: Error) => {
            assert.ok(error instanceof InvalidImageError);
            assert.match(error.message, /^p: the image at http:\/\/127\.0\.0\.1:\d+\/slow\.png could not be fetched: no complete answer within 0\.3 s$/);
            return true;
        });
        assert.ok(performance.now() - started < 5000);
        await assert.rejects(fetchRemoteImage(`${host.url}/huge-unsized.png`, "p", {limits}), /could not be fetched: it is larger than 1000 bytes, the most an image may be/);
        await assert.rejects(fetchRemoteImage(`${host.url}/red.png`, "p", {limits: {...limits, maxBytes: 50}}), /larger than 50 bytes/);
        assert.equal((await fetchRemoteImage(`${host.url}/redirect`, "p", {limits: {...limits, maxBytes: 1000}})).mimeType, "image/png");
        const client = new AbortController();
        const fetching = fetchRemoteImage(`${host.url}/slow.png`, "p", {signal: client.signal, limits: {...limits, timeoutMs: 10_000}});
        client.abort();
        await assert.rejects(fetching, (error: Error) => !(error instanceof InvalidImageError));
    });
});
