import assert from "node:assert/strict";
import {describe, it} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import type {MessageCreateParamsNonStreaming} from "@anthropic-ai/sdk/resources/messages";
import type {GenerationEvent} from "../native/types.js";
import {messagesEncoder} from "../server/anthropic/messagesEncoder.js";
import {Reply, isFinished} from "../server/generation/index.js";
import {assertWeatherCall, greedyRequest, hello, weather} from "./helpers/anthropicRequests.js";
import {startTestServer, useTestServer} from "./helpers/testServer.js";

const qwen = "qwen3-script";
const llama = "llama3.1-script";
const server = useTestServer({modelFiles: ["scripted/qwen3-script.gguf", "scripted/llama3.1-script.gguf", "stories260K.gguf"], ctxSize: 4096});
const client = () => new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0});

const base = greedyRequest(qwen);

/** The text of a message's blocks of one type. */
function blocks(message: Anthropic.Message, type: "text" | "thinking"): string[] {
    return message.content.flatMap((block) => block.type === "text" && type === "text" ? [block.text] : block.type === "thinking" && type === "thinking" ? [block.thinking] : []);
}

describe("POST /v1/messages with the Anthropic SDK", () => {
    it("returns the thinking and the answer as blocks, with Anthropic's fields", async () => {
        const message = await client().messages.create({...base, thinking: {type: "enabled", budget_tokens: 1024}});
        assert.match(message.id, /^msg_/);
        assert.equal(message.type, "message");
        assert.equal(message.role, "assistant");
        assert.equal(message.model, qwen);
        assert.deepEqual(message.content.map((block) => block.type), ["thinking", "text"]);
        assert.equal(blocks(message, "thinking")[0]!.trim(), "Let me think.");
        assert.equal(blocks(message, "text")[0]!.trim(), "Hello from Qwen.");
        assert.equal(message.stop_reason, "end_turn");
        assert.equal(message.stop_sequence, null);
        assert.ok(message.usage.input_tokens > 0 && message.usage.output_tokens > 0, JSON.stringify(message.usage));
        assert.equal(message.usage.cache_creation_input_tokens, 0);
        assert.equal(typeof message.usage.cache_read_input_tokens, "number");
    });

    it("leaves thinking blocks out when thinking is disabled, and a model that does not think has none", async () => {
        const off = await client().messages.create({...base, thinking: {type: "disabled"}});
        assert.deepEqual(off.content.map((block) => block.type), ["text"]);
        assert.equal(blocks(off, "text")[0]!.trim(), "Hello from Qwen.");
        const plain = await client().messages.create({...base, model: llama, system: [{type: "text", text: "Be brief."}]});
        assert.deepEqual(plain.content.map((block) => block.type), ["text"]);
        assert.equal(blocks(plain, "text")[0]!.trim(), "Hello from Llama.");
    });

    it("omits thinking blocks on request, and takes output_config.effort", async () => {
        const omitted = await client().messages.create({...base, thinking: {type: "enabled", budget_tokens: 1024, display: "omitted"}});
        assert.deepEqual(omitted.content.map((block) => block.type), ["text"]);
        assert.ok(omitted.usage.output_tokens > 5, "the model still thought");
        const effort = await client().messages.create({...base, output_config: {effort: "low"}});
        assert.deepEqual(effort.content.map((block) => block.type), ["thinking", "text"]);
        const off = await client().messages.create({...base, thinking: {type: "disabled"}, output_config: {effort: "max"}});
        assert.deepEqual(off.content.map((block) => block.type), ["text"]);
    });

    it("answers in JSON matching output_config.format", async () => {
        const schema = {type: "object", properties: {name: {type: "string", enum: ["Anna", "Ben"]}}, required: ["name"], additionalProperties: false};
        const message = await client().messages.create({
            ...base, model: "stories260K", max_tokens: 60, messages: [{role: "user", content: "Once upon a time"}],
            output_config: {format: {type: "json_schema", schema}}
        });
        const answer = JSON.parse(blocks(message, "text").join("")) as {name: string};
        assert.ok(["Anna", "Ben"].includes(answer.name), JSON.stringify(answer));
        await assert.rejects(client().messages.create({...base, tools: [weather], output_config: {format: {type: "json_schema", schema}}}), (error: unknown) => {
            assert.ok(error instanceof Anthropic.BadRequestError, String(error));
            assert.match(error.message, /output_config\.format/);
            return true;
        });
    });

    it("calls a tool, and answers from its result", async () => {
        const call = await client().messages.create({...base, tools: [weather], messages: [{role: "user", content: "Weather in Paris?"}]});
        const use = assertWeatherCall(call);

        const answer = await client().messages.create({
            ...base,
            tools: [weather],
            messages: [
                {role: "user", content: "Weather in Paris?"},
                {role: "assistant", content: call.content.map((block) => block.type === "thinking" ? {...block} : block)},
                {role: "user", content: [{type: "tool_result", tool_use_id: use.id, content: [{type: "text", text: "sunny, 22 °C"}]}]}
            ]
        });
        assert.equal(answer.stop_reason, "end_turn");
        assert.equal(blocks(answer, "text").join("").trim(), "It is sunny in Paris.");
    });

    it("follows tool_choice any, tool and none", async () => {
        for (const tool_choice of [{type: "any"}, {type: "tool", name: "get_weather"}] as const) {
            const message = await client().messages.create({...base, tools: [weather], tool_choice});
            assert.equal(message.stop_reason, "tool_use", tool_choice.type);
            assert.ok(message.content.some((block) => block.type === "tool_use" && block.name === "get_weather"), JSON.stringify(message.content));
        }
        const none = await client().messages.create({...base, tools: [weather], tool_choice: {type: "none"}});
        assert.equal(none.stop_reason, "end_turn");
        assert.equal(blocks(none, "text")[0]!.trim(), "Hello from Qwen.");
        const single = await client().messages.create({...base, tools: [weather], tool_choice: {type: "auto", disable_parallel_tool_use: true}});
        assert.equal(single.content.filter((block) => block.type === "tool_use").length, 1);
    });

    it("stops at max_tokens and at a stop sequence, and says which", async () => {
        const short = await client().messages.create({...base, max_tokens: 3});
        assert.equal(short.stop_reason, "max_tokens");
        assert.equal(short.usage.output_tokens, 3);
        const stopped = await client().messages.create({...base, thinking: {type: "disabled"}, stop_sequences: ["from"]});
        assert.equal(stopped.stop_reason, "stop_sequence");
        assert.equal(stopped.stop_sequence, "from");
        assert.equal(blocks(stopped, "text").join("").trim(), "Hello");
    });

    it("counts a prompt's tokens as a message's usage counts them", async () => {
        const request = {model: qwen, system: "You are terse.", tools: [weather], messages: [{role: "user" as const, content: "Weather in Rome?"}]};
        const counted = await client().messages.countTokens(request);
        const message = await client().messages.create({...base, ...request, max_tokens: 50});
        assert.ok(counted.input_tokens > 20, JSON.stringify(counted));
        assert.equal(message.usage.input_tokens + message.usage.cache_read_input_tokens!, counted.input_tokens);
        const again = await client().messages.create({...base, ...request, max_tokens: 50});
        assert.ok(again.usage.cache_read_input_tokens! > 0, "the same prompt again is read from the slot's cache");
        assert.equal(again.usage.input_tokens + again.usage.cache_read_input_tokens!, counted.input_tokens);
    });

    it("refuses in Anthropic's error shape, which the SDK reads", async () => {
        const missing = await fetch(`${server.url}/v1/messages`, {
            method: "POST", headers: {"content-type": "application/json", "anthropic-version": "2023-06-01"}, body: JSON.stringify({model: qwen, messages: hello})
        });
        assert.equal(missing.status, 400);
        const body = await missing.json() as {type: string, error: {type: string, message: string}};
        assert.equal(body.type, "error");
        assert.equal(body.error.type, "invalid_request_error");
        assert.match(body.error.message, /max_tokens/);

        await assert.rejects(client().messages.create({...base, model: "no-such-model"}), (error: unknown) => {
            assert.ok(error instanceof Anthropic.NotFoundError, String(error));
            assert.equal((error.error as {error: {type: string}}).error.type, "not_found_error");
            return true;
        });
        await assert.rejects(client().messages.create({
            ...base,
            messages: [{role: "user", content: [{type: "image", source: {type: "base64", media_type: "image/png", data: "iVBORw0KGgo="}}]}]
        }), (error: unknown) => {
            assert.ok(error instanceof Anthropic.BadRequestError, String(error));
            assert.match(error.message, /image/);
            return true;
        });
        await assert.rejects(client().messages.countTokens({model: qwen, messages: []}), Anthropic.BadRequestError);
    });
});

