import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {Ollama} from "ollama";
import type {ChatResponse, GenerateResponse} from "ollama";
import {useTestServer} from "./helpers/testServer.js";

const plain = "stories260K";
const chatml = "stories260K-chatml";
const server = useTestServer({modelFiles: ["stories260K.gguf", "derived/stories260K-chatml.gguf"]});
const client = () => new Ollama({host: server.url});

async function post(path: string, body: unknown, headers: Record<string, string> = {"content-type": "application/json"}) {
    const response = await fetch(`${server.url}${path}`, {method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body)});
    return {status: response.status, contentType: response.headers.get("content-type") ?? "", text: await response.text()};
}

function assertStats(response: ChatResponse | GenerateResponse): void {
    for (const field of ["total_duration", "load_duration", "prompt_eval_duration", "eval_duration", "prompt_eval_count", "eval_count"] as const)
        assert.ok(Number.isInteger(response[field]) && response[field] >= 0, `${field} is a whole number: ${response[field]}`);
    assert.ok(response.prompt_eval_count > 0);
    assert.ok(response.eval_duration > 0);
    assert.ok(response.total_duration >= response.eval_duration + response.prompt_eval_duration, "durations are parts of the total");
    assert.ok(!Number.isNaN(new Date(response.created_at).getTime()));
}

