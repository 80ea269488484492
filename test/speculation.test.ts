import assert from "node:assert/strict";
import {describe, it} from "node:test";
import type OpenAI from "openai";
import {ConfigError, parseServeArgs} from "../server/config.js";
import {metricValue} from "./helpers/metrics.js";
import {testModel} from "./helpers/testModels.js";
import {startTestServer, useTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

// Speculative decoding must never change a greedy reply: the same server with drafting off, with n-gram drafts on
// every match, and with `auto`, each asked the same things with and without a prediction of the reply.
const modelFiles = ["stories260K.gguf", "scripted/qwen3-script.gguf"];
const off = useTestServer({modelFiles, speculation: {mode: "off", draftMax: 16}});
const ngram = useTestServer({modelFiles, speculation: {mode: "ngram", draftMax: 16}});
// auto's n-gram drafts, which it makes on its own only where every layer is on a GPU.
const auto = useTestServer({modelFiles, speculation: {mode: "auto", draftMax: 8, ngram: true}});
const autoOnCpu = useTestServer({modelFiles: ["stories260K.gguf"]});
const javascript = useTestServer({modelFiles: ["stories260K.gguf"], decodeLoop: "javascript", speculation: {mode: "ngram", draftMax: 16}});
const drafting: [string, TestServer][] = [["ngram", ngram], ["auto", auto]];

type Details = {reasoning_tokens: number, accepted_prediction_tokens?: number, rejected_prediction_tokens?: number};
type Reply = {text: string, finish: string | null, tokens: number, details: Details};

async function complete(server: TestServer, body: Record<string, unknown>): Promise<Reply> {
    const response = await server.client.completions.create({model: "stories260K", max_tokens: 120, temperature: 0, ...body} as never) as unknown as {
        choices: {text: string, finish_reason: string | null}[],
        usage: {completion_tokens: number, completion_tokens_details: Details}
    };
    return {text: response.choices[0]!.text, finish: response.choices[0]!.finish_reason, tokens: response.usage.completion_tokens, details: response.usage.completion_tokens_details};
}

/** A prediction as Predicted Outputs takes it. */
const predicted = (content: string) => ({prediction: {type: "content", content}});

const prompts = ["Once upon a time", "Lily and Ben went to the park. Lily and Ben", "The little dog said \"hello\". The little dog"];

describe("speculative decoding", () => {
    it("gives the same greedy completions with drafting off, on every n-gram, and auto", async () => {
        for (const prompt of prompts) {
            for (const limits of [{}, {max_tokens: 7}, {stop: ["park"]}, {stop: [" the"], max_tokens: 200}]) {
                const expected = await complete(off, {prompt, ...limits});
                for (const [mode, server] of drafting) {
                    const reply = await complete(server, {prompt, ...limits});
                    assert.deepEqual({text: reply.text, finish: reply.finish}, {text: expected.text, finish: expected.finish}, `${mode}: ${prompt} ${JSON.stringify(limits)}`);
                    assert.equal(reply.details.accepted_prediction_tokens, undefined, "no prediction, no prediction counts");
                }
            }
        }
    });

    it("drafts from n-grams of the prompt and reply without a prediction, counted in /metrics", async () => {
        const metrics = async (server: TestServer) => {
            const text = await fetch(`${server.url}/metrics`).then((response) => response.text());
            const value = (outcome: string) => metricValue(text, "hearth_draft_tokens_total", {model: "stories260K", outcome, source: "ngram"});
            return {accepted: value("accepted"), rejected: value("rejected")};
        };
        const before = await metrics(ngram);
        const prompt = "Lily and Ben went to the park. Lily and Ben went to the park. Lily and Ben";
        const expected = await complete(off, {prompt, max_tokens: 100});
        assert.equal((await complete(ngram, {prompt, max_tokens: 100})).text, expected.text);
        const after = await metrics(ngram);
        assert.ok(after.accepted! > (before.accepted ?? 0), `${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
        assert.ok(after.rejected != null);
        assert.deepEqual(await metrics(off), {accepted: undefined, rejected: undefined}, "drafting off drafts nothing");
        // Per model in /api/ps too.
        type Ps = {models: {name: string, speculation: {mode: string, draft_max: number, drafted_tokens: number, accepted_tokens: number, acceptance: number | null}}[]};
        const ps = async (server: TestServer) => (await fetch(`${server.url}/api/ps`).then((response) => response.json()) as Ps).models.find((entry) => entry.name === "stories260K")!.speculation;
        const drafting = await ps(ngram);
        assert.equal(drafting.mode, "ngram");
        assert.equal(drafting.draft_max, 16);
        assert.ok(drafting.drafted_tokens >= drafting.accepted_tokens && drafting.accepted_tokens >= after.accepted!, JSON.stringify(drafting));
        assert.equal(drafting.acceptance, drafting.accepted_tokens / drafting.drafted_tokens);
        assert.deepEqual(await ps(off), {mode: "off", draft_max: 16, ngram: true, draft_model: null, drafted_tokens: 0, accepted_tokens: 0, acceptance: null});
        assert.equal((await ps(javascript)).mode, "ngram", "the JavaScript loop drafts too");
    });

    it("drafts only from a prediction in auto where the model runs on the CPU", async () => {
        type Ps = {models: {name: string, speculation: {mode: string, ngram: boolean, drafted_tokens: number}}[]};
        const ps = async () => (await fetch(`${autoOnCpu.url}/api/ps`).then((response) => response.json()) as Ps).models.find((entry) => entry.name === "stories260K")!.speculation;
        assert.deepEqual({mode: (await ps()).mode, ngram: (await ps()).ngram}, {mode: "auto", ngram: false});
        const prompt = "Lily and Ben went to the park. Lily and Ben went to the park. Lily and Ben";
        const expected = await complete(off, {prompt, max_tokens: 100});
        assert.equal((await complete(autoOnCpu, {prompt, max_tokens: 100})).text, expected.text);
        assert.equal((await ps()).drafted_tokens, 0, "no n-gram drafts on the CPU");
        const withPrediction = await complete(autoOnCpu, {prompt, max_tokens: 100, ...predicted(expected.text)});
        assert.equal(withPrediction.text, expected.text);
        assert.ok(withPrediction.details.accepted_prediction_tokens! > 0, JSON.stringify(withPrediction.details));
    });

    it("drafts less in auto than on every n-gram where drafts are mostly refused", async () => {
        type Ps = {models: {name: string, speculation: {drafted_tokens: number, accepted_tokens: number}}[]};
        const drafted = async (server: TestServer) => (await fetch(`${server.url}/api/ps`).then((response) => response.json()) as Ps).models
            .find((entry) => entry.name === "stories260K")!.speculation;
        const before = {ngram: await drafted(ngram), auto: await drafted(auto)};
        for (const prompt of prompts)
            for (const server of [ngram, auto])
                await complete(server, {prompt, max_tokens: 200, temperature: 0.9, seed: 3});
        const after = {ngram: await drafted(ngram), auto: await drafted(auto)};
        const refused = (mode: "ngram" | "auto") => (after[mode].drafted_tokens - after[mode].accepted_tokens) - (before[mode].drafted_tokens - before[mode].accepted_tokens);
        assert.ok(refused("ngram") > 0, JSON.stringify({before, after}));
        assert.ok(refused("auto") < refused("ngram") / 2, JSON.stringify({before, after}));
    });

    it("shortens n-gram drafts that are refused", async () => {
        type Ps = {models: {name: string, speculation: {drafted_tokens: number, accepted_tokens: number}}[]};
        const tally = async () => (await fetch(`${ngram.url}/api/ps`).then((response) => response.json()) as Ps).models
            .find((entry) => entry.name === "stories260K")!.speculation;
        const change = async (body: Record<string, unknown>) => {
            const before = await tally();
            const reply = await complete(ngram, body);
            const after = await tally();
            return {tokens: reply.tokens, accepted: after.accepted_tokens - before.accepted_tokens,
                refused: (after.drafted_tokens - after.accepted_tokens) - (before.drafted_tokens - before.accepted_tokens)};
        };
        // At a temperature an n-gram's continuation is mostly refused after a token or two: a draft verified at full
        // length each time would refuse many tokens for every one sampled.
        for (const prompt of prompts) {
            const sampled = await change({prompt, max_tokens: 200, temperature: 0.9, seed: 3});
            assert.ok(sampled.refused < sampled.tokens, `${prompt}: ${JSON.stringify(sampled)}`);
        }
    });

    it("drafts a reply that repeats a token in runs as long as the draft's maximum", async () => {
        // Random weights repeat one token over and over. The latest earlier occurrence of the reply's last tokens is
        // one token back, with one token after it in the history: the draft goes on into itself, else each draft
        // would hold one token and at most half the reply would be drafted.
        const name = "synthetic-llama-23M-Q8_0";
        const server = await startTestServer({modelFiles: [`synthetic/${name}.gguf`], parallel: 1, speculation: {mode: "ngram", draftMax: 16}});
        try {
            for (const prompt of ["Once upon a time", "The cat sat. The cat"]) {
                const before = await fetch(`${server.url}/metrics`).then((response) => response.text());
                const reply = await complete(server, {model: name, prompt, max_tokens: 100});
                const after = await fetch(`${server.url}/metrics`).then((response) => response.text());
                const accepted = (metricValue(after, "hearth_draft_tokens_total", {model: name, outcome: "accepted"}) ?? 0)
                    - (metricValue(before, "hearth_draft_tokens_total", {model: name, outcome: "accepted"}) ?? 0);
                assert.ok(accepted >= reply.tokens * 0.75, `${prompt}: ${accepted} of ${reply.tokens} drafted and kept: ${JSON.stringify(reply.text.slice(0, 80))}`);
            }
        } finally {
            await server.close();
        }
    });

    it("drafts from a prediction: the reply is the same and the usage counts what was accepted and rejected", async () => {
        const prompt = prompts[0]!;
        const expected = await complete(off, {prompt, max_tokens: 150});
        // The same text, a prediction whose middle was changed (the reply lines up with its tail again), and a wrong one.
        const edited = expected.text.slice(0, 40) + " a purple elephant sang loudly" + expected.text.slice(70);
        for (const [mode, server] of drafting) {
            const exact = await complete(server, {prompt, max_tokens: 150, ...predicted(expected.text)});
            assert.equal(exact.text, expected.text, mode);
            assert.ok(exact.details.accepted_prediction_tokens! > 100, `${mode}: ${JSON.stringify(exact.details)}`);
            assert.equal(exact.details.rejected_prediction_tokens, 0, mode);
            const fromEdit = await complete(server, {prompt, max_tokens: 150, ...predicted(edited)});
            assert.equal(fromEdit.text, expected.text, mode);
            assert.ok(fromEdit.details.accepted_prediction_tokens! > 60, `${mode}: the tail after the edit is drafted too: ${JSON.stringify(fromEdit.details)}`);
            assert.ok(fromEdit.details.rejected_prediction_tokens! > 0, `${mode}: ${JSON.stringify(fromEdit.details)}`);
            const wrong = await complete(server, {prompt, max_tokens: 150, ...predicted("Zebras eat grass in Africa, and zebras run.")});
            assert.equal(wrong.text, expected.text, mode);
        }
        // Drafting off: the prediction is read but not drafted from.
        const ignored = await complete(off, {prompt, max_tokens: 150, ...predicted(expected.text)});
        assert.equal(ignored.text, expected.text);
        assert.deepEqual([ignored.details.accepted_prediction_tokens, ignored.details.rejected_prediction_tokens], [0, 0]);
    });

    it("takes a prediction through the openai SDK, streamed or not, with the usage fields filled", async () => {
        const messages: OpenAI.ChatCompletionMessageParam[] = [{role: "user", content: "Tell me a story about a cat."}];
        const expected = await off.client.chat.completions.create({model: "stories260K", messages, max_tokens: 100, temperature: 0});
        const text = expected.choices[0]!.message.content!;
        const reply = await ngram.client.chat.completions.create({
            model: "stories260K", messages, max_tokens: 100, temperature: 0, prediction: {type: "content", content: [{type: "text", text}]}
        });
        assert.equal(reply.choices[0]!.message.content, text);
        assert.ok(reply.usage!.completion_tokens_details!.accepted_prediction_tokens! > 0, JSON.stringify(reply.usage));
        assert.equal(reply.usage!.completion_tokens_details!.rejected_prediction_tokens, 0);
        const stream = await auto.client.chat.completions.create({
            model: "stories260K", messages, max_tokens: 100, temperature: 0, prediction: {type: "content", content: text},
            stream: true, stream_options: {include_usage: true}
        });
        let streamed = "";
        let usage: OpenAI.CompletionUsage | undefined;
        for await (const chunk of stream) {
            streamed += chunk.choices[0]?.delta.content ?? "";
            usage = chunk.usage ?? usage;
        }
        assert.equal(streamed, text);
        assert.ok(usage!.completion_tokens_details!.accepted_prediction_tokens! > 0, JSON.stringify(usage));
    });

    it("refuses a prediction that is not content, in OpenAI's error shape", async () => {
        await assert.rejects(ngram.client.chat.completions.create({
            model: "stories260K", messages: [{role: "user", content: "Hi"}], prediction: {type: "file", content: "x"} as never
        }), (error: InstanceType<typeof OpenAI.APIError>) => error.status === 400 && /prediction/.test(error.message));
    });

    it("keeps greedy tool calls and the answer after a tool result the same", async () => {
        const tools: OpenAI.ChatCompletionTool[] = [{type: "function", function: {name: "get_weather", parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}}}];
        const call = {id: "call_1", type: "function" as const, function: {name: "get_weather", arguments: "{\"city\": \"Paris\"}"}};
        const conversations: OpenAI.ChatCompletionMessageParam[][] = [
            [{role: "user", content: "What is the weather in Paris?"}],
            [{role: "user", content: "What is the weather in Paris?"}, {role: "assistant", content: "", tool_calls: [call]}, {role: "tool", tool_call_id: "call_1", content: "sunny"}]
        ];
        for (const messages of conversations) {
            for (const tool_choice of ["auto", "required"] as const) {
                const body = {model: "qwen3-script", messages, tools, tool_choice, temperature: 0};
                const expected = (await off.client.chat.completions.create(body)).choices[0]!.message;
                const prediction = {type: "content" as const, content: expected.content || (expected.tool_calls?.[0] as {function: {arguments: string}} | undefined)?.function.arguments || ""};
                for (const [mode, server] of drafting) {
                    for (const extra of [{}, prediction.content !== "" ? {prediction} : {}]) {
                        const message = (await server.client.chat.completions.create({...body, ...extra})).choices[0]!.message;
                        assert.equal(message.content, expected.content, `${mode} ${tool_choice}`);
                        assert.deepEqual(message.tool_calls?.map((entry) => (entry as {function: unknown}).function), expected.tool_calls?.map((entry) => (entry as {function: unknown}).function), `${mode} ${tool_choice}`);
                    }
                }
            }
        }
    });

    it("keeps json_schema replies the same, with drafts the grammar refuses cut short", async () => {
        const schema = {type: "object", properties: {name: {type: "string"}, friends: {type: "array", items: {type: "string"}}}, required: ["name", "friends"]};
        const body = {prompt: "Once upon a time", max_tokens: 80, response_format: {type: "json_schema", json_schema: {name: "story", schema}}};
        const expected = await complete(off, body);
        // The schema holds (stories260K alone would tell a story): the grammar is applied on /v1/completions too.
        const parsed = JSON.parse(expected.text) as {name: unknown, friends: unknown};
        assert.equal(typeof parsed.name, "string");
        assert.ok(Array.isArray(parsed.friends));
        // A prediction that breaks the schema after its start: its drafts are cut where the grammar refuses them.
        const broken = expected.text.slice(0, 12) + "}}}]]]not json at all";
        for (const [mode, server] of drafting) {
            for (const prediction of [expected.text, broken]) {
                const reply = await complete(server, {...body, ...predicted(prediction)});
                assert.equal(reply.text, expected.text, `${mode}: ${prediction}`);
            }
            const accepted = await complete(server, {...body, ...predicted(expected.text)});
            assert.ok(accepted.details.accepted_prediction_tokens! > 0, `${mode}: ${JSON.stringify(accepted.details)}`);
        }
    });

    it("drafts for several slots in one batch, each reply as without drafts", async () => {
        const expected = await Promise.all(prompts.map((prompt) => complete(off, {prompt, max_tokens: 100})));
        for (const [mode, server] of drafting) {
            const replies = await Promise.all([
                ...prompts.map((prompt, index) => complete(server, {prompt, max_tokens: 100, ...predicted(expected[index]!.text)})),
                complete(server, {prompt: prompts[0], max_tokens: 100})
            ]);
            assert.deepEqual(replies.map((reply) => reply.text), [...expected.map((reply) => reply.text), expected[0]!.text], mode);
            for (const reply of replies.slice(0, prompts.length))
                assert.ok(reply.details.accepted_prediction_tokens! > 0, `${mode}: ${JSON.stringify(reply.details)}`);
        }
    });

    it("samples the same text at a temperature with a seed, drafting or not", async () => {
        for (const prompt of prompts) {
            const body = {prompt, max_tokens: 80, temperature: 0.9, seed: 7};
            const expected = await complete(off, body);
            for (const [mode, server] of drafting)
                assert.equal((await complete(server, {...body, ...predicted(expected.text)})).text, expected.text, mode);
        }
    });

    it("drafts on the JavaScript loop too: the same replies, the prediction's counts, several slots in one batch", async () => {
        type Ps = {models: {name: string, speculation: {mode: string, drafted_tokens: number, accepted_tokens: number}}[]};
        const ps = async () => (await fetch(`${javascript.url}/api/ps`).then((response) => response.json()) as Ps).models.find((entry) => entry.name === "stories260K")!.speculation;
        const before = await ps();
        const expected = await Promise.all(prompts.map((prompt) => complete(off, {prompt, max_tokens: 100})));
        const exact = await complete(javascript, {prompt: prompts[0], max_tokens: 100, ...predicted(expected[0]!.text)});
        assert.equal(exact.text, expected[0]!.text);
        assert.ok(exact.details.accepted_prediction_tokens! > 60, JSON.stringify(exact.details));
        assert.equal(exact.details.rejected_prediction_tokens, 0);
        const edited = expected[0]!.text.slice(0, 30) + " a purple elephant sang loudly" + expected[0]!.text.slice(60);
        const fromEdit = await complete(javascript, {prompt: prompts[0], max_tokens: 100, ...predicted(edited)});
        assert.equal(fromEdit.text, expected[0]!.text);
        assert.ok(fromEdit.details.rejected_prediction_tokens! > 0 && fromEdit.details.accepted_prediction_tokens! > 30, JSON.stringify(fromEdit.details));
        const replies = await Promise.all([
            ...prompts.map((prompt, index) => complete(javascript, {prompt, max_tokens: 100, ...predicted(expected[index]!.text)})),
            complete(javascript, {prompt: prompts[1], max_tokens: 100})
        ]);
        assert.deepEqual(replies.map((reply) => reply.text), [...expected.map((reply) => reply.text), expected[1]!.text]);
        for (const reply of replies.slice(0, prompts.length))
            assert.ok(reply.details.accepted_prediction_tokens! > 0, JSON.stringify(reply.details));
        const after = await ps();
        assert.equal(after.mode, "ngram");
        assert.ok(after.accepted_tokens - before.accepted_tokens >= exact.details.accepted_prediction_tokens!, JSON.stringify({before, after}));
        // At a temperature with a seed, the sampler sees the same tokens with and without drafts.
        for (const prompt of prompts) {
            const body = {prompt, max_tokens: 80, temperature: 0.9, seed: 7};
            const sampled = await complete(off, body);
            assert.equal((await complete(javascript, {...body, ...predicted(sampled.text)})).text, sampled.text, prompt);
        }
    });

    it("does not draft for a model that sees images", async () => {
        const name = "gemma4-vision-script";
        const server = await startTestServer({
            models: [{path: await testModel(`vision/${name}.gguf`), names: [name], mmproj: await testModel(`vision/mmproj-${name}.gguf`)}],
            parallel: 1, speculation: {mode: "ngram", draftMax: 16}
        });
        try {
            const body = {model: name, messages: [{role: "user" as const, content: "Hello!"}], temperature: 0, max_tokens: 30};
            const expected = (await server.client.chat.completions.create(body)).choices[0]!.message.content!;
            const reply = await server.client.chat.completions.create({...body, prediction: {type: "content", content: expected}});
            assert.equal(reply.choices[0]!.message.content, expected);
            assert.deepEqual([reply.usage!.completion_tokens_details!.accepted_prediction_tokens, reply.usage!.completion_tokens_details!.rejected_prediction_tokens], [0, 0]);
            type Ps = {models: {speculation: {mode: string, drafted_tokens: number}}[]};
            const ps = await fetch(`${server.url}/api/ps`).then((response) => response.json()) as Ps;
            assert.deepEqual([ps.models[0]!.speculation.mode, ps.models[0]!.speculation.drafted_tokens], ["off", 0]);
        } finally {
            await server.close();
        }
    });

    it("reads --speculative and --draft-max, and refuses draft without a draft model", () => {
        assert.deepEqual(parseServeArgs([], {}, "/work").config.speculation, {mode: "auto", draftMax: 16});
        assert.deepEqual(parseServeArgs(["--speculative", "ngram", "--draft-max", "5"], {}, "/work").config.speculation, {mode: "ngram", draftMax: 5});
        assert.equal(parseServeArgs([], {HEARTH_SPECULATIVE: "off"}, "/work").config.speculation?.mode, "off");
        assert.throws(() => parseServeArgs(["--speculative", "draft"], {}, "/work"), (error: Error) => error instanceof ConfigError && /draft model/.test(error.message));
        assert.throws(() => parseServeArgs(["--speculative", "sometimes"], {}, "/work"), (error: Error) => error instanceof ConfigError && /auto, off, ngram, draft/.test(error.message));
        assert.throws(() => parseServeArgs(["--draft-max", "0"], {}, "/work"), ConfigError);
        assert.throws(() => parseServeArgs(["--draft-model", "small.gguf"], {}, "/work"), (error: Error) => error instanceof ConfigError && /--draft-model/.test(error.message));
    });
});
