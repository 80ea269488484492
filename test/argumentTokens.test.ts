import assert from "node:assert/strict";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {Ajv2020} from "ajv/dist/2020.js";
import fc from "fast-check";
import {readGgufFileInfo} from "node-llama-cpp";
import type OpenAI from "openai";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

/**
 * A grammar that holds a model to a tool it did not mean (the scripted models only ever mean get_weather) must not let
 * its markup tokens in: llama.cpp matches a token by its text, so a JSON string would take gpt-oss's `<|constrain|>`
 * or Qwen's `<tool_call>` as characters. For every family and both decode loops: random tools and schemas, forced with
 * `tool_choice` required or named, or a `response_format` schema, at random temperatures and seeds.
 */
const families = ["qwen3-script", "llama3.1-script", "gpt-oss-script", "gemma4-script"];
/** Arguments the scripted models cannot finish run on; a short budget keeps each run quick. */
const maxTokens = 20;
const ajv = new Ajv2020({strict: false});

/** GGUF token types (llama.cpp's llama_token_type): control and user-defined (added) tokens. */
const markupTokenTypes = new Set([3, 4]);

/** The text of every control and added token of a model's vocabulary, read from its GGUF file, apart from Hearth. */
async function markupTexts(file: string): Promise<string[]> {
    const info = await readGgufFileInfo(await testModel(file), {readTensorInfo: false, ignoreKeys: ["tokenizer.ggml.merges", "tokenizer.ggml.scores"]});
    const tokenizer = info.metadata.tokenizer?.ggml as {tokens?: readonly string[], token_type?: readonly number[]} | undefined;
    const types = tokenizer?.token_type ?? [];
    return (tokenizer?.tokens ?? []).filter((text, token) => markupTokenTypes.has(types[token]!) && text !== "");
}

const propertyName = fc.stringMatching(/^[a-z][a-z_]{0,9}$/);
const propertySchema = fc.oneof(
    fc.constant({type: "string"}),
    fc.constant({type: "string", maxLength: 12}),
    fc.uniqueArray(fc.stringMatching(/^[a-z]{1,8}$/), {minLength: 1, maxLength: 4}).map((values) => ({type: "string", enum: values})),
    fc.constant({type: "integer", minimum: 0, maximum: 1000}),
    fc.constant({type: "number"}),
    fc.constant({type: "boolean"}),
    fc.constant({type: "array", items: {type: "string"}, maxItems: 3}),
    fc.constant({type: "object", properties: {note: {type: "string"}}, required: ["note"]})
);
const objectSchema = fc.dictionary(propertyName, propertySchema, {minKeys: 1, maxKeys: 3}).chain((properties) =>
    fc.record({
        type: fc.constant("object"),
        properties: fc.constant(properties),
        required: fc.subarray(Object.keys(properties)),
        additionalProperties: fc.boolean()
    }));
const toolName = fc.stringMatching(/^[a-z][a-zA-Z0-9_-]{0,20}$/).filter((name) => name !== "get_weather");
const tools = fc.uniqueArray(fc.record({name: toolName, parameters: objectSchema}), {minLength: 1, maxLength: 3, selector: (tool) => tool.name});
const request = fc.record({
    tools,
    /** -1: `required`; else the index of the tool named in `tool_choice` (modulo their number); -2: `response_format`. */
    choice: fc.integer({min: -2, max: 2}),
    temperature: fc.oneof(fc.constant(0), fc.double({min: 0.1, max: 2, noNaN: true})),
    seed: fc.nat(2 ** 31 - 1)
});
type Request = typeof request extends fc.Arbitrary<infer T> ? T : never;

async function checkRequest(server: TestServer, model: string, markup: readonly string[], input: Request): Promise<void> {
    const {tools: offered, choice, temperature, seed} = input;
    const common = {model, messages: [{role: "user" as const, content: "What is the weather in Paris?"}], max_tokens: maxTokens, temperature, seed};
    const label = JSON.stringify(input);
    const assertNoMarkup = (text: string, what: string) => {
        const found = markup.find((marker) => text.includes(marker));
        assert.equal(found, undefined, `${model}: ${what} holds the token ${found}: ${JSON.stringify(text)} (${label})`);
    };
    if (choice === -2) {
        const schema = offered[0]!.parameters;
        const response = await server.client.chat.completions.create({...common, response_format: {type: "json_schema", json_schema: {name: "out", schema}}});
        const choiceOut = response.choices[0]!;
        const content = choiceOut.message.content ?? "";
        assertNoMarkup(content, "the content");
        assertNoMarkup((choiceOut.message as {reasoning_content?: string}).reasoning_content ?? "", "the reasoning");
        if (choiceOut.finish_reason === "stop" && content !== "")
            assert.ok(ajv.validate(schema, JSON.parse(content)), `${model}: ${content} does not match ${JSON.stringify(schema)}`);
        return;
    }
    const named = choice >= 0 ? offered[choice % offered.length]!.name : undefined;
    const response = await server.client.chat.completions.create({
        ...common,
        tools: offered.map((tool) => ({type: "function" as const, function: tool})),
        tool_choice: named != null ? {type: "function", function: {name: named}} : "required"
    });
    const choiceOut = response.choices[0]!;
    const calls = (choiceOut.message.tool_calls ?? []) as OpenAI.Chat.ChatCompletionMessageFunctionToolCall[];
    assert.ok(calls.length > 0, `${model}: a forced call (${label})`);
    for (const [index, call] of calls.entries()) {
        const tool = offered.find((entry) => entry.name === call.function.name);
        assert.ok(tool != null, `${model}: ${call.function.name} is one of the tools offered`);
        if (named != null)
            assert.equal(call.function.name, named, `${model}: the named tool`);
        assertNoMarkup(call.function.arguments, `the arguments of ${call.function.name}`);
        // Every call but a last one cut by the token budget is whole.
        if (choiceOut.finish_reason === "tool_calls" || index < calls.length - 1) {
            const value = JSON.parse(call.function.arguments) as unknown;
            assert.ok(ajv.validate(tool.parameters, value), `${model}: ${call.function.arguments} does not match ${JSON.stringify(tool.parameters)}`);
        }
    }
}

// Every family on the native loop; the JavaScript loop bans the same tokens through node-llama-cpp's sampler, which
// one family shows (gpt-oss, whose `<|constrain|>` the issue was about).
const runs = [
    {decodeLoop: "auto", loop: "native", families, numRuns: 5},
    {decodeLoop: "javascript", loop: "JavaScript", families: ["gpt-oss-script"], numRuns: 4}
] as const;

for (const {decodeLoop, loop, families: tested, numRuns} of runs) {
    describe(`structured output on the ${loop} decode loop`, () => {
        const server = {} as TestServer;
        const markup = new Map<string, string[]>();
        before(async () => {
            const files = tested.map((family) => `scripted/${family}.gguf`);
            Object.assign(server, await startTestServer({modelFiles: files, ctxSize: 2048, parallel: 1, decodeLoop}));
            for (const file of files)
                markup.set(path.basename(file, ".gguf"), await markupTexts(file));
        });
        after(async () => {
            await server.close?.();
        });

        for (const model of tested) {
            it(`${model}: forced tool arguments and response_format carry none of its control or added tokens, and are valid JSON for the schema where they finish`, async () => {
                const texts = markup.get(model)!;
                assert.ok(texts.length > 0);
                await fc.assert(fc.asyncProperty(request, (input) => checkRequest(server, model, texts, input)), {numRuns});
            });
        }
    });
}
