import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import fc from "fast-check";
import type OpenAI from "openai";
import type {SpeculationSettings} from "../native/decode/speculation.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

/**
 * Speculative decoding never changes a greedy reply: for random prompts and random predictions of the reply (the reply
 * itself, one whose middle was changed so the reply lines up with it again after, a prefix, unrelated text), every
 * speculation mode on both decode loops gives what the native loop gives with drafting off, on stories260K, on a
 * scripted model calling a tool and answering after its result, and under a json_schema response_format.
 */
const modelFiles = ["stories260K.gguf", "scripted/qwen3-script.gguf"];
const draftMax = 8;
const modes: Record<string, SpeculationSettings> = {
    off: {mode: "off", draftMax},
    ngram: {mode: "ngram", draftMax},
    // auto's n-gram drafts, which it makes on its own only where every layer is on a GPU.
    auto: {mode: "auto", draftMax, ngram: true},
    // auto on the CPU: only a request's prediction drafts.
    prediction: {mode: "auto", draftMax, ngram: false}
};
const loops = {native: "auto", javascript: "javascript"} as const;

type Server = {name: string, mode: string, server: TestServer};
const servers: Server[] = [];
let reference: TestServer;

/** Text with repeats in it, which n-grams draft from. */
const words = ["Lily", "Ben", "the", "park", "dog", "ball", "said", "hello", "and", "went", "to", "a", "big", "red", "happy", "Paris", "weather", "city", "{\"name\":", "\n"];
const phrase = fc.array(fc.constantFrom(...words), {minLength: 1, maxLength: 10}).map((chosen) => chosen.join(" "));
const prompt = fc.tuple(phrase, fc.integer({min: 1, max: 3})).map(([text, times]) => Array.from({length: times}, () => text).join(". "));

/** How a prediction is made from the expected reply. */
const predictionShape = fc.oneof(
    fc.constant({kind: "none" as const}),
    fc.constant({kind: "exact" as const}),
    fc.record({kind: fc.constant("edit" as const), from: fc.double({min: 0, max: 1, noNaN: true}), to: fc.double({min: 0, max: 1, noNaN: true}), insert: phrase}),
    fc.record({kind: fc.constant("prefix" as const), to: fc.double({min: 0, max: 1, noNaN: true})}),
    fc.record({kind: fc.constant("unrelated" as const), text: phrase}),
    // JSON whose keys the schema does not have: the grammar refuses the drafts from there.
    fc.constant({kind: "misnamed" as const})
);
type PredictionShape = typeof predictionShape extends fc.Arbitrary<infer T> ? T : never;

function predictionOf(shape: PredictionShape, text: string): {prediction: {type: "content", content: string}} | Record<string, never> {
    const at = (fraction: number) => Math.floor(fraction * text.length);
    switch (shape.kind) {
        case "none":
            return {};
        case "exact":
            return {prediction: {type: "content", content: text}};
        case "edit": {
            const [from, to] = [at(Math.min(shape.from, shape.to)), at(Math.max(shape.from, shape.to))];
            return {prediction: {type: "content", content: text.slice(0, from) + shape.insert + text.slice(to)}};
        }
        case "prefix":
            return {prediction: {type: "content", content: text.slice(0, at(shape.to))}};
        case "unrelated":
            return {prediction: {type: "content", content: shape.text}};
        case "misnamed":
            return {prediction: {type: "content", content: text.replace(/"([a-z]+)":/g, "\"$1s\":")}};
    }
}

/** A reply, and its usage's prediction counts (accepted and rejected tokens). */
type Answer<T> = {reply: T, counts: [number | undefined, number | undefined]};
type Usage = {completion_tokens_details?: {accepted_prediction_tokens?: number, rejected_prediction_tokens?: number}} | undefined;
const countsOf = (usage: Usage): Answer<unknown>["counts"] =>
    [usage?.completion_tokens_details?.accepted_prediction_tokens, usage?.completion_tokens_details?.rejected_prediction_tokens];