describe("POST /api/chat", () => {
    // The client sets `stream` on the object it is given, so each call gets a fresh one.
    const chatRequest = () => ({model: chatml, messages: [{role: "user", content: "Once upon a time"}], options: {temperature: 0, num_predict: 20}});
    const request = chatRequest();

    it("answers in one object, stopping at num_predict with done_reason length", async () => {
        const response = await client().chat(request);
        assert.equal(response.model, chatml);
        assert.equal(response.message.role, "assistant");
        assert.ok(response.message.content.length > 5, `got "${response.message.content}"`);
        assert.equal(response.done, true);
        assert.equal(response.done_reason, "length");
        assert.equal(response.eval_count, 20);
        assertStats(response);
        assert.equal((await client().chat(request)).message.content, response.message.content, "greedy is deterministic");
    });

    it("streams the same text one piece per line, ending in a line with the statistics", async () => {
        const whole = await client().chat(request);
        const parts: ChatResponse[] = [];
        for await (const part of await client().chat({...request, stream: true}))
            parts.push(part);
        const last = parts.at(-1)!;
        assert.ok(parts.length > 10, "one line per token, not one blob");
        assert.ok(parts.slice(0, -1).every((part) => !part.done && part.message.role === "assistant"));
        assert.equal(parts.map((part) => part.message.content).join(""), whole.message.content);
        assert.equal(last.done, true);
        assert.equal(last.message.content, "");
        assert.equal(last.done_reason, "length");
        assert.equal(last.eval_count, 20);
        assert.equal(last.prompt_eval_count, whole.prompt_eval_count);
        assertStats(last);
    });

    it("streams NDJSON when stream is left out, as Ollama does, and accepts curl's form content type", async () => {
        const streamed = await post("/api/chat", chatRequest());
        assert.equal(streamed.status, 200);
        assert.match(streamed.contentType, /^application\/x-ndjson/);
        const lines = streamed.text.trim().split("\n").map((line) => JSON.parse(line) as {done: boolean, message: {content: string}});
        assert.ok(lines.length > 10);
        assert.deepEqual(lines.map((line) => line.done), [...Array<boolean>(lines.length - 1).fill(false), true]);

        const curl = await post("/api/chat", {...chatRequest(), stream: false}, {"content-type": "application/x-www-form-urlencoded"});
        assert.equal(curl.status, 200);
        assert.match(curl.contentType, /^application\/json/);
        assert.equal((JSON.parse(curl.text) as ChatResponse).message.content, lines.map((line) => line.message.content).join(""));
    });

    it("stops at a stop string, and the same seed gives the same sample", async () => {
        const full = (await client().chat({...request, options: {temperature: 0, num_predict: 40}})).message.content;
        const stopWord = full.split(" ").filter((word) => word.length >= 3)[2]!;
        const stopped = await client().chat({...request, options: {temperature: 0, num_predict: 40, stop: [stopWord]}});
        assert.equal(stopped.message.content, full.slice(0, full.indexOf(stopWord)));
        assert.equal(stopped.done_reason, "stop");

        const sampled = (seed: number) => client().chat({...request, options: {temperature: 1, seed, num_predict: 30, top_k: 40, top_p: 0.9, repeat_penalty: 1.1}});
        const [a, b, c] = await Promise.all([sampled(42), sampled(42), sampled(7)]);
        assert.equal(a.message.content, b.message.content);
        assert.notEqual(a.message.content, c.message.content);
    });

    it("constrains output with format json or a JSON schema", async () => {
        const messages = [{role: "user", content: "Describe a person"}];
        // This tiny model writes one endless string under the generic JSON grammar, so only the opening is checked.
        const json = await client().chat({model: chatml, messages, format: "json", options: {temperature: 0, num_predict: 30}});
        assert.match(json.message.content, /^\s*\{\s*"/);
        const schema = {
            type: "object",
            properties: {name: {type: "string", maxLength: 20}, age: {type: "integer"}, mood: {type: "string", enum: ["happy", "sad"]}},
            required: ["name", "age", "mood"],
            additionalProperties: false
        };
        const response = await client().chat({model: chatml, messages, format: schema, options: {temperature: 0, num_predict: 200}});
        assert.equal(response.done_reason, "stop");
        const person = JSON.parse(response.message.content) as {name: unknown, age: unknown, mood: unknown};
        assert.deepEqual(Object.keys(person), ["name", "age", "mood"]);
        assert.ok(Number.isInteger(person.age));
        assert.ok(["happy", "sad"].includes(person.mood as string));
    });

    it("offers tools in the prompt and takes a conversation with tool calls and results", async () => {
        const tools = [{type: "function", function: {name: "get_weather", description: "Weather in a city", parameters: {
            type: "object", required: ["city"], properties: {city: {type: "string", description: "The city"}}
        }}}];
        const messages = [{role: "user", content: "What is the weather in Paris?"}];
        const without = await client().chat({model: chatml, messages, options: {temperature: 0, num_predict: 5}});
        const withTools = await client().chat({model: chatml, messages, tools, options: {temperature: 0, num_predict: 5}});
        assert.ok(withTools.prompt_eval_count > without.prompt_eval_count + 50, "the tool's signature is in the prompt");
        assert.equal(withTools.message.tool_calls, undefined, "this model answers in text");

        const followUp = await client().chat({model: chatml, tools, options: {temperature: 0, num_predict: 10}, messages: [
            ...messages,
            {role: "assistant", content: "", tool_calls: [{function: {name: "get_weather", arguments: {city: "Paris"}}}]},
            {role: "tool", content: "{\"temperature\": 21}", tool_name: "get_weather"}
        ]});
        assert.equal(followUp.eval_count, 10);
        assert.ok(followUp.prompt_eval_count > withTools.prompt_eval_count, "the call and its result are in the prompt");
    });

    it("with no messages only loads the model", async () => {
        const loaded = await client().chat({model: chatml, messages: []});
        assert.equal(loaded.done, true);
        assert.equal(loaded.done_reason, "load");
        assert.equal(loaded.message.content, "");
        // A model served with --model stays loaded: asking to unload it is refused, never answered as if done.
        await assert.rejects(client().chat({model: chatml, messages: [], keep_alive: 0}),
            (error: Error & {status_code?: number}) => error.status_code === 409 && /served with --model/.test(error.message));
        assert.equal((await client().chat({model: chatml, messages: []})).done_reason, "load");
    });
});

describe("POST /api/generate", () => {
    it("continues a raw prompt: Once upon a time, there was a little girl named Lily", async () => {
        const response = await client().generate({model: plain, prompt: "Once upon a time", raw: true, options: {temperature: 0, num_predict: 12}});
        assert.match(response.response!, /^, there was a little girl named Lily/);
        assert.equal(response.done_reason, "length");
        assert.equal(response.eval_count, 12);
        assertStats(response);

        let streamed = "";
        let last: GenerateResponse | undefined;
        for await (const part of await client().generate({model: plain, prompt: "Once upon a time", raw: true, stream: true, options: {temperature: 0, num_predict: 12}})) {
            streamed += part.response ?? "";
            last = part;
        }
        assert.equal(streamed, response.response);
        assert.equal(last?.done, true);
        assert.equal(last?.eval_count, 12);
    });

    it("wraps a prompt that is not raw in the chat template, with the system message", async () => {
        const options = {temperature: 0, num_predict: 5};
        const raw = await client().generate({model: chatml, prompt: "Hello", raw: true, options});
        const templated = await client().generate({model: chatml, prompt: "Hello", options});
        const withSystem = await client().generate({model: chatml, prompt: "Hello", system: "You tell stories.", options});
        assert.ok(templated.prompt_eval_count > raw.prompt_eval_count + 5, "<|im_start|>user … <|im_end|> is added");
        assert.ok(withSystem.prompt_eval_count > templated.prompt_eval_count);
    });

    it("with an empty prompt only loads the model", async () => {
        const response = await client().generate({model: plain, prompt: ""});
        assert.deepEqual({response: response.response, done: response.done, done_reason: response.done_reason}, {response: "", done: true, done_reason: "load"});
    });
});

describe("POST /api/embed and /api/embeddings", () => {
    it("embeds one or several inputs as unit vectors", async () => {
        const response = await client().embed({model: plain, input: ["A cat sat on the mat", "The stock market fell"]});
        assert.equal(response.model, plain);
        assert.equal(response.embeddings.length, 2);
        for (const vector of response.embeddings) {
            assert.equal(vector.length, 64);
            assert.ok(Math.abs(Math.hypot(...vector) - 1) < 1e-6);
        }
        assert.notDeepEqual(response.embeddings[0], response.embeddings[1]);
        assert.ok(response.prompt_eval_count > 5);
        assert.ok(Number.isInteger(response.total_duration) && response.total_duration > 0);

        const single = await client().embed({model: plain, input: "A cat sat on the mat", dimensions: 16});
        assert.equal(single.embeddings[0]!.length, 16);
        assert.ok(Math.abs(Math.hypot(...single.embeddings[0]!) - 1) < 1e-6, "shortened, then normalized again");
    });

    it("the legacy endpoint returns the model's own vector", async () => {
        const legacy = await client().embeddings({model: plain, prompt: "A cat sat on the mat"});
        const unit = (await client().embed({model: plain, input: "A cat sat on the mat"})).embeddings[0]!;
        const norm = Math.hypot(...legacy.embedding);
        assert.ok(norm > 1.5, `not normalized (norm ${norm})`);
        legacy.embedding.forEach((value, index) => assert.ok(Math.abs(value / norm - unit[index]!) < 1e-6));
    });
});

describe("errors in Ollama's shape", () => {
    it("answers an unknown model with 404 and {error}", async () => {
        for (const [path, body] of [["/api/chat", {model: "nope", messages: [{role: "user", content: "Hi"}]}], ["/api/generate", {model: "nope", prompt: "Hi"}], ["/api/embed", {model: "nope", input: "Hi"}]] as const) {
            const response = await post(path, body);
            assert.equal(response.status, 404, path);
            const error = (JSON.parse(response.text) as {error: unknown}).error;
            assert.equal(typeof error, "string");
            assert.match(error as string, /"nope" does not exist/);
        }
        await assert.rejects(client().chat({model: "nope", messages: [{role: "user", content: "Hi"}]}),
            (error: Error & {status_code?: number}) => error.status_code === 404 && /does not exist/.test(error.message));
    });

    it("answers a bad body with 400 and {error}", async () => {
        const cases: [string, unknown, RegExp][] = [
            ["/api/chat", {messages: []}, /model/],
            ["/api/chat", {model: chatml, messages: [{role: "wizard", content: "Hi"}]}, /role/],
            ["/api/chat", "{not json", /not valid JSON/],
            ["/api/chat", {model: chatml, messages: [{role: "user", content: "Hi", images: ["aGk="]}]}, /images/],
            ["/api/generate", {model: plain, prompt: "Hi", keep_alive: "soon"}, /keep_alive/],
            ["/api/generate", {model: plain, prompt: "Hi", format: "yaml"}, /format/],
            ["/api/generate", {model: plain, prompt: "Hi", options: {temperature: "hot"}}, /temperature/],
            ["/api/embed", {model: plain, input: "Hi", dimensions: 1000}, /dimensions/]
        ];
        for (const [path, body, message] of cases) {
            const response = await post(path, body);
            assert.equal(response.status, 400, `${path} ${JSON.stringify(body)}: ${response.text}`);
            assert.match((JSON.parse(response.text) as {error: string}).error, message);
        }
    });
});
