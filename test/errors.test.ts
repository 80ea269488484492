import assert from "node:assert/strict";
import {describe, it} from "node:test";
import OpenAI from "openai";
import {useTestServer} from "./helpers/testServer.js";

const model = "stories260K";
const server = useTestServer({ctxSize: 256, parallel: 1});

async function post(path: string, body: string | object): Promise<{status: number, body: {error: {message: string, type: string, param: string | null, code: string | null}}}> {
    const response = await fetch(`${server.url}${path}`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: typeof body === "string" ? body : JSON.stringify(body)
    });
    return {status: response.status, body: await response.json() as never};
}

function assertErrorShape(body: {error: Record<string, unknown>}): void {
    assert.deepEqual(Object.keys(body.error).sort(), ["code", "message", "param", "type"]);
    assert.equal(typeof body.error.message, "string");
    assert.ok((body.error.message as string).length > 10);
}

describe("errors", () => {
    it("400 for a body that is not JSON", async () => {
        const {status, body} = await post("/v1/chat/completions", "{\"model\": ");
        assert.equal(status, 400);
        assertErrorShape(body);
        assert.match(body.error.message, /JSON/);
    });

    it("400 for bodies that fail the schema, naming the field", async () => {
        const bad: [object, RegExp][] = [
            [{model}, /messages/],
            [{model, messages: []}, /messages|fewer than 1/],
            [{model, messages: [{role: "user", content: "hi"}], temperature: "hot"}, /temperature|number/],
            [{model, messages: [{role: "wizard", content: "hi"}]}, /role|must be equal|match/],
            [{model, messages: [{role: "user", content: "hi"}], max_tokens: -1}, /max_tokens|>= 1/],
            [{model, messages: [{role: "user", content: "hi"}], n: 1000}, /n|<= 16/]
        ];
        for (const [request, pattern] of bad) {
            const {status, body} = await post("/v1/chat/completions", request);
            assert.equal(status, 400, JSON.stringify(request));
            assertErrorShape(body);
            assert.equal(body.error.type, "invalid_request_error");
            assert.match(body.error.message, pattern);
        }
    });

    it("404 for an unknown model, through the SDK", async () => {
        await assert.rejects(
            server.client.chat.completions.create({model: "no-such-model", messages: [{role: "user", content: "hi"}]}),
            (error: unknown) => {
                assert.ok(error instanceof OpenAI.NotFoundError);
                assert.match(error.message, /no-such-model/);
                assert.equal(error.code, "model_not_found");
                return true;
            });
        const {status} = await post("/v1/embeddings", {model: "nope", input: "x"});
        assert.equal(status, 404);
    });

    it("404 in the same shape for an unknown route", async () => {
        const response = await fetch(`${server.url}/v1/nothing-here`);
        assert.equal(response.status, 404);
        assertErrorShape(await response.json() as never);
    });

    it("400 for a prompt longer than the context, saying so, never truncating", async () => {
        const long = "Once upon a time there was a dragon. ".repeat(40);
        await assert.rejects(
            server.client.chat.completions.create({model, messages: [{role: "user", content: long}]}),
            (error: unknown) => {
                assert.ok(error instanceof OpenAI.BadRequestError);
                assert.equal(error.code, "context_length_exceeded");
                assert.match(error.message, /^400 This model's maximum context length is 256 tokens\. However, your messages resulted in \d+ tokens\. Please reduce the length of the messages\.$/);
                return true;
            });
        const {status, body} = await post("/v1/completions", {model, prompt: long});
        assert.equal(status, 400);
        assert.equal(body.error.param, "prompt");
        const embedding = await post("/v1/embeddings", {model, input: long});
        assert.equal(embedding.status, 400);
    });

    it("400 for what the server cannot honour, with a message a person can act on", async () => {
        const cases: [string, object, RegExp][] = [
            ["/v1/chat/completions", {model, messages: [{role: "user", content: [{type: "input_audio", input_audio: {data: "", format: "wav"}}]}]}, /input_audio.*text parts and image_url parts/],
            ["/v1/chat/completions", {model, messages: [{role: "user", content: [{type: "image_url", image_url: {url: "x"}}]}]}, /neither a data URI nor an http\(s\) URL/],
            ["/v1/chat/completions", {model, messages: [{role: "user", content: "hi"}], response_format: {type: "json_schema", json_schema: {name: "x", schema: {type: "string", pattern: "(?=a)b"}}}}, /"pattern"/],
            ["/v1/chat/completions", {model, messages: [{role: "user", content: "hi"}], tools: [{type: "function", function: {name: "f"}}], tool_choice: {type: "function", function: {name: "g"}}}, /"g".*not in tools/],
            ["/v1/chat/completions", {model, messages: [{role: "user", content: "hi"}], tool_choice: "required"}, /requires tools/],
            ["/v1/completions", {model, prompt: [1, 2, 999999]}, /Token ids/],
            ["/v1/embeddings", {model, input: "x", dimensions: 3}, /dimensions/]
        ];
        for (const [path, request, pattern] of cases) {
            const {status, body} = await post(path, request);
            assert.equal(status, 400, `${path} ${JSON.stringify(request)}: ${JSON.stringify(body)}`);
            assertErrorShape(body);
            assert.match(body.error.message, pattern);
        }
    });
});
