import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import type {Llama, LlamaContext, LlamaModel, Token} from "node-llama-cpp";
import {Ollama} from "ollama";
import type OpenAI from "openai";
import {nativeContextOf} from "../native/addonAccess.js";
import {DecodeLoop} from "../native/decode/DecodeLoop.js";
import {NativeDecodeLoop} from "../native/decode/NativeDecodeLoop.js";
import {KvSequence} from "../native/decode/SlotDecoder.js";
import type {SlotDecoder} from "../native/decode/SlotDecoder.js";
import {weather} from "./helpers/anthropicRequests.js";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

// Small slots, so that prompts that fill them are quick to evaluate: the reproduction of an 8,073-token prompt in an
// 8,192-token slot, at an eighth of the size.
const ctxSize = 1024;
const llama31 = "llama3.1-script";
const loops = ["native", "javascript"] as const;

type SseEvent = {event: string, data: Record<string, unknown>};

async function postSse(server: TestServer, path: string, body: Record<string, unknown>): Promise<{events: SseEvent[], endedAt: number}> {
    const response = await fetch(`${server.url}${path}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({...body, stream: true})});
    assert.equal(response.status, 200, await response.clone().text());
    const text = await response.text();
    const endedAt = performance.now();
    const events = text.split("\n\n").filter((block) => block.trim() !== "").flatMap((block) => {
        const event = /^event: (.+)$/m.exec(block)?.[1] ?? "message";
        const data = /^data: (.+)$/m.exec(block)?.[1];
        return data == null || data === "[DONE]" ? [] : [{event, data: JSON.parse(data) as Record<string, unknown>}];
    });
    return {events, endedAt};
}

/** A user message of `words` one-token words: its prompt grows by exactly one token a word. */
const filler = (words: number) => Array.from({length: words}, () => "a").join(" ");

/** How many filler words make a chat prompt with `extra` fields (its tools) exactly `tokens` long, found from the prompt of one word. */
async function wordsForPrompt(server: TestServer, tokens: number, extra: Record<string, unknown> = {}): Promise<number> {
    const {usage} = await server.client.chat.completions.create({model: llama31, max_tokens: 1, temperature: 0, messages: [{role: "user", content: filler(1)}], ...extra});
    return tokens - usage!.prompt_tokens + 1;
}

/** The same for a `/v1/messages` request with `extra` fields (its tools), counted by count_tokens. */
async function wordsForMessages(server: TestServer, tokens: number, extra: Record<string, unknown>): Promise<number> {
    const counted = await fetch(`${server.url}/v1/messages/count_tokens`, {method: "POST", headers: {"content-type": "application/json"},
        body: JSON.stringify({model: llama31, ...extra, messages: [{role: "user", content: filler(1)}]})}).then((response) => response.json()) as {input_tokens: number};
    return tokens - counted.input_tokens + 1;
}

for (const loop of loops) {
    describe(`context limits on the ${loop} decode loop`, () => {
        let server: TestServer;
        const logLines: string[] = [];
        before(async () => {
            server = await startTestServer({
                modelFiles: ["scripted/llama3.1-script.gguf"], ctxSize, parallel: 2, threads: 2, decodeLoop: loop === "native" ? "auto" : "javascript",
                logger: {level: "warn", stream: {write: (line: string) => logLines.push(line)}}
            });
        });
        after(async () => {
            await server?.close();
        });

        it("ends a forced call that fills its slot with model_context_window_exceeded and no error, while a reply on the other slot finishes untouched", async () => {
            const other = {model: llama31, prompt: "Once upon a time", max_tokens: 600, temperature: 0};
            const alone = await postSse(server, "/v1/completions", other);
            const text = (events: SseEvent[]) => events.map((event) => (event.data.choices as {text: string}[] | undefined)?.[0]?.text ?? "").join("");
            const finish = (events: SseEvent[]) => events.flatMap((event) => (event.data.choices as {finish_reason: string | null}[] | undefined) ?? [])
                .map((choice) => choice.finish_reason).filter((reason) => reason != null);

            // A prompt that leaves the forced call fewer tokens than its arguments need, with max_tokens far beyond.
            const forced = {tools: [weather], tool_choice: {type: "any"}};
            const words = await wordsForMessages(server, ctxSize - 12, forced);
            const concurrent = postSse(server, "/v1/completions", other);
            await new Promise((resolve) => setTimeout(resolve, 50));
            const call = await postSse(server, "/v1/messages", {model: llama31, max_tokens: 3000, temperature: 0, ...forced, messages: [{role: "user", content: filler(words)}]});
            const kinds = call.events.map((event) => event.event);
            assert.ok(!kinds.includes("error"), JSON.stringify(call.events.at(-1)));
            const delta = call.events.find((event) => event.event === "message_delta")!.data as {delta: {stop_reason: string}, usage: {input_tokens: number, output_tokens: number}};
            assert.equal(delta.delta.stop_reason, "model_context_window_exceeded");
            assert.equal(delta.usage.input_tokens, ctxSize - 12);
            assert.ok(delta.usage.output_tokens > 0);
            assert.ok(delta.usage.input_tokens + delta.usage.output_tokens <= ctxSize);
            assert.ok(kinds.includes("content_block_start"), "the call began");
            assert.equal(kinds.at(-1), "message_stop");

            const together = await concurrent;
            assert.ok(together.endedAt > call.endedAt, "the other reply was still generating when the call filled its slot");
            assert.equal(text(together.events), text(alone.events), "the other reply is the same as alone");
            assert.deepEqual(finish(together.events), ["length"]);
            assert.ok(!together.events.some((event) => "error" in event.data));

            // Not streamed, the same.
            const message = await new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0}).messages.create({
                model: llama31, max_tokens: 3000, temperature: 0, tools: [weather], tool_choice: {type: "any"}, messages: [{role: "user", content: filler(words)}]
            } as Anthropic.MessageCreateParamsNonStreaming);
            assert.equal(message.stop_reason, "model_context_window_exceeded");
        });

        it("says max_tokens, not the context, when max_tokens ends the reply first", async () => {
            const message = await new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0}).messages.create({
                model: llama31, max_tokens: 3, temperature: 0, messages: [{role: "user", content: "Hi"}]
            } as Anthropic.MessageCreateParamsNonStreaming);
            assert.equal(message.stop_reason, "max_tokens");
        });

        it("cuts OpenAI's and Ollama's replies to what fits the slot, ending with length", async () => {
            // Three tokens are left of the slot: "Hello from Llama." needs more.
            const words = await wordsForPrompt(server, ctxSize - 3);
            const messages = [{role: "user" as const, content: filler(words)}];
            const chat = await server.client.chat.completions.create({model: llama31, max_tokens: 500, temperature: 0, messages});
            assert.equal(chat.choices[0]!.finish_reason, "length");
            assert.equal(chat.usage!.prompt_tokens, ctxSize - 3);
            assert.equal(chat.usage!.completion_tokens, 3);
            assert.ok("Hello from Llama.".startsWith(chat.choices[0]!.message.content!) && chat.choices[0]!.message.content !== "", chat.choices[0]!.message.content!);

            // A forced call, whose injected opening counts against the slot too.
            const tools = {tools: [{type: "function", function: {name: weather.name, description: weather.description, parameters: weather.input_schema}}], tool_choice: "required"};
            const callWords = await wordsForPrompt(server, ctxSize - 8, tools);
            const called = await server.client.chat.completions.create({model: llama31, max_tokens: 500, temperature: 0, messages: [{role: "user", content: filler(callWords)}], ...tools} as never) as OpenAI.ChatCompletion;
            assert.equal(called.choices[0]!.finish_reason, "length");
            assert.ok(called.usage!.prompt_tokens + called.usage!.completion_tokens <= ctxSize);

            const response = await server.client.responses.create({model: llama31, max_output_tokens: 500, temperature: 0, input: messages});
            assert.equal(response.status, "incomplete");
            assert.equal(response.incomplete_details?.reason, "max_output_tokens");

            const completion = await server.client.completions.create({model: llama31, max_tokens: 5000, temperature: 0, prompt: filler(ctxSize - 10)});
            assert.equal(completion.choices[0]!.finish_reason, "length");
            assert.ok(completion.usage!.prompt_tokens + completion.usage!.completion_tokens <= ctxSize);

            const ollama = await new Ollama({host: server.url}).chat({model: llama31, messages, options: {num_predict: 500, temperature: 0}});
            assert.equal(ollama.done_reason, "length");
            assert.equal(ollama.eval_count, 3);
        });

        it("refuses a prompt longer than the slot in each API's own words, and warns once how to give slots more context", async () => {
            const content = filler(ctxSize + 50);
            const counted = await fetch(`${server.url}/v1/messages/count_tokens`, {method: "POST", headers: {"content-type": "application/json"},
                body: JSON.stringify({model: llama31, messages: [{role: "user", content}]})}).then((response) => response.json()) as {input_tokens: number};
            for (const stream of [false, true]) {
                const response = await fetch(`${server.url}/v1/messages`, {method: "POST", headers: {"content-type": "application/json"},
                    body: JSON.stringify({model: llama31, max_tokens: 32000, stream, messages: [{role: "user", content}]})});
                assert.equal(response.status, 400);
                const body = await response.json() as {type: string, error: {type: string, message: string}};
                assert.equal(body.type, "error");
                assert.equal(body.error.type, "invalid_request_error");
                // What Claude Code matches before it compacts its history.
                assert.match(body.error.message, /^prompt is too long: \d+ tokens > \d+ maximum$/);
                assert.equal(body.error.message, `prompt is too long: ${counted.input_tokens} tokens > ${ctxSize - 1} maximum`);
            }

            const chat = await fetch(`${server.baseURL}/chat/completions`, {method: "POST", headers: {"content-type": "application/json"},
                body: JSON.stringify({model: llama31, messages: [{role: "user", content}]})});
            assert.equal(chat.status, 400);
            const chatError = (await chat.json() as {error: {message: string, type: string, code: string, param: string}}).error;
            assert.equal(chatError.code, "context_length_exceeded");
            assert.equal(chatError.type, "invalid_request_error");
            assert.equal(chatError.param, "messages");
            assert.match(chatError.message, new RegExp(`^This model's maximum context length is ${ctxSize} tokens\\. However, your messages resulted in ${counted.input_tokens} tokens\\. Please reduce the length of the messages\\.$`));

            const completion = await fetch(`${server.baseURL}/completions`, {method: "POST", headers: {"content-type": "application/json"},
                body: JSON.stringify({model: llama31, prompt: content})});
            const completionError = (await completion.json() as {error: {message: string, code: string}}).error;
            assert.equal(completion.status, 400);
            assert.equal(completionError.code, "context_length_exceeded");
            assert.match(completionError.message, /^This model's maximum context length is 1024 tokens\. However, your prompt resulted in \d+ tokens\. Please reduce the length of the prompt\.$/);

            const responses = await fetch(`${server.baseURL}/responses`, {method: "POST", headers: {"content-type": "application/json"},
                body: JSON.stringify({model: llama31, input: content})});
            assert.equal(responses.status, 400);
            assert.equal((await responses.json() as {error: {code: string}}).error.code, "context_length_exceeded");

            const ollama = await fetch(`${server.url}/api/chat`, {method: "POST", body: JSON.stringify({model: llama31, stream: false, messages: [{role: "user", content}]})});
            assert.equal(ollama.status, 400);
            assert.match((await ollama.json() as {error: string}).error, /^This prompt is \d+ tokens long, but the model's context is 1024 tokens per slot/);

            const warnings = logLines.map((line) => JSON.parse(line) as {level: number, msg: string, model?: string}).filter((line) => line.level === 40 && line.model === llama31);
            assert.equal(warnings.length, 1, warnings.map((line) => line.msg).join("\n"));
            const warning = warnings[0]!.msg;
            assert.ok(warning.includes(`A ${counted.input_tokens.toLocaleString("en-US")}-token prompt`), warning);
            for (const part of ["1,024 tokens each", "--ctx-size", "--parallel", "--kv-cache-type q8_0", "Coding agents need Claude Code about 32,000 tokens per slot", "Qwen Code 16,000", "Codex 12,000"])
                assert.ok(warning.includes(part), `${part}: ${warning}`);
        });
    });
}