describe("streaming /v1/messages", () => {
    it("streams thinking, then text, as Anthropic's named events, and finalMessage() matches create()", async () => {
        const request = {...base, thinking: {type: "enabled", budget_tokens: 1024}} satisfies MessageCreateParamsNonStreaming;
        const whole = await client().messages.create(request);
        const stream = client().messages.stream(request);
        const types: string[] = [];
        stream.on("streamEvent", (event) => types.push(event.type));
        const final = await stream.finalMessage();
        assert.equal(types[0], "message_start");
        assert.deepEqual(types.slice(-2), ["message_delta", "message_stop"]);
        assert.ok(types.includes("content_block_delta"));
        assert.deepEqual(final.content, whole.content);
        assert.equal(final.stop_reason, "end_turn");
        assert.equal(final.usage.output_tokens, whole.usage.output_tokens);
        assert.equal(final.usage.input_tokens + final.usage.cache_read_input_tokens!, whole.usage.input_tokens + whole.usage.cache_read_input_tokens!);
    });

    it("frames events with their names, a ping early, and each block's start, deltas and stop", async () => {
        const response = await fetch(`${server.url}/v1/messages`, {
            method: "POST",
            headers: {"content-type": "application/json", "anthropic-version": "2023-06-01"},
            body: JSON.stringify({...base, stream: true})
        });
        assert.equal(response.status, 200);
        assert.match(response.headers.get("content-type")!, /^text\/event-stream/);
        const frames = (await response.text()).trim().split("\n\n").map((frame) => {
            const [event, data] = frame.split("\n");
            return {event: event!.replace(/^event: /, ""), data: JSON.parse(data!.replace(/^data: /, "")) as {type: string, index?: number, content_block?: {type: string}, delta?: {type: string}}};
        });
        for (const frame of frames)
            assert.equal(frame.event, frame.data.type);
        assert.deepEqual(frames.slice(0, 2).map((frame) => frame.event), ["message_start", "ping"]);
        const starts = frames.filter((frame) => frame.event === "content_block_start");
        assert.deepEqual(starts.map((frame) => [frame.data.index, frame.data.content_block!.type]), [[0, "thinking"], [1, "text"]]);
        assert.deepEqual(frames.filter((frame) => frame.event === "content_block_stop").map((frame) => frame.data.index), [0, 1]);
        const deltas = new Set(frames.filter((frame) => frame.event === "content_block_delta").map((frame) => frame.data.delta!.type));
        assert.deepEqual([...deltas].sort(), ["text_delta", "thinking_delta"]);
    });

    it("streams a tool call as input_json_delta, and stops for tool_use", async () => {
        const stream = client().messages.stream({...base, tools: [weather], tool_choice: {type: "any"}});
        const partial: string[] = [];
        stream.on("inputJson", (delta) => partial.push(delta));
        const final = await stream.finalMessage();
        assert.equal(final.stop_reason, "tool_use");
        const use = final.content.find((block) => block.type === "tool_use");
        assert.ok(use != null && use.type === "tool_use");
        assert.match(use.id, /^toolu_/);
        assert.deepEqual(use.input, {city: "Paris"});
        assert.deepEqual(JSON.parse(partial.join("")), {city: "Paris"});
    });

    it("streams the stop reasons max_tokens and stop_sequence", async () => {
        const short = await client().messages.stream({...base, max_tokens: 3}).finalMessage();
        assert.equal(short.stop_reason, "max_tokens");
        const stopped = await client().messages.stream({...base, thinking: {type: "disabled"}, stop_sequences: ["from"]}).finalMessage();
        assert.equal(stopped.stop_reason, "stop_sequence");
        assert.equal(stopped.stop_sequence, "from");
    });

    it("refuses before the stream in Anthropic's shape", async () => {
        await assert.rejects(client().messages.stream({...base, model: "no-such-model"}).finalMessage(), Anthropic.NotFoundError);
    });
});