/**
 * Asks every server the same thing (with a prediction made from the reference's reply) and compares each reply with the
 * reference's. With `sameCounts`, also a mode's prediction counts on the two loops, which draft alike: a reply of one
 * phase only (a reply in phases, such as a tool call, stops drafting where the reader ends a phase, as far as the loop
 * had run ahead by then).
 */
async function sameEverywhere<T>(ask: (server: TestServer, extra: Record<string, unknown>) => Promise<Answer<T>>, textOf: (reply: T) => string,
    shape: PredictionShape, label: string, sameCounts: boolean): Promise<void> {
    const expected = (await ask(reference, {})).reply;
    const extra = predictionOf(shape, textOf(expected));
    const counts = new Map<string, Answer<T>["counts"]>();
    for (const {name, mode, server} of servers) {
        const answer = await ask(server, extra);
        assert.deepEqual(answer.reply, expected, `${name}: ${label} ${JSON.stringify(extra)}`);
        const other = counts.get(mode);
        if (other != null && sameCounts)
            assert.deepEqual(answer.counts, other, `${mode}: the prediction's counts on both loops: ${label} ${JSON.stringify(extra)}`);
        counts.set(mode, answer.counts);
    }
}

type Ps = {models: {name: string, speculation: {drafted_tokens: number, accepted_tokens: number}}[]};

/** Tokens each server has drafted and kept so far, for a model. */
async function drafted(model: string): Promise<Map<string, {drafted: number, accepted: number}>> {
    const counts = new Map<string, {drafted: number, accepted: number}>();
    for (const {name, server} of servers) {
        const ps = await fetch(`${server.url}/api/ps`).then((response) => response.json()) as Ps;
        const speculation = ps.models.find((entry) => entry.name === model)?.speculation;
        counts.set(name, {drafted: speculation?.drafted_tokens ?? 0, accepted: speculation?.accepted_tokens ?? 0});
    }
    return counts;
}

/** The runs drafted on every server whose mode drafts, and some of it was kept: the property was not met by drafting nothing. */
function assertDrafted(before: Map<string, {drafted: number, accepted: number}>, after: Map<string, {drafted: number, accepted: number}>): void {
    for (const {name, mode} of servers) {
        if (mode === "off")
            continue;
        const accepted = after.get(name)!.accepted - before.get(name)!.accepted;
        assert.ok(accepted > 0, `${name} drafted and kept tokens: ${JSON.stringify([...after])}`);
    }
}

async function complete(server: TestServer, body: Record<string, unknown>): Promise<Answer<{text: string, finish: string | null}>> {
    const response = await server.client.completions.create({model: "stories260K", temperature: 0, ...body} as never) as unknown as {
        choices: {text: string, finish_reason: string | null}[],
        usage: Usage
    };
    return {reply: {text: response.choices[0]!.text, finish: response.choices[0]!.finish_reason}, counts: countsOf(response.usage)};
}