describe("a batch that one sequence cannot join", () => {
    let llama: Llama;
    let model: LlamaModel;
    before(async () => {
        llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
        model = await llama.loadModel({modelPath: await testModel("stories260K.gguf")});
    });
    after(async () => {
        await model?.dispose();
    });

    /** The tokens of one generation, and the error it ended with, if any. */
    async function run(decoder: SlotDecoder, sequence: KvSequence, text: string, maxTokens: number): Promise<{tokens: Token[], error?: Error}> {
        const tokens: Token[] = [];
        try {
            for await (const {token} of decoder.generate(sequence, model.tokenize(text), {sampling: {temperature: 0}, history: [], maxTokens, ignoreEos: true}))
                tokens.push(token);
        } catch (error) {
            return {tokens, error: error as Error};
        }
        return {tokens};
    }

    for (const loop of loops) {
        it(`fails only the sequence at fault, on the ${loop} decode loop`, async () => {
            // Each of the two sequences has 256 cells of its own (node-llama-cpp asks llama.cpp for a stream per sequence).
            const context: LlamaContext = await model.createContext({contextSize: 256, sequences: 2, batchSize: 128, threads: 1});
            const created = loop === "native" ? NativeDecodeLoop.create(model, context) : new DecodeLoop(model, nativeContextOf(context), context.batchSize);
            assert.ok(!("reason" in created), "reason" in created ? created.reason : "");
            const decoder = created as SlotDecoder;
            try {
                const short = new KvSequence(0);
                const long = new KvSequence(1);
                const alone = await run(decoder, short, "Lily and Ben", 150);
                assert.equal(alone.tokens.length, 150);
                await decoder.truncate(short, 0);

                // The long prompt's generation runs past its 256 cells while the short one is generating beside it.
                const [overflowing, beside] = await Promise.all([
                    run(decoder, long, "Once upon a time, there was a little girl named Lily. ".repeat(14), 1000),
                    run(decoder, short, "Lily and Ben", 150)
                ]);
                assert.ok(overflowing.error != null, `the overflowing generation fails (${overflowing.tokens.length} tokens)`);
                assert.ok(overflowing.tokens.length > 0 && overflowing.tokens.length < 150, `${overflowing.tokens.length} tokens before it failed`);
                assert.equal(beside.error, undefined, beside.error?.message);
                assert.deepEqual(beside.tokens, alone.tokens, "the other generation is the same as alone");
                assert.equal(long.contextTokens.length, 0, "the failed sequence was dropped from the cache");
                assert.equal(short.contextTokens.length, model.tokenize("Lily and Ben").length + 149);
            } finally {
                await decoder.close();
                await context.dispose();
            }
        });
    }
});
