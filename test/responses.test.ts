import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {APIError} from "openai";
import type {FunctionTool, Response, ResponseInputItem} from "openai/resources/responses/responses";
import {streamEvents as streamEventsOf} from "./helpers/responseStreams.js";
import {useTestServer} from "./helpers/testServer.js";

const qwen = "qwen3-script";
const gptOss = "gpt-oss-script";
const stories = "stories260K";
const server = useTestServer({modelFiles: ["scripted/qwen3-script.gguf", "scripted/gpt-oss-script.gguf", "stories260K.gguf"], ctxSize: 4096});

const getWeather: FunctionTool = {
    type: "function", name: "get_weather", description: "The weather in a city", strict: true,
    parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"], additionalProperties: false}
};

/** Every event of a streamed response, in order. */
const streamEvents = (body: Parameters<typeof server.client.responses.create>[0]) => streamEventsOf(server.client, body);

function messageText(response: Response): string {
    return response.output.flatMap((item) => item.type === "message" ? item.content.map((part) => part.type === "output_text" ? part.text : "") : []).join("");
}

function reasoningText(response: Response): string {
    return response.output.flatMap((item) => item.type === "reasoning" ? item.summary.map((part) => part.text) : []).join("");
}

async function raw(method: string, path: string, body?: unknown): Promise<{status: number, json: {error?: {message: string, param: string | null, code: string | null}} & Record<string, unknown>}> {
    const response = await fetch(`${server.url}${path}`, {
        method, headers: body !== undefined ? {"content-type": "application/json"} : {}, body: body !== undefined ? JSON.stringify(body) : undefined
    });
    return {status: response.status, json: await response.json() as never};
}