describe("speculative decoding keeps greedy replies (property)", () => {
    before(async () => {
        const started = await Promise.all(Object.entries(loops).flatMap(([loop, decodeLoop]) => Object.entries(modes).map(async ([mode, speculation]) =>
            ({name: `${loop} ${mode}`, mode, server: await startTestServer({modelFiles, decodeLoop, speculation, parallel: 2})}))));
        servers.push(...started.filter(({name}) => name !== "native off"));
        reference = started.find(({name}) => name === "native off")!.server;
        await fetch(`${reference.url}/api/ps`);
    });
    after(async () => {
        await Promise.all([reference, ...servers.map(({server}) => server)].map((server) => server?.close()));
    });

    it("stories260K: the same completion with every mode on both loops, with and without a prediction", async () => {
        const before = await drafted("stories260K");
        await fc.assert(fc.asyncProperty(prompt, fc.integer({min: 4, max: 48}), predictionShape, async (text, maxTokens, shape) => {
            await sameEverywhere((server, extra) => complete(server, {prompt: text, max_tokens: maxTokens, ...extra}), (reply) => reply.text, shape, text, true);
        }), {numRuns: 12, examples: [["Once upon a time", 40, {kind: "exact"}]]});
        assertDrafted(before, await drafted("stories260K"));
    });

    it("a scripted model with tools: the same get_weather call, and the same answer after the tool result", async () => {
        const before = await drafted("qwen3-script");
        const tools: OpenAI.ChatCompletionTool[] = [{type: "function", function: {name: "get_weather", parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}}}];
        const call = {id: "call_1", type: "function" as const, function: {name: "get_weather", arguments: "{\"city\": \"Paris\"}"}};
        const chat = async (server: TestServer, body: OpenAI.ChatCompletionCreateParamsNonStreaming) => {
            const response = await server.client.chat.completions.create(body);
            const choice = response.choices[0]!;
            const calls = (choice.message.tool_calls ?? []) as OpenAI.ChatCompletionMessageFunctionToolCall[];
            return {reply: {content: choice.message.content, calls: calls.map((entry) => entry.function), finish: choice.finish_reason}, counts: countsOf(response.usage)};
        };
        const situation = fc.record({
            question: phrase,
            answered: fc.boolean(),
            choice: fc.constantFrom("auto" as const, "required" as const),
            result: fc.constantFrom("sunny", "{\"city\": \"Paris\", \"sky\": \"sunny\"}", "It is sunny in Paris.")
        });
        await fc.assert(fc.asyncProperty(situation, predictionShape, async ({question, answered, choice, result}, shape) => {
            const messages: OpenAI.ChatCompletionMessageParam[] = [{role: "user", content: question}];
            if (answered)
                messages.push({role: "assistant", content: "", tool_calls: [call]}, {role: "tool", tool_call_id: "call_1", content: result});
            const body = {model: "qwen3-script", messages, tools, tool_choice: answered ? "auto" as const : choice, temperature: 0, max_tokens: 60};
            await sameEverywhere((server, extra) => chat(server, {...body, ...extra}),
                (reply) => reply.content || (reply.calls[0]?.arguments ?? ""), shape, JSON.stringify(messages), false);
        }), {numRuns: 4, examples: [[{question: "What is the weather in Paris?", answered: false, choice: "auto", result: "sunny"}, {kind: "exact"}],
            [{question: "What is the weather in Paris?", answered: true, choice: "auto", result: "sunny"}, {kind: "exact"}]]});
        assertDrafted(before, await drafted("qwen3-script"));
    });

    it("a json_schema response_format: the same JSON with every mode on both loops", async () => {
        const before = await drafted("stories260K");
        const schemas = [
            {type: "object", properties: {name: {type: "string"}, friends: {type: "array", items: {type: "string"}}}, required: ["name", "friends"]},
            {type: "object", properties: {dog: {type: "string", maxLength: 12}, age: {type: "integer", minimum: 0, maximum: 20}}, required: ["dog", "age"]},
            {type: "object", properties: {happy: {type: "boolean"}, said: {type: "string", enum: ["hello", "park", "ball"]}}, required: ["happy", "said"]}
        ];
        // A chat reply (the completions endpoint takes no response_format), one phase.
        const chat = async (server: TestServer, body: OpenAI.ChatCompletionCreateParamsNonStreaming): Promise<Answer<{content: string | null, finish: string}>> => {
            const response = await server.client.chat.completions.create(body);
            return {reply: {content: response.choices[0]!.message.content, finish: response.choices[0]!.finish_reason}, counts: countsOf(response.usage)};
        };
        await fc.assert(fc.asyncProperty(prompt, fc.constantFrom(...schemas), predictionShape, async (text, schema, shape) => {
            const body = {model: "stories260K", messages: [{role: "user" as const, content: text}], temperature: 0, max_tokens: 48,
                response_format: {type: "json_schema" as const, json_schema: {name: "out", schema}}};
            await sameEverywhere((server, extra) => chat(server, {...body, ...extra}), (reply) => reply.content ?? "", shape, text, true);
        }), {numRuns: 6, examples: [["Once upon a time", schemas[0]!, {kind: "misnamed"}]]});
        assertDrafted(before, await drafted("stories260K"));
    });
});
