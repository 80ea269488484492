import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import {Ollama} from "ollama";
import type OpenAI from "openai";
import {startTestServer, useTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

/**
 * What the shared generation pipeline decides for every API, on the tiny real model: the request fields for
 * thinking and tools are checked the same way (a 400 in the API's own shape), usage has the same shape streamed
 * or not, and the hooks read what each route declares (rate limit, quiet polling). What models that think or call
 * tools reply is tested on the scripted models (chatFormats).
 */

const model = "stories260K";
const chatml = "stories260K-chatml";
type ErrorReply = {status: number, json: {error: {message: string, param: string | null, type: string}} & {error: string}};

describe("the generation pipeline", () => {
    const server = useTestServer({modelFiles: ["stories260K.gguf", "derived/stories260K-chatml.gguf"]});
    const post = async (path: string, body: object): Promise<ErrorReply> => {
        const response = await fetch(`${server.url}${path}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
        return {status: response.status, json: await response.json() as ErrorReply["json"]};
    };
    const messages = [{role: "user" as const, content: "Once upon a time"}];
    const chat = {model: chatml, messages, max_tokens: 4, temperature: 0};

    it("refuses a reasoning_effort, enable_thinking or think it cannot read, naming the field, in OpenAI's shape", async () => {
        const cases: [object, string, RegExp][] = [
            [{reasoning_effort: "extreme"}, "reasoning_effort", /reasoning_effort/],
            [{think: "yes"}, "think", /think/],
            [{chat_template_kwargs: {enable_thinking: "no"}}, "chat_template_kwargs.enable_thinking", /enable_thinking/],
            [{reasoning_effort: "high", chat_template_kwargs: {enable_thinking: false}}, "chat_template_kwargs.enable_thinking", /reasoning_effort turns thinking on but chat_template_kwargs.enable_thinking turns it off/],
            [{reasoning_effort: "none", think: true}, "think", /turns thinking off but think turns it on/]
        ];
        for (const [fields, param, message] of cases) {
            const {status, json} = await post("/v1/chat/completions", {...chat, ...fields});
            assert.equal(status, 400, JSON.stringify(fields));
            assert.equal(json.error.type, "invalid_request_error");
            assert.equal(json.error.param, param, JSON.stringify(json));
            assert.match(json.error.message, message);
        }
    });

    it("accepts every reasoning_effort OpenAI's SDK sends, and fields that agree", async () => {
        for (const effort of ["none", "minimal", "low", "medium", "high", "xhigh", "max"] as const) {
            const completion = await server.client.chat.completions.create({...chat, messages: [{role: "user", content: "Hi"}], reasoning_effort: effort});
            assert.equal(completion.choices[0]!.finish_reason, "length", effort);
        }
        const agreeing = await post("/v1/chat/completions", {...chat, reasoning_effort: "low", think: true, chat_template_kwargs: {enable_thinking: true, other: 1}});
        assert.equal(agreeing.status, 200, JSON.stringify(agreeing.json));
    });

    it("refuses a think value Ollama does not know, and tools it cannot tell apart, in Ollama's shape", async () => {
        for (const [path, body] of [
            ["/api/chat", {model: chatml, messages, think: "max"}],
            ["/api/generate", {model, prompt: "Once", think: "maximum"}]
        ] as const) {
            const {status, json} = await post(path, body);
            assert.equal(status, 400, path);
            assert.match(json.error, /think/);
        }
        const tool = {type: "function", function: {name: "get_weather", parameters: {type: "object", properties: {}}}};
        const twice = await post("/api/chat", {model: chatml, messages, tools: [tool, tool]});
        assert.equal(twice.status, 400);
        assert.match(twice.json.error, /two functions named "get_weather"/);
        const openaiTwice = await post("/v1/chat/completions", {...chat, tools: [tool, tool], parallel_tool_calls: false});
        assert.equal(openaiTwice.status, 400);
        assert.equal(openaiTwice.json.error.param, "tools");
    });

    it("gives usage the same shape streamed or not, with reasoning tokens, and no reasoning field where there was none", async () => {
        const whole = await server.client.chat.completions.create({...chat, n: 2, seed: 1, temperature: 1});
        assert.equal(whole.usage?.completion_tokens, 8);
        assert.deepEqual(whole.usage?.completion_tokens_details, {reasoning_tokens: 0});
        for (const choice of whole.choices)
            assert.ok(!("reasoning_content" in choice.message), "no reasoning_content without reasoning");

        const stream = await server.client.chat.completions.create({...chat, stream: true, stream_options: {include_usage: true}});
        let usage: OpenAI.CompletionUsage | null | undefined;
        for await (const chunk of stream) {
            usage = chunk.usage ?? usage;
            assert.ok(!("reasoning_content" in (chunk.choices[0]?.delta ?? {})));
        }
        assert.deepEqual(usage?.completion_tokens_details, {reasoning_tokens: 0});
        assert.equal(usage?.completion_tokens, 4);

        const text = await server.client.completions.create({model, prompt: ["Once", "One day"], n: 2, max_tokens: 3});
        assert.equal(text.usage?.completion_tokens, 12);
        assert.deepEqual((text.usage as {completion_tokens_details?: unknown}).completion_tokens_details, {reasoning_tokens: 0});

        const ollama = new Ollama({host: server.url});
        const reply = await ollama.chat({model: chatml, messages, options: {num_predict: 4}});
        assert.ok(!("thinking" in reply.message), "no thinking field without thinking");
        const generated = await ollama.generate({model, prompt: "Once", raw: true, think: false, options: {num_predict: 4}});
        assert.ok(!("thinking" in generated));
    });

    it("reads past thinking and a tool message's name from the history of either API", async () => {
        const openai = await server.client.chat.completions.create({...chat, messages: [
            {role: "user", content: "Hi"},
            {role: "assistant", content: "Hello", reasoning_content: "They said hi."} as OpenAI.Chat.ChatCompletionAssistantMessageParam,
            {role: "user", content: "Weather?"},
            {role: "assistant", content: null, tool_calls: [{id: "call_1", type: "function", function: {name: "get_weather", arguments: "{}"}}]},
            {role: "tool", tool_call_id: "call_1", content: "sunny", name: "get_weather"} as OpenAI.Chat.ChatCompletionToolMessageParam
        ]});
        assert.equal(openai.choices[0]!.finish_reason, "length");
        const ollama = await new Ollama({host: server.url}).chat({model: chatml, options: {num_predict: 4}, messages: [
            {role: "user", content: "Hi"},
            {role: "assistant", content: "Hello", thinking: "They said hi."},
            {role: "tool", content: "sunny", tool_name: "get_weather"}
        ]});
        assert.equal(ollama.done_reason, "length");
    });

    it("keeps the routes that apps poll out of the request log, and logs the others", async () => {
        const before = (await (await fetch(`${server.url}/api/server/requests?after=0`)).json() as {requests: {id: number}[]}).requests.at(-1)?.id ?? 0;
        for (const path of ["/api/tags", "/api/ps", "/v1/models", "/health", "/ready", "/api/downloads", "/api/server/settings"])
            assert.equal((await fetch(`${server.url}${path}`)).status, 200, path);
        assert.equal((await fetch(`${server.url}/v1/models/${model}`)).status, 200);
        const logged = (await (await fetch(`${server.url}/api/server/requests?after=${before}`)).json() as {requests: {path: string}[]}).requests;
        assert.deepEqual(logged.map((entry) => entry.path), [`/v1/models/${model}`]);
    });
});

describe("the rate limit reads what each route declares", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({rateLimitPerMinute: 1});
    });
    after(() => server.close());

    it("counts a conversation's reply and an embedding as model work, and not the conversation's other routes", async () => {
        const json = {"content-type": "application/json"};
        const created = await (await fetch(`${server.url}/api/conversations`, {method: "POST", headers: json, body: JSON.stringify({model, options: {max_tokens: 3}})})).json() as {id: string};
        const base = `${server.url}/api/conversations/${created.id}`;
        assert.equal((await fetch(`${base}/messages`, {method: "POST", headers: json, body: JSON.stringify({role: "user", content: "Once"})})).status, 201);
        const replied = await fetch(`${base}/reply`, {method: "POST", headers: json, body: "{}"});
        assert.equal(replied.status, 200);
        const lines = (await replied.text()).trim().split("\n").map((line) => JSON.parse(line) as {type: string});
        assert.deepEqual([lines[0]!.type, lines.at(-1)!.type], ["message", "done"]);

        assert.equal((await fetch(base)).status, 200, "reading the conversation is not counted");
        const again = await fetch(`${base}/reply`, {method: "POST", headers: json, body: JSON.stringify({regenerate: true})});
        assert.equal(again.status, 429);
        assert.match((await again.json() as {error: string}).error, /Rate limit/);
        const embedding = await fetch(`${server.baseURL}/embeddings`, {method: "POST", headers: json, body: JSON.stringify({model, input: "Once"})});
        assert.equal(embedding.status, 429);
    });
});
