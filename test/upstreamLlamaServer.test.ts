import assert from "node:assert/strict";
import {after, before, describe, test} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import type {MessageCreateParamsNonStreaming, Tool} from "@anthropic-ai/sdk/resources/messages";
import {Ollama} from "ollama";
import OpenAI from "openai";
import {ensureLlamaServer, startLlamaServer} from "../bench/llamaServer.js";
import type {PeerServer} from "../bench/llamaServer.js";
import {assertLoadSurvived, startChatLoad, upstreamFailures} from "./helpers/chatLoad.js";
import {eventually} from "./helpers/eventually.js";
import {upstreamsOf} from "./helpers/upstreamViews.js";
import type {UpstreamView} from "./helpers/upstreamViews.js";
import {metricValue} from "./helpers/metrics.js";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

/**
 * llama.cpp's own llama-server as an upstream of Hearth, beside a second Hearth: the server most users already run
 * on their GPU machine. It is built as `npm run bench:peer` builds it (once, into a cache; minutes), never skipped.
 */

type AuditEntry = {request_id: string, path: string, model: string | null, status: number, prompt_tokens: number | null, completion_tokens: number | null};

const LLAMA_MODEL = "stories-llama-server";
const QWEN_MODEL = "qwen3-script";
const SHARED_MODEL = "stories260K";
const BUILD_TIMEOUT_MS = 20 * 60 * 1000;
/** Hearth's `system_fingerprint`; llama-server's names its build. */
const HEARTH_FINGERPRINT = "fp_hearth";

const ask = {messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0};
const weatherTool = {
    type: "function" as const,
    function: {
        name: "get_weather", description: "Get the current weather for a city",
        parameters: {type: "object", properties: {city: {type: "string", description: "City name"}}, required: ["city"]}
    }
};
const weatherQuestion = {messages: [{role: "user" as const, content: "What is the weather in Paris?"}], temperature: 0, max_tokens: 120};

/** The llama-server binary, built first when the cache has none; a machine that cannot build it fails these tests, saying why. */
async function llamaServerBinary(): Promise<string> {
    try {
        return await ensureLlamaServer((line) => console.log(`${line} (once, for test/upstreamLlamaServer.test.ts)`));
    } catch (error) {
        throw new Error(`the llama-server upstream tests need llama.cpp's llama-server and could not build it: ${(error as Error).message}`);
    }
}

async function metricsOf(server: TestServer): Promise<string> {
    const response = await fetch(`${server.url}/metrics`);
    assert.equal(response.status, 200);
    return response.text();
}

async function auditEntry(server: TestServer, requestId: string): Promise<AuditEntry> {
    return eventually(async () => {
        const audit = await (await fetch(`${server.url}/api/audit?limit=200`)).json() as {entries: AuditEntry[]};
        const entry = audit.entries.find((candidate) => candidate.request_id === requestId);
        assert.ok(entry != null, `no audit entry for ${requestId}`);
        return entry;
    });
}

/** A streamed chat completion read whole: its text, the tool call its deltas make up, its finish reason and usage. */
async function readStream(stream: AsyncIterable<OpenAI.ChatCompletionChunk>) {
    let text = "";
    let chunks = 0;
    let finishReason: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    const call = {name: "", arguments: ""};
    for await (const chunk of stream) {
        chunks += 1;
        const choice = chunk.choices[0];
        text += choice?.delta.content ?? "";
        for (const delta of choice?.delta.tool_calls ?? []) {
            call.name += delta.function?.name ?? "";
            call.arguments += delta.function?.arguments ?? "";
        }
        finishReason = choice?.finish_reason ?? finishReason;
        usage = chunk.usage ?? usage;
    }
    return {text, chunks, finishReason, usage, call};
}

