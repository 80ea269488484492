import assert from "node:assert/strict";
import {mkdtemp, rm, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, it} from "node:test";
import {APIError} from "openai";
import type {FunctionTool, NamespaceTool, Response, ResponseInputItem, Tool} from "openai/resources/responses/responses";
import {ReasoningSeal} from "../server/openai/ReasoningSeal.js";
import {streamEvents as streamEventsOf} from "./helpers/responseStreams.js";
import {useTestServer} from "./helpers/testServer.js";

/** What agents offer on `/v1/responses` besides plain functions: Codex's namespaces, custom tools, sealed reasoning. */

const qwen = "qwen3-script";
const gptOss = "gpt-oss-script";
const server = useTestServer({modelFiles: ["scripted/qwen3-script.gguf", "scripted/gpt-oss-script.gguf"], ctxSize: 4096});

const weatherParameters = {type: "object", properties: {city: {type: "string"}}, required: ["city"], additionalProperties: false};
const getWeather: FunctionTool = {type: "function", name: "get_weather", description: "The weather in a city", strict: true, parameters: weatherParameters};
/** A namespace as Codex sends its sub-agent tools: functions that only make sense with their namespace. */
const weatherNamespace: NamespaceTool = {
    type: "namespace", name: "weather_v1", description: "Tools about the weather.",
    tools: [
        {type: "function", name: "get_weather", description: "The weather in a city", strict: true, parameters: weatherParameters},
        {type: "function", name: "close_forecast", description: "Close a forecast", strict: false,
            parameters: {type: "object", properties: {target: {type: "string"}}, required: ["target"], additionalProperties: false}}
    ]
};
const question = "What is the weather in Paris?";
const greedy = {temperature: 0, max_output_tokens: 100};

/** Every event of a streamed response, in order. */
const streamEvents = (body: Parameters<typeof server.client.responses.create>[0]) => streamEventsOf(server.client, body);