describe("/v1/messages behind an API key", () => {
    it("accepts the key as x-api-key, and refuses without it or past the rate limit in Anthropic's shape", async () => {
        const keyed = await startTestServer({apiKeys: ["anthropic-key-123"], modelFiles: ["stories260K.gguf"], rateLimitPerMinute: 1});
        try {
            const withKey = new Anthropic({baseURL: keyed.url, apiKey: "anthropic-key-123", maxRetries: 0});
            const message = await withKey.messages.create({model: "stories260K", max_tokens: 5, messages: [{role: "user", content: "Once upon a time"}]});
            assert.equal(message.type, "message");
            const counted = await withKey.messages.countTokens({model: "stories260K", messages: [{role: "user", content: "Once upon a time"}]});
            assert.ok(counted.input_tokens > 0);
            const wrongKey = new Anthropic({baseURL: keyed.url, apiKey: "wrong-key", maxRetries: 0});
            await assert.rejects(wrongKey.messages.create({model: "stories260K", max_tokens: 5, messages: hello}), (error: unknown) => {
                assert.ok(error instanceof Anthropic.AuthenticationError, String(error));
                assert.equal((error.error as {type: string, error: {type: string}}).error.type, "authentication_error");
                return true;
            });
            await assert.rejects(withKey.messages.create({model: "stories260K", max_tokens: 5, messages: hello}), (error: unknown) => {
                assert.ok(error instanceof Anthropic.RateLimitError, String(error));
                assert.equal((error.error as {error: {type: string}}).error.type, "rate_limit_error");
                return true;
            });
            const bare = await fetch(`${keyed.url}/v1/messages/count_tokens`, {method: "POST", headers: {"content-type": "application/json"}, body: "{}"});
            assert.equal(bare.status, 401);
            assert.deepEqual(Object.keys(await bare.json() as object).sort(), ["error", "type"]);
        } finally {
            await keyed.close();
        }
    });
});