describe("upstreams: llama.cpp's llama-server and a second Hearth behind one Hearth", () => {
    let binary: string;
    let stories: PeerServer;
    let qwen: PeerServer;
    let hearth: TestServer;
    let front: TestServer;
    const direct = {} as {stories: OpenAI, qwen: OpenAI};
    const names = {} as {stories: string, qwen: string, hearth: string};

    before(async () => {
        binary = await llamaServerBinary();
        const [storiesPath, qwenPath] = await Promise.all([testModel("stories260K.gguf"), testModel("scripted/qwen3-script.gguf")]);
        // Each is kept as soon as it is up, and all are waited for, so that `after` stops them even when another failed to start.
        const started = await Promise.allSettled([
            startLlamaServer(binary, {model: storiesPath, alias: LLAMA_MODEL, threads: 1, parallel: 4, ctxSizePerSlot: 1024, extraArgs: ["--embeddings", "--pooling", "mean"]}).then((server) => stories = server),
            startLlamaServer(binary, {model: qwenPath, alias: QWEN_MODEL, threads: 1, parallel: 1, ctxSizePerSlot: 4096, extraArgs: ["--jinja"]}).then((server) => qwen = server),
            startTestServer().then((server) => hearth = server)
        ]);
        for (const result of started)
            if (result.status === "rejected")
                throw result.reason;
        direct.stories = new OpenAI({baseURL: `${stories.url}/v1`, apiKey: "unused", maxRetries: 0});
        direct.qwen = new OpenAI({baseURL: `${qwen.url}/v1`, apiKey: "unused", maxRetries: 0});
        Object.assign(names, {stories: new URL(stories.url).host, qwen: new URL(qwen.url).host, hearth: new URL(hearth.url).host});
        front = await startTestServer({modelFiles: [], upstreams: [stories.url, `${qwen.url}/v1`, hearth.url].map((url) => ({url, key: undefined}))});
        await eventually(async () => assert.deepEqual((await upstreamsOf(front)).map((upstream) => upstream.health), ["up", "up", "up"]));
    }, {timeout: BUILD_TIMEOUT_MS});
    after(async () => {
        await front?.close();
        await Promise.all([stories?.stop(), qwen?.stop(), hearth?.close()]);
    });

    test("the SDK sees the models of llama-server and of the Hearth upstream, each owned by its server", async () => {
        const models = (await front.client.models.list()).data;
        const owners = Object.fromEntries(models.map((model) => [model.id, model.owned_by]));
        assert.deepEqual(owners, {[LLAMA_MODEL]: names.stories, [QWEN_MODEL]: names.qwen, [SHARED_MODEL]: names.hearth});
        assert.equal((await front.client.models.retrieve(LLAMA_MODEL)).owned_by, names.stories);
    });

    test("chat completions from llama-server, streamed and not, are its own greedy text and usage", async () => {
        const request = {model: LLAMA_MODEL, ...ask, max_tokens: 24};
        const through = await front.client.chat.completions.create(request);
        const mine = await direct.stories.chat.completions.create(request);
        assert.equal(through.object, "chat.completion");
        assert.ok(through.choices[0]!.message.content!.length > 0);
        assert.equal(through.choices[0]!.message.content, mine.choices[0]!.message.content);
        // Only the prompt cache's share (prompt_tokens_details) may differ between two requests.
        const counts = (usage: OpenAI.CompletionUsage | undefined) => [usage?.prompt_tokens, usage?.completion_tokens, usage?.total_tokens];
        assert.deepEqual(counts(through.usage), counts(mine.usage));
        assert.equal(through.usage!.completion_tokens, 24);

        const streamed = await readStream(await front.client.chat.completions.create({...request, stream: true, stream_options: {include_usage: true}}));
        assert.ok(streamed.chunks > 3, `only ${streamed.chunks} chunks`);
        assert.equal(streamed.text, mine.choices[0]!.message.content);
        assert.equal(streamed.finishReason, "length");
        assert.equal(streamed.usage?.completion_tokens, 24);
    });

    test("completions and embeddings from llama-server come through as it answers them", async () => {
        const request = {model: LLAMA_MODEL, prompt: "Once upon a time", max_tokens: 24, temperature: 0};
        const through = await front.client.completions.create(request);
        const mine = await direct.stories.completions.create(request);
        assert.match(through.choices[0]!.text, /little girl named Lily/);
        assert.equal(through.choices[0]!.text, mine.choices[0]!.text);

        // The SDK asks for base64 unless told otherwise; llama-server answers both. Two runs of the same input may differ
        // in the last bits of a float (llama-server batches requests together), never more.
        for (const encoding_format of [undefined, "float"] as const) {
            const input = ["Once upon a time", "a big, red ball"];
            const embedded = await front.client.embeddings.create({model: LLAMA_MODEL, input, encoding_format});
            const expected = await direct.stories.embeddings.create({model: LLAMA_MODEL, input, encoding_format});
            assert.equal(embedded.data.length, 2);
            assert.equal(embedded.data[0]!.embedding.length, 64);
            embedded.data.forEach((item, index) => item.embedding.forEach((value, dimension) =>
                assert.ok(Math.abs(value - expected.data[index]!.embedding[dimension]!) < 1e-5, `input ${index}, dimension ${dimension}: ${value}`)));
            const [first, second] = embedded.data.map((item) => item.embedding);
            assert.ok(first!.some((value, dimension) => Math.abs(value - second![dimension]!) > 1e-3), "two different inputs got the same embedding");
        }
    });

    test("a scripted Qwen3 on llama-server --jinja: its reasoning, its answer and its get_weather call arrive as it emitted them", async () => {
        type Reasoned = OpenAI.ChatCompletionMessage & {reasoning_content?: string};
        const plain = {model: QWEN_MODEL, ...weatherQuestion};
        const [through, mine] = [await front.client.chat.completions.create(plain), await direct.qwen.chat.completions.create(plain)];
        const message = through.choices[0]!.message as Reasoned;
        assert.equal(message.content, "Hello from Qwen.");
        assert.equal(message.reasoning_content, "Let me think.\n");
        assert.equal(message.reasoning_content, (mine.choices[0]!.message as Reasoned).reasoning_content);

        const withTools = {model: QWEN_MODEL, ...weatherQuestion, tools: [weatherTool], tool_choice: "auto" as const};
        const [called, calledDirectly] = [await front.client.chat.completions.create(withTools), await direct.qwen.chat.completions.create(withTools)];
        assert.equal(called.choices[0]!.finish_reason, "tool_calls");
        const calls = called.choices[0]!.message.tool_calls!.map((call) => {
            assert.equal(call.type, "function");
            return call.type === "function" ? [call.function.name, JSON.parse(call.function.arguments)] : [];
        });
        assert.deepEqual(calls, [["get_weather", {city: "Paris"}]]);
        const functionOf = (completion: OpenAI.ChatCompletion) => completion.choices[0]!.message.tool_calls!.map((call) => call.type === "function" ? call.function : undefined);
        assert.deepEqual(functionOf(called), functionOf(calledDirectly));

        const streamed = await readStream(await front.client.chat.completions.create({...withTools, stream: true}));
        assert.equal(streamed.finishReason, "tool_calls");
        assert.equal(streamed.call.name, "get_weather");
        assert.deepEqual(JSON.parse(streamed.call.arguments), {city: "Paris"});
    });

    test("the Anthropic SDK and the ollama client reach llama-server's Qwen3 through Hearth's translation: thinking apart, the get_weather call, the answer after its result", async () => {
        const anthropic = new Anthropic({baseURL: front.url, apiKey: "x", maxRetries: 0});
        const weather: Tool = {name: "get_weather", description: "Get the current weather for a city", input_schema: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}};
        const question = {role: "user" as const, content: "What is the weather in Paris?"};
        // `temperature` is sent though this SDK's types no longer list it.
        const base = {model: QWEN_MODEL, max_tokens: 120, temperature: 0, messages: [question]} as MessageCreateParamsNonStreaming;

        const plain = await anthropic.messages.create({...base, thinking: {type: "enabled", budget_tokens: 1024}});
        const textOf = (message: Anthropic.Message, type: "text" | "thinking") => message.content.map((block) => block.type === "text" && type === "text" ? block.text : block.type === "thinking" && type === "thinking" ? block.thinking : "").join("");
        assert.equal(textOf(plain, "thinking").trim(), "Let me think.");
        assert.equal(textOf(plain, "text").trim(), "Hello from Qwen.");
        assert.equal(plain.stop_reason, "end_turn");
        assert.ok(plain.usage.input_tokens > 0 && plain.usage.output_tokens > 0, JSON.stringify(plain.usage));

        const stream = anthropic.messages.stream({...base, tools: [weather]});
        const called = await stream.finalMessage();
        assert.equal(called.stop_reason, "tool_use");
        const use = called.content.find((block) => block.type === "tool_use");
        assert.ok(use != null && use.type === "tool_use", JSON.stringify(called.content));
        assert.equal(use.name, "get_weather");
        assert.deepEqual(use.input, {city: "Paris"});

        const answered = await anthropic.messages.create({...base, tools: [weather], messages: [
            question, {role: "assistant", content: called.content},
            {role: "user", content: [{type: "tool_result", tool_use_id: use.id, content: "sunny"}]}
        ]});
        assert.equal(textOf(answered, "text").trim(), "It is sunny in Paris.");

        const ollama = new Ollama({host: front.url});
        assert.ok((await ollama.list()).models.some((model) => model.name === QWEN_MODEL));
        const chat = await ollama.chat({model: QWEN_MODEL, messages: [question], think: true, options: {temperature: 0}});
        assert.equal(chat.message.thinking?.trim(), "Let me think.");
        assert.equal(chat.message.content.trim(), "Hello from Qwen.");
        const toolChat = await ollama.chat({model: QWEN_MODEL, messages: [question], stream: false, options: {temperature: 0},
            tools: [{type: "function", function: {name: "get_weather", description: "Get the current weather for a city", parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}}}]});
        assert.deepEqual(toolChat.message.tool_calls?.map((call) => [call.function.name, call.function.arguments]), [["get_weather", {city: "Paris"}]]);
    });

    test("llama-server's refusal of a prompt longer than its context reaches an Anthropic client as Anthropic words it", async () => {
        const anthropic = new Anthropic({baseURL: front.url, apiKey: "x", maxRetries: 0});
        // Qwen3's tokenizer makes each " a" one token: 5,000 of them do not fit llama-server's 4,096-token slot.
        const long = Array.from({length: 5000}, () => "a").join(" ");
        await assert.rejects(anthropic.messages.create({model: QWEN_MODEL, max_tokens: 100, messages: [{role: "user", content: long}]}), (error: unknown) => {
            assert.ok(error instanceof Anthropic.BadRequestError, String(error));
            const body = error.error as {error?: {type?: string, message?: string}};
            assert.equal(body.error?.type, "invalid_request_error");
            assert.match(body.error?.message ?? "", /^prompt is too long: 50\d\d tokens > 4095 maximum$/);
            return true;
        });
        const ollama = await fetch(`${front.url}/api/chat`, {method: "POST", body: JSON.stringify({model: QWEN_MODEL, stream: false, messages: [{role: "user", content: long}]})});
        assert.equal(ollama.status, 400);
        assert.match((await ollama.json() as {error: string}).error, /^This prompt is 50\d\d tokens long, but the context of the upstream .+'s model is 4096 tokens/);
    });

    test("the front's audit log and per-upstream metrics record llama-server's requests with the tokens it reported", async () => {
        const before = metricValue(await metricsOf(front), "hearth_upstream_requests_total", {upstream: names.stories, status: "200"}) ?? 0;
        const request = {model: LLAMA_MODEL, ...ask, max_tokens: 12};
        const plain = await front.client.chat.completions.create(request, {headers: {"x-request-id": "llama-server-plain-1"}});
        const streamed = await readStream(await front.client.chat.completions.create({...request, stream: true, stream_options: {include_usage: true}}, {headers: {"x-request-id": "llama-server-stream-1"}}));
        for (const [requestId, usage] of [["llama-server-plain-1", plain.usage], ["llama-server-stream-1", streamed.usage]] as const) {
            const entry = await auditEntry(front, requestId);
            assert.equal(entry.model, LLAMA_MODEL);
            assert.equal(entry.status, 200);
            assert.equal(entry.completion_tokens, 12);
            assert.equal(entry.prompt_tokens, usage!.prompt_tokens);
        }
        const metrics = await metricsOf(front);
        assert.equal(metricValue(metrics, "hearth_upstream_requests_total", {upstream: names.stories, status: "200"}), before + 2);
        assert.equal(metricValue(metrics, "hearth_upstream_up", {upstream: names.stories}), 1);
        assert.equal(metricValue(metrics, "hearth_upstream_in_flight", {upstream: names.stories}), 0);
        assert.ok(metricValue(metrics, "hearth_upstream_time_to_first_byte_seconds_count", {upstream: names.stories})! >= 2);
    });

    test("llama-server and Hearth serving the same model share its requests, and killing llama-server under load costs no request that had not begun streaming", async (t) => {
        // llama-server generates until its slot's context is full (stories260K never ends a story there), so with 8,192
        // tokens a slot its long stream is still running when it is killed.
        const victim = await startLlamaServer(binary, {model: await testModel("stories260K.gguf"), alias: SHARED_MODEL, threads: 1, parallel: 4, ctxSizePerSlot: 8192});
        try {
            const added = await fetch(`${front.url}/api/upstreams`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({url: victim.url})});
            assert.equal(added.status, 201);
            const victimView = await added.json() as UpstreamView;
            assert.equal(victimView.health, "up");
            assert.deepEqual(victimView.models, [SHARED_MODEL]);
            assert.equal((await front.client.models.retrieve(SHARED_MODEL)).owned_by.split(", ").sort().join(), [names.hearth, victimView.name].sort().join());

            const served = async () => {
                const metrics = await metricsOf(front);
                return [victimView.name, names.hearth].map((name) => metricValue(metrics, "hearth_upstream_requests_total", {upstream: name, status: "200"}) ?? 0);
            };
            const [victimBefore, hearthBefore] = await served();
            await Promise.all(Array.from({length: 8}, () => front.client.chat.completions.create({model: SHARED_MODEL, ...ask, max_tokens: 24})));
            const [victimServed, hearthServed] = (await served()).map((count, index) => count - [victimBefore!, hearthBefore!][index]!);
            assert.equal(victimServed! + hearthServed!, 8);
            assert.ok(victimServed! >= 2 && hearthServed! >= 2, `llama-server answered ${victimServed}, Hearth ${hearthServed}`);

            // Two long streams, one after the other, go to the two upstreams (the fewest in flight); each stream's
            // system_fingerprint says which answers it, so one is sure to be running on llama-server when it dies.
            const longStream = () => {
                const state = {chunks: 0, fingerprint: undefined as string | undefined, ended: false, done: Promise.resolve()};
                state.done = (async () => {
                    try {
                        for await (const chunk of await front.client.chat.completions.create({model: SHARED_MODEL, ...ask, max_tokens: 8000, stream: true})) {
                            state.fingerprint ??= chunk.system_fingerprint;
                            state.chunks += 1;
                        }
                    } finally {
                        state.ended = true;
                    }
                })();
                state.done.catch(() => undefined);
                return state;
            };
            const first = longStream();
            await eventually(async () => assert.ok(first.chunks > 0));
            const second = longStream();
            await eventually(async () => assert.ok(second.chunks > 0));
            assert.deepEqual([first, second].map((stream) => stream.fingerprint === HEARTH_FINGERPRINT).sort(), [false, true]);
            const [ownStream, hearthStream] = first.fingerprint === HEARTH_FINGERPRINT ? [second, first] : [first, second];

            const load = startChatLoad(front.client, {model: SHARED_MODEL, ...ask, max_tokens: 200});
            await eventually(async () => {
                const view = (await upstreamsOf(front)).find((upstream) => upstream.id === victimView.id)!;
                assert.ok(view.in_flight >= 3, `llama-server has ${view.in_flight} requests in flight`);
            }, 20_000);
            assert.equal(ownStream.ended, false, "the long stream on llama-server ended before the kill");
            victim.child.kill("SIGKILL");

            // The stream running on it when it died ends with the error event, at once; the one on Hearth goes on to its end.
            await assert.rejects(ownStream.done, (error: Error) => error.constructor.name === "APIError" && /stopped in the middle of its reply/.test(error.message));
            await hearthStream.done;
            const brokenStreams = await assertLoadSurvived(load);
            const failedOnVictim = upstreamFailures(await metricsOf(front), victimView.name);
            t.diagnostic(`the kill failed ${failedOnVictim} requests on llama-server: streams that had begun (${brokenStreams + 1}, the long one included), the rest retried on Hearth; `
                + `18 of 18 plain requests and ${9 - brokenStreams} of 9 streams completed`);
            assert.ok(failedOnVictim >= 1, "the kill hit no request in flight");

            const view = (await upstreamsOf(front)).find((upstream) => upstream.id === victimView.id)!;
            assert.equal(view.health, "down");
            const sentToVictim = async () => (await served())[0];
            const sentBefore = await sentToVictim();
            const afterwards = await Promise.all(Array.from({length: 8}, () => front.client.chat.completions.create({model: SHARED_MODEL, ...ask, max_tokens: 8})));
            assert.equal(afterwards.length, 8);
            assert.equal(await sentToVictim(), sentBefore);
            assert.equal((await fetch(`${front.url}/api/upstreams/${victimView.id}`, {method: "DELETE"})).status, 204);
        } finally {
            await victim.stop();
        }
    });
});