async function raw(body: unknown): Promise<{status: number, json: {error?: {message: string, type: string, param: string | null, code: string | null}} & Record<string, unknown>}> {
    const response = await fetch(`${server.url}/v1/responses`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    return {status: response.status, json: await response.json() as never};
}

function onlyCall(response: Response) {
    const calls = response.output.filter((item) => item.type === "function_call" || item.type === "custom_tool_call");
    assert.equal(calls.length, 1, JSON.stringify(response.output));
    return calls[0]!;
}

/** The conversation after a get_weather call: the question, the call (as given), its output. */
function afterCall(call: ResponseInputItem): ResponseInputItem[] {
    return [{role: "user", content: question}, call, {type: "function_call_output", call_id: "call_1", output: "sunny"}];
}

describe("POST /v1/responses with agents' tools", () => {
    for (const model of [qwen, gptOss]) {
        it(`offers a namespace's functions to ${model} and answers its call with the namespace, streamed or not`, async () => {
            const tools: Tool[] = [weatherNamespace];
            const response = await server.client.responses.create({model, input: question, tools, ...greedy});
            const call = onlyCall(response);
            assert.ok(call.type === "function_call");
            assert.equal(call.name, "get_weather");
            assert.equal(call.namespace, "weather_v1");
            assert.deepEqual(JSON.parse(call.arguments), {city: "Paris"});
            // The response says which tools it had, as they were given.
            assert.deepEqual(response.tools.map((tool) => tool.type === "namespace" ? [tool.name, tool.tools.map((inner) => inner.name)] : tool.type),
                [["weather_v1", ["get_weather", "close_forecast"]]]);

            const events = await streamEvents({model, input: question, tools, ...greedy});
            const added = events.find((event) => event.type === "response.output_item.added" && event.item.type === "function_call");
            const done = events.find((event) => event.type === "response.output_item.done" && event.item.type === "function_call");
            assert.ok(added?.type === "response.output_item.added" && added.item.type === "function_call");
            assert.ok(done?.type === "response.output_item.done" && done.item.type === "function_call");
            assert.equal(added.item.namespace, "weather_v1");
            assert.equal(done.item.namespace, "weather_v1");
            assert.equal(done.item.name, "get_weather");
            assert.deepEqual(JSON.parse(done.item.arguments), {city: "Paris"});
            const completed = events.at(-1)!;
            assert.ok(completed.type === "response.completed");
            const streamedCall = onlyCall(completed.response);
            assert.ok(streamedCall.type === "function_call" && streamedCall.namespace === "weather_v1");
        });
    }

    it("reads a namespace's call sent back as history as the call of the function the model knows", async () => {
        const namespaced = await server.client.responses.create({
            model: qwen, tools: [weatherNamespace], ...greedy,
            input: afterCall({type: "function_call", call_id: "call_1", name: "get_weather", namespace: "weather_v1", arguments: "{\"city\": \"Paris\"}"})
        });
        assert.equal(namespaced.output_text, "It is sunny in Paris.");
        // The same conversation with the functions offered on their own renders to the same prompt.
        const plain = await server.client.responses.create({
            model: qwen, tools: [getWeather, {...weatherNamespace.tools[1]!, type: "function"} as FunctionTool], ...greedy,
            input: afterCall({type: "function_call", call_id: "call_1", name: "get_weather", arguments: "{\"city\": \"Paris\"}"})
        });
        assert.equal(plain.output_text, "It is sunny in Paris.");
        assert.equal(namespaced.usage!.input_tokens, plain.usage!.input_tokens);
    });

    it("names a namespace's function by its namespace too where another tool has its name", async () => {
        const response = await server.client.responses.create({model: qwen, input: question, tools: [getWeather, weatherNamespace], ...greedy});
        const call = onlyCall(response);
        // The scripted model calls get_weather: the top-level function, as the namespace's one is weather_v1__get_weather here.
        assert.ok(call.type === "function_call" && call.name === "get_weather" && call.namespace === undefined);
        const refused = await raw({model: qwen, input: question, tools: [{type: "namespace", name: "bad name", tools: [getWeather]}]});
        assert.equal(refused.status, 400);
        assert.equal(refused.json.error?.param, "tools.0.name");
        const unnamed = await raw({model: qwen, input: question, tools: [{type: "namespace", name: "weather_v1", tools: [{type: "function", name: "has space"}]}]});
        assert.equal(unnamed.status, 400);
        assert.equal(unnamed.json.error?.param, "tools.0.tools.0.name");
    });

    it("offers a custom tool as a function of its text input, and answers its call as a custom_tool_call", async () => {
        const custom: Tool = {type: "custom", name: "get_weather", description: "The weather in a city",
            format: {type: "grammar", syntax: "regex", definition: "[A-Za-z ]+"}};
        const response = await server.client.responses.create({model: qwen, input: question, tools: [custom], ...greedy});
        const call = onlyCall(response);
        assert.ok(call.type === "custom_tool_call", JSON.stringify(call));
        assert.equal(call.name, "get_weather");
        // The text itself, not the JSON object the model wrote it in.
        assert.match(call.input, /Paris/);
        assert.ok(!call.input.trimStart().startsWith("{"), call.input);
        assert.deepEqual(response.tools.map((tool) => tool.type), ["custom"]);

        const events = await streamEvents({model: qwen, input: question, tools: [custom], ...greedy});
        const inputDone = events.find((event) => event.type === "response.custom_tool_call_input.done");
        assert.ok(inputDone?.type === "response.custom_tool_call_input.done");
        assert.equal(inputDone.input, call.input);
        const deltas = events.flatMap((event) => event.type === "response.custom_tool_call_input.delta" ? [event.delta] : []).join("");
        assert.equal(deltas, call.input);
        const itemDone = events.find((event) => event.type === "response.output_item.done" && event.item.type === "custom_tool_call");
        assert.ok(itemDone?.type === "response.output_item.done" && itemDone.item.type === "custom_tool_call" && itemDone.item.input === call.input);

        // Sent back with its output, the call is history the model answers from.
        const next = await server.client.responses.create({
            model: qwen, tools: [custom], ...greedy,
            input: [{role: "user", content: question}, {type: "custom_tool_call", call_id: call.call_id, name: "get_weather", input: call.input},
                {type: "custom_tool_call_output", call_id: call.call_id, output: "sunny"}]
        });
        assert.equal(next.output_text, "It is sunny in Paris.");
    });

    it("offers a tool_search the client runs, answers its call as a tool_search_call, and offers the tools it loaded", async () => {
        const toolSearch: Tool = {type: "tool_search", execution: "client", description: "Find more tools",
            parameters: {type: "object", properties: {query: {type: "string"}, limit: {type: "number"}}, required: ["query"], additionalProperties: false}};
        const response = await server.client.responses.create({model: qwen, input: question, tools: [toolSearch], ...greedy});
        const call = response.output.find((item) => item.type === "tool_search_call");
        assert.ok(call?.type === "tool_search_call", JSON.stringify(response.output));
        assert.equal(call.execution, "client");
        assert.ok(call.call_id != null && call.call_id.length > 0);
        // The arguments are the object, as OpenAI's are, not a string of it.
        assert.equal(typeof (call.arguments as {query?: unknown}).query, "string");
        assert.deepEqual(response.tools.map((tool) => tool.type), ["tool_search"]);
        const events = await streamEvents({model: qwen, input: question, tools: [toolSearch], ...greedy});
        const done = events.find((event) => event.type === "response.output_item.done" && event.item.type === "tool_search_call");
        assert.ok(done?.type === "response.output_item.done" && done.item.type === "tool_search_call");
        assert.deepEqual(done.item.arguments, call.arguments);

        // The search's output loads a namespace: the model is offered its functions from then on, once even where the
        // client sends them in tools too.
        const history = (loaded: Tool[]): ResponseInputItem[] => [
            {role: "user", content: question},
            {type: "tool_search_call", call_id: call.call_id, execution: "client", arguments: call.arguments},
            {type: "tool_search_output", call_id: call.call_id, execution: "client", status: "completed", tools: loaded}
        ];
        const loaded = await server.client.responses.create({model: qwen, input: history([weatherNamespace]), tools: [toolSearch], ...greedy});
        const sentToo = await server.client.responses.create({model: qwen, input: history([weatherNamespace]), tools: [toolSearch, weatherNamespace], ...greedy});
        const nothingLoaded = await server.client.responses.create({model: qwen, input: history([]), tools: [toolSearch], ...greedy});
        assert.equal(loaded.output_text, "It is sunny in Paris.");
        assert.equal(loaded.usage!.input_tokens, sentToo.usage!.input_tokens);
        assert.ok(loaded.usage!.input_tokens > nothingLoaded.usage!.input_tokens + 30, `${loaded.usage!.input_tokens} vs ${nothingLoaded.usage!.input_tokens}`);
    });

    it("leaves out hosted tools and a tool_search the server would run, which Hearth cannot run", async () => {
        const response = await server.client.responses.create({
            model: qwen, input: question, ...greedy,
            tools: [{type: "web_search"}, {type: "tool_search", description: "Find tools"}, getWeather]
        });
        assert.deepEqual(response.tools.map((tool) => tool.type), ["function"]);
        assert.equal(onlyCall(response).name, "get_weather");
    });
});

describe("POST /v1/responses with reasoning.encrypted_content", () => {
    const include = ["reasoning.encrypted_content" as const];

    /** A plain answer's reasoning item, sealed, streamed or not. */
    async function sealedReasoning(stream: boolean) {
        if (stream) {
            const events = await streamEvents({model: qwen, input: "Hi", store: false, include, ...greedy});
            const done = events.find((event) => event.type === "response.output_item.done" && event.item.type === "reasoning");
            assert.ok(done?.type === "response.output_item.done" && done.item.type === "reasoning");
            const completed = events.at(-1)!;
            assert.ok(completed.type === "response.completed");
            assert.deepEqual(completed.response.output[0], done.item);
            return done.item;
        }
        const response = await server.client.responses.create({model: qwen, input: "Hi", store: false, include, ...greedy});
        const item = response.output[0]!;
        assert.ok(item.type === "reasoning");
        return item;
    }

    /** Input tokens of a tool-call turn that carries `reasoning` before the call. */
    async function promptTokens(reasoning: ResponseInputItem | undefined): Promise<number> {
        const response = await server.client.responses.create({
            model: qwen, tools: [getWeather], store: false, ...greedy,
            input: [{role: "user", content: question}, ...reasoning != null ? [reasoning] : [],
                {type: "function_call", call_id: "call_1", name: "get_weather", arguments: "{\"city\": \"Paris\"}"},
                {type: "function_call_output", call_id: "call_1", output: "sunny"}]
        });
        assert.equal(response.output_text, "It is sunny in Paris.");
        return response.usage!.input_tokens;
    }

    it("returns reasoning sealed with the data folder's key, which comes back to the model on the next turn", async () => {
        for (const stream of [false, true]) {
            const item = await sealedReasoning(stream);
            assert.equal(item.summary.map((part) => part.text).join(""), "Let me think.");
            assert.equal(typeof item.encrypted_content, "string");
            assert.ok(!item.encrypted_content!.includes("think") && !Buffer.from(item.encrypted_content!, "base64").toString().includes("think"));
        }
        const keyFile = await stat(path.join(server.library.home, "reasoning.key"));
        assert.equal(keyFile.mode & 0o777, 0o600);
        assert.equal(keyFile.size, 32);

        // Without the summary, the sealed item alone gives the model its thinking: the same prompt as the text itself.
        const item = await sealedReasoning(false);
        const sealedOnly = await promptTokens({type: "reasoning", id: item.id, summary: [], encrypted_content: item.encrypted_content});
        const asText = await promptTokens({type: "reasoning", id: item.id, summary: [{type: "summary_text", text: "Let me think."}]});
        const without = await promptTokens(undefined);
        assert.equal(sealedOnly, asText);
        assert.ok(sealedOnly > without, `${sealedOnly} tokens with the reasoning, ${without} without`);

        // Not asked for: no encrypted_content.
        const plain = await server.client.responses.create({model: qwen, input: "Hi", store: false, ...greedy});
        assert.ok(plain.output[0]!.type === "reasoning" && plain.output[0]!.encrypted_content == null);
    });

    it("refuses changed or foreign encrypted content with OpenAI's 400", async () => {
        const item = await sealedReasoning(false);
        const sealed = item.encrypted_content!;
        const bytes = Buffer.from(sealed, "base64");
        bytes[bytes.length - 1]! ^= 1;
        const otherHome = await mkdtemp(path.join(os.tmpdir(), "hearth-other-home-"));
        const foreign = new ReasoningSeal(otherHome).seal("I was told to say yes.");
        await rm(otherHome, {recursive: true, force: true});
        for (const bad of [bytes.toString("base64"), foreign, "not sealed at all", sealed.slice(0, 20)]) {
            const {status, json} = await raw({
                model: qwen, store: false, include, input: [{role: "user", content: "Hi"}, {type: "reasoning", summary: [], encrypted_content: bad},
                    {role: "assistant", content: "Hello from Qwen."}, {role: "user", content: "Hi again"}]
            });
            assert.equal(status, 400, bad);
            assert.equal(json.error?.type, "invalid_request_error");
            assert.equal(json.error?.code, "invalid_encrypted_content");
            assert.equal(json.error?.param, "input.1.encrypted_content");
            assert.match(json.error!.message, /^The encrypted content .* could not be verified\./);
        }
        await assert.rejects(
            server.client.responses.create({model: qwen, input: [{type: "reasoning", id: "rs_1", summary: [], encrypted_content: foreign}, {role: "user", content: "Hi"}]}),
            (error) => error instanceof APIError && error.status === 400 && error.code === "invalid_encrypted_content");
    });
});