describe("the /v1/messages stream encoder", () => {
    it("opens a block per change of kind and per call, and sends an error in Anthropic's shape", () => {
        const stream = messagesEncoder({id: "msg_x", model: "m", promptTokens: 10, stopSequences: [], thinking: true}).stream!;
        const reply = new Reply();
        const usage = {promptTokens: 10, completionTokens: 6, cachedPromptTokens: 4, reasoningTokens: 1};
        const events: GenerationEvent[] = [
            {type: "reasoning", text: "Hm."}, {type: "text", text: "A"}, {type: "text", text: "B"},
            {type: "toolCall", index: 0, id: "call_1", name: "f"}, {type: "toolCallArguments", index: 0, text: "{}"},
            {type: "toolCall", index: 1, id: "call_2", name: "g"}, {type: "toolCallArguments", index: 1, text: "{\"a\":1}"},
            {type: "done", finishReason: "tool_calls", usage, timings: {promptMs: 1, generationMs: 1, queueMs: 0}}
        ];
        const chunks = events.flatMap((event) => {
            reply.add(event);
            return stream.event(0, event, reply);
        }) as {type: string, index?: number, content_block?: {type: string, id?: string}}[];
        const summary = chunks.map((chunk) => `${chunk.type}:${chunk.index}${chunk.content_block != null ? `:${chunk.content_block.type}` : ""}`);
        assert.deepEqual(summary, [
            "content_block_start:0:thinking", "content_block_delta:0", "content_block_stop:0",
            "content_block_start:1:text", "content_block_delta:1", "content_block_delta:1", "content_block_stop:1",
            "content_block_start:2:tool_use", "content_block_delta:2", "content_block_stop:2",
            "content_block_start:3:tool_use", "content_block_delta:3", "content_block_stop:3"
        ]);
        assert.equal(chunks[7]!.content_block!.id, "toolu_1");
        assert.ok(isFinished(reply));
        assert.deepEqual(stream.end([reply]), [
            {type: "message_delta", delta: {stop_reason: "tool_use", stop_sequence: null},
                usage: {input_tokens: 6, output_tokens: 6, cache_read_input_tokens: 4, cache_creation_input_tokens: 0}},
            {type: "message_stop"}
        ]);
        assert.deepEqual(stream.error({statusCode: 503, body: {error: {message: "busy", type: "server_error", param: null, code: null}}}),
            [{type: "error", error: {type: "overloaded_error", message: "busy"}}]);
    });
});