describe("POST /v1/responses", () => {
    it("answers with the model's reasoning and its message, and the usage", async () => {
        const response = await server.client.responses.create({model: qwen, input: "Hi", temperature: 0, max_output_tokens: 100});
        assert.match(response.id, /^resp_/);
        assert.equal(response.object, "response");
        assert.equal(response.status, "completed");
        assert.equal(response.incomplete_details, null);
        assert.equal(response.model, qwen);
        assert.deepEqual(response.output.map((item) => item.type), ["reasoning", "message"]);
        assert.equal(reasoningText(response), "Let me think.");
        assert.equal(response.output_text, "Hello from Qwen.");
        assert.equal(messageText(response), response.output_text);
        const message = response.output[1]!;
        assert.ok(message.type === "message" && message.role === "assistant" && message.status === "completed" && message.id.startsWith("msg_"));
        const usage = response.usage!;
        assert.ok(usage.input_tokens > 0 && usage.output_tokens > 0);
        assert.ok(usage.output_tokens_details.reasoning_tokens > 0 && usage.output_tokens_details.reasoning_tokens < usage.output_tokens);
        assert.equal(usage.total_tokens, usage.input_tokens + usage.output_tokens);
        assert.equal((response as {store?: boolean}).store, true);
        assert.equal(response.tool_choice, "auto");
        assert.deepEqual(response.tools, []);
        assert.equal(response.temperature, 0);
    });

    it("reads instructions, message lists with text parts, and gpt-oss's thinking", async () => {
        const response = await server.client.responses.create({
            model: gptOss, instructions: "Be brief.", temperature: 0, max_output_tokens: 100,
            input: [{role: "developer", content: "Answer in English."}, {type: "message", role: "user", content: [{type: "input_text", text: "Hi"}]}]
        });
        assert.equal(response.status, "completed");
        assert.equal(response.instructions, "Be brief.");
        assert.equal(reasoningText(response), "Let me think.");
        assert.equal(response.output_text, "Hello from gpt-oss.");
    });

    it("turns thinking off with reasoning.effort none", async () => {
        const response = await server.client.responses.create({model: qwen, input: "Hi", temperature: 0, max_output_tokens: 100, reasoning: {effort: "none"}});
        assert.deepEqual(response.output.map((item) => item.type), ["message"]);
        assert.equal(response.output_text, "Hello from Qwen.");
        assert.equal(response.reasoning?.effort, "none");
    });

    it("streams named events in OpenAI's order, with increasing sequence numbers, and the SDK's stream helper accepts them", async () => {
        const events = await streamEvents({model: qwen, input: "Hi", temperature: 0, max_output_tokens: 100});
        events.forEach((event, index) => assert.equal(event.sequence_number, index));
        const types = events.map((event) => event.type);
        const collapsed = types.filter((type, index) => !type.endsWith(".delta") || types[index - 1] !== type);
        assert.deepEqual(collapsed, [
            "response.created", "response.in_progress",
            "response.output_item.added", "response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.output_item.done",
            "response.output_item.added", "response.content_part.added", "response.output_text.delta",
            "response.output_text.done", "response.content_part.done", "response.output_item.done",
            "response.completed"
        ]);
        const deltas = events.flatMap((event) => event.type === "response.output_text.delta" ? [event] : []);
        assert.ok(deltas.length > 1, "one delta per piece, not one blob");
        assert.ok(deltas.every((delta) => delta.output_index === 1 && delta.content_index === 0 && delta.item_id.startsWith("msg_")));
        const thinking = events.flatMap((event) => event.type === "response.reasoning_summary_text.delta" ? [event.delta] : []).join("");
        assert.equal(thinking, "Let me think.");
        const created = events[0]!;
        assert.ok(created.type === "response.created" && created.response.status === "in_progress" && created.response.output.length === 0);
        const completed = events.at(-1)!;
        assert.ok(completed.type === "response.completed");
        assert.equal(completed.response.id, created.response.id);
        assert.equal(completed.response.output_text, "Hello from Qwen.");
        assert.equal(reasoningText(completed.response), "Let me think.");
        assert.ok(completed.response.usage!.output_tokens > 0);

        const stream = server.client.responses.stream({model: qwen, input: "Hi", temperature: 0, max_output_tokens: 100});
        let text = "";
        stream.on("response.output_text.delta", (event) => {
            text += event.delta;
        });
        const final = await stream.finalResponse();
        assert.equal(final.output_text, "Hello from Qwen.");
        assert.equal(text, final.output_text);
    });

    it("calls a function, streamed or not", async () => {
        const response = await server.client.responses.create({model: qwen, input: "What is the weather in Paris?", tools: [getWeather], temperature: 0, max_output_tokens: 100});
        assert.equal(response.status, "completed");
        const calls = response.output.filter((item) => item.type === "function_call");
        assert.equal(calls.length, 1);
        const call = calls[0]!;
        assert.ok(call.type === "function_call");
        assert.equal(call.name, "get_weather");
        assert.deepEqual(JSON.parse(call.arguments), {city: "Paris"});
        assert.ok(call.call_id.length > 0 && call.id!.startsWith("fc_") && call.status === "completed");
        assert.equal(response.tools.length, 1);

        // Hosted tools, which Hearth cannot run, are left out, as agents offer them by default; custom tools are offered
        // (responsesAgentTools.test.ts).
        const withHosted = await server.client.responses.create({
            model: qwen, input: "What is the weather in Paris?", temperature: 0, max_output_tokens: 100,
            tools: [{type: "web_search"}, {type: "custom", name: "apply_patch"}, getWeather]
        });
        assert.deepEqual(withHosted.output.map((item) => item.type === "function_call" ? item.name : item.type), ["get_weather"]);
        assert.deepEqual(withHosted.tools.map((tool) => tool.type), ["custom", "function"]);

        const events = await streamEvents({model: qwen, input: "What is the weather in Paris?", tools: [getWeather], tool_choice: "required", temperature: 0, max_output_tokens: 100});
        events.forEach((event, index) => assert.equal(event.sequence_number, index));
        const callAdded = events.find((event) => event.type === "response.output_item.added" && event.item.type === "function_call");
        assert.ok(callAdded?.type === "response.output_item.added" && callAdded.item.type === "function_call" && callAdded.item.name === "get_weather");
        const argumentDeltas = events.flatMap((event) => event.type === "response.function_call_arguments.delta" ? [event.delta] : []).join("");
        const argumentsDone = events.find((event) => event.type === "response.function_call_arguments.done");
        assert.ok(argumentsDone?.type === "response.function_call_arguments.done");
        assert.equal(argumentsDone.arguments, argumentDeltas);
        assert.deepEqual(JSON.parse(argumentsDone.arguments), {city: "Paris"});
        const completed = events.at(-1)!;
        assert.ok(completed.type === "response.completed");
        const streamedCall = completed.response.output.find((item) => item.type === "function_call");
        assert.ok(streamedCall?.type === "function_call" && streamedCall.arguments === argumentsDone.arguments && streamedCall.call_id === callAdded.item.call_id);
    });

    it("answers a function's output sent back with the items of its call", async () => {
        const first = await server.client.responses.create({model: qwen, input: "What is the weather in Paris?", tools: [getWeather], temperature: 0, max_output_tokens: 100, store: false});
        const call = first.output.find((item) => item.type === "function_call");
        assert.ok(call?.type === "function_call");
        const input: ResponseInputItem[] = [
            {role: "user", content: "What is the weather in Paris?"},
            ...first.output as ResponseInputItem[],
            {type: "function_call_output", call_id: call.call_id, output: "sunny"}
        ];
        const second = await server.client.responses.create({model: qwen, input, tools: [getWeather], temperature: 0, max_output_tokens: 100});
        assert.equal(second.output_text, "It is sunny in Paris.");
        // Not stored: it cannot be continued.
        const missing = await raw("POST", "/v1/responses", {model: qwen, input: "Hi", previous_response_id: first.id});
        assert.equal(missing.status, 400);
        assert.equal(missing.json.error?.param, "previous_response_id");
    });

    it("continues a stored response by previous_response_id, streamed too", async () => {
        const first = await server.client.responses.create({model: qwen, input: "What is the weather in Paris?", tools: [getWeather], temperature: 0, max_output_tokens: 100});
        const call = first.output.find((item) => item.type === "function_call");
        assert.ok(call?.type === "function_call");
        const next = {model: qwen, previous_response_id: first.id, tools: [getWeather], temperature: 0, max_output_tokens: 100,
            input: [{type: "function_call_output" as const, call_id: call.call_id, output: "sunny"}]};
        const second = await server.client.responses.create(next);
        assert.equal(second.output_text, "It is sunny in Paris.");
        assert.equal(second.previous_response_id, first.id);
        const final = await server.client.responses.stream(next).finalResponse();
        assert.equal(final.output_text, "It is sunny in Paris.");
        // The streamed response was stored too, with its conversation: a third turn still sees the tool result.
        const third = await server.client.responses.create({model: qwen, previous_response_id: final.id, input: "And tomorrow?", temperature: 0, max_output_tokens: 100});
        assert.equal(third.output_text, "It is sunny in Paris.");
        const items = await raw("GET", `/v1/responses/${final.id}/input_items`);
        assert.equal(items.status, 200);
        assert.deepEqual((items.json.data as {type?: string}[]).map((item) => item.type), ["message", "function_call", "function_call_output"]);
    });

    it("keeps, returns and deletes a stored response; unknown ids are 404", async () => {
        const created = await server.client.responses.create({model: qwen, input: "Hi", temperature: 0, max_output_tokens: 100, metadata: {topic: "greeting"}});
        const fetched = await server.client.responses.retrieve(created.id);
        assert.equal(fetched.id, created.id);
        assert.equal(fetched.output_text, created.output_text);
        assert.deepEqual(fetched.output, created.output);
        assert.deepEqual(fetched.metadata, {topic: "greeting"});
        const deleted = await raw("DELETE", `/v1/responses/${created.id}`);
        assert.equal(deleted.status, 200);
        assert.deepEqual(deleted.json, {id: created.id, object: "response", deleted: true});
        await assert.rejects(server.client.responses.retrieve(created.id), (error) => error instanceof APIError && error.status === 404);
        for (const [method, path] of [["GET", "/v1/responses/resp_unknown"], ["DELETE", "/v1/responses/resp_unknown"], ["GET", "/v1/responses/resp_unknown/input_items"]] as const) {
            const missing = await raw(method, path);
            assert.equal(missing.status, 404, `${method} ${path}`);
            assert.equal(missing.json.error?.code, "not_found");
        }
        const unstored = await server.client.responses.create({model: qwen, input: "Hi", temperature: 0, max_output_tokens: 100, store: false});
        assert.equal((unstored as {store?: boolean}).store, false);
        assert.equal((await raw("GET", `/v1/responses/${unstored.id}`)).status, 404);
    });

    it("follows text.format json_schema", async () => {
        const schema = {type: "object", properties: {name: {type: "string"}, age: {type: "integer"}}, required: ["name", "age"], additionalProperties: false};
        const request = {model: stories, input: "Tell me about a person", max_output_tokens: 200, temperature: 0,
            text: {format: {type: "json_schema" as const, name: "person", schema, strict: true}}};
        const response = await server.client.responses.create(request);
        const parsed = JSON.parse(response.output_text) as {name: string, age: number};
        assert.equal(typeof parsed.name, "string");
        assert.ok(Number.isInteger(parsed.age));
        assert.equal(response.text?.format?.type, "json_schema");
        const streamed = await server.client.responses.stream(request).finalResponse();
        assert.deepEqual(JSON.parse(streamed.output_text), parsed);
    });

    it("is incomplete when max_output_tokens runs out, streamed or not", async () => {
        const response = await server.client.responses.create({model: stories, input: "Once upon a time", max_output_tokens: 5, temperature: 0});
        assert.equal(response.status, "incomplete");
        assert.deepEqual(response.incomplete_details, {reason: "max_output_tokens"});
        assert.equal(response.usage!.output_tokens, 5);
        const message = response.output.find((item) => item.type === "message");
        assert.ok(message?.type === "message" && message.status === "incomplete");
        const events = await streamEvents({model: stories, input: "Once upon a time", max_output_tokens: 5, temperature: 0});
        const last = events.at(-1)!;
        assert.equal(last.type, "response.incomplete");
        assert.ok(last.type === "response.incomplete" && last.response.status === "incomplete" && last.response.output_text === response.output_text);
    });

    it("stops a stream the client leaves, and keeps nothing of it", async () => {
        const stream = await server.client.responses.create({model: stories, input: "Once upon a time", max_output_tokens: 2000, stream: true});
        let id: string | undefined;
        let deltas = 0;
        for await (const event of stream) {
            if (event.type === "response.created")
                id = event.response.id;
            if (event.type === "response.output_text.delta" && ++deltas === 3)
                break;
        }
        assert.ok(id != null);
        const after = await server.client.responses.create({model: stories, input: "Once upon a time", max_output_tokens: 4, temperature: 0});
        assert.equal(after.usage!.output_tokens, 4);
        assert.equal((await raw("GET", `/v1/responses/${id}`)).status, 404);
    });

    it("refuses bad bodies with a 400 that names the field", async () => {
        const cases: [unknown, string | null][] = [
            [{input: "Hi"}, null],
            [{model: qwen}, null],
            [{model: qwen, input: 5}, "input"],
            [{model: qwen, input: [{type: "image_generation_call", id: "x"}]}, "input.0.type"],
            [{model: qwen, input: [{role: "user", content: [{type: "input_file", file_id: "file_1"}]}]}, "input.0.content.0.type"],
            [{model: qwen, input: [{role: "user", content: [{type: "input_image", image_url: "http://x"}]}]}, "input.0.content.0"],
            [{model: qwen, input: [{role: "user", content: [{type: "input_image", file_id: "file_1"}]}]}, "input.0.content.0.image_url"],
            [{model: qwen, input: [{type: "function_call_output", output: "x"}]}, "input.0.call_id"],
            [{model: qwen, input: [{type: "function_call", call_id: "c", arguments: "{}"}]}, "input.0.name"],
            [{model: qwen, input: [{type: "function_call", call_id: "c", name: "f", arguments: {city: "Paris"}}]}, "input.0.arguments"],
            [{model: qwen, input: [{type: "custom_tool_call", call_id: "c", name: "apply_patch"}]}, "input.0.input"],
            [{model: qwen, input: [{type: "tool_search_output", tools: []}]}, "input.0.call_id"],
            [{model: qwen, input: "Hi", tools: [{type: "namespace", name: "ns", tools: [{type: "custom", name: "bad name"}]}]}, "tools.0.tools.0.name"],
            [{model: qwen, input: []}, "input"],
            [{model: qwen, input: "Hi", tools: [{type: "function", description: "no name"}]}, "tools.0.name"],
            [{model: qwen, input: "Hi", tools: [{type: "function", name: "has space"}]}, "tools.0.name"],
            [{model: qwen, input: "Hi", tool_choice: {type: "function", name: "nope"}, tools: [getWeather]}, "tool_choice"],
            [{model: qwen, input: "Hi", tool_choice: "required"}, "tool_choice"],
            [{model: qwen, input: "Hi", max_output_tokens: 0}, "max_output_tokens"],
            [{model: qwen, input: "Hi", temperature: 5}, "temperature"],
            [{model: qwen, input: "Hi", text: {format: {type: "yaml"}}}, null],
            [{model: qwen, input: "Hi", reasoning: {effort: "huge"}}, null],
            [{model: qwen, input: "Hi", previous_response_id: "resp_nothing"}, "previous_response_id"]
        ];
        for (const [body, param] of cases) {
            const {status, json} = await raw("POST", "/v1/responses", body);
            assert.equal(status, 400, JSON.stringify(body));
            assert.ok(json.error?.message, JSON.stringify(json));
            if (param != null)
                assert.ok(json.error?.param?.startsWith(param), `${JSON.stringify(body)}: param ${json.error?.param}, wanted ${param}`);
        }
        const unknownModel = await raw("POST", "/v1/responses", {model: "no-such-model", input: "Hi"});
        assert.equal(unknownModel.status, 404);
    });
});
