import assert from "node:assert/strict";
import {after, before, describe, test} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import type {MessageCreateParamsNonStreaming} from "@anthropic-ai/sdk/resources/messages";
import {Ollama} from "ollama";
import type OpenAI from "openai";
import type {ChatResponse, Message} from "ollama";
import {eventually} from "./helpers/eventually.js";
import {fixtureImage} from "./helpers/imageBytes.js";
import {upstreamsOf} from "./helpers/upstreamViews.js";
import {troubledUpstream, vanishingUpstream} from "./helpers/troubledUpstreams.js";
import type {TroubledUpstream} from "./helpers/troubledUpstreams.js";
import {assertWeatherCall, greedyRequest, hello, weather} from "./helpers/anthropicRequests.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import type {TinyUpstream} from "./helpers/tinyUpstream.js";


const qwen = "qwen3-script";
const stories = "stories260K";
const base = greedyRequest(qwen);

/** The text of a message's blocks of one type. */
function blocks(message: Anthropic.Message, type: "text" | "thinking"): string {
    return message.content.map((block) => block.type === "text" && type === "text" ? block.text : block.type === "thinking" && type === "thinking" ? block.thinking : "").join("");
}

/** What two replies of the same greedy model must share, whichever server wrote them; ids and durations differ. */
function essence(message: Anthropic.Message) {
    return {
        content: message.content.map((block) => block.type === "tool_use" ? {type: block.type, name: block.name, input: block.input} : block),
        stop_reason: message.stop_reason,
        output_tokens: message.usage.output_tokens,
        prompt_tokens: message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0)
    };
}

describe("upstream models on /v1/messages and the Ollama API, translated to OpenAI's chat completions", () => {
    let upstream: TestServer;
    let front: TestServer;
    let gone: TinyUpstream;
    let troubled: TroubledUpstream;
    const anthropic = (server: TestServer) => new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0});
    const ollama = (server: TestServer) => new Ollama({host: server.url});
    /** A broken stream takes the troubled upstream out for its back-off; it is back once its models are read again. */
    const troubledUp = () => eventually(async () => {
        assert.equal((await upstreamsOf(front)).find((entry) => entry.url === troubled.url)?.health, "up");
    });

    before(async () => {
        [gone, troubled] = await Promise.all([vanishingUpstream("qwen-gone"), troubledUpstream()]);
        upstream = await startTestServer({modelFiles: ["scripted/qwen3-script.gguf", "stories260K.gguf"], ctxSize: 4096});
        // The front serves no model of its own: everything it answers comes from its upstreams.
        front = await startTestServer({modelFiles: [], upstreams: [{url: upstream.url, key: undefined}, {url: gone.url, key: undefined}, {url: troubled.url, key: undefined}]});
        await eventually(async () => {
            const upstreams = await upstreamsOf(front);
            assert.equal(upstreams.filter((entry) => entry.health === "up").length, 3, JSON.stringify(upstreams));
        });
        await gone.close();
    });
    after(async () => {
        await front?.close();
        await upstream?.close();
        await troubled?.close();
    });

    test("the Anthropic SDK gets thinking and text blocks, and usage, the same as from the upstream itself, streamed and not", async () => {
        const request = {...base, thinking: {type: "enabled", budget_tokens: 1024}} as MessageCreateParamsNonStreaming;
        const direct = await anthropic(upstream).messages.create(request);
        const message = await anthropic(front).messages.create(request);
        assert.match(message.id, /^msg_/);
        assert.equal(message.model, qwen);
        assert.deepEqual(message.content.map((block) => block.type), ["thinking", "text"]);
        assert.equal(blocks(message, "thinking").trim(), "Let me think.");
        assert.equal(blocks(message, "text").trim(), "Hello from Qwen.");
        assert.equal(message.stop_reason, "end_turn");
        assert.ok(message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0) > 0 && message.usage.output_tokens > 0, JSON.stringify(message.usage));
        assert.deepEqual(essence(message), essence(direct));

        const stream = anthropic(front).messages.stream(request);
        const kinds: string[] = [];
        stream.on("streamEvent", (event) => {
            if (event.type === "content_block_delta")
                kinds.push(event.delta.type);
        });
        const streamed = await stream.finalMessage();
        assert.ok(kinds.includes("thinking_delta") && kinds.includes("text_delta"), kinds.join());
        assert.ok(kinds.indexOf("text_delta") > kinds.lastIndexOf("thinking_delta"), "the thinking comes before the answer");
        assert.deepEqual(essence(streamed), essence(direct));

        const counted = await anthropic(front).messages.countTokens({model: qwen, messages: hello, thinking: {type: "enabled", budget_tokens: 1024}});
        assert.equal(counted.input_tokens, (await anthropic(upstream).messages.countTokens({model: qwen, messages: hello, thinking: {type: "enabled", budget_tokens: 1024}})).input_tokens);
        assert.equal(counted.input_tokens, message.usage.input_tokens + (message.usage.cache_read_input_tokens ?? 0));

        const off = await anthropic(front).messages.create({...base, thinking: {type: "disabled"}});
        assert.deepEqual(off.content.map((block) => block.type), ["text"]);
        assert.equal(blocks(off, "text").trim(), "Hello from Qwen.");
    });

    test("a stop sequence that ends an upstream's reply is the Anthropic SDK's stop_sequence, read from the upstream's stop_reason", async () => {
        const stopped = {...base, thinking: {type: "disabled"}, stop_sequences: ["zzzz", "Qwen"]} as MessageCreateParamsNonStreaming;
        const direct = await anthropic(upstream).messages.create(stopped);
        assert.equal(direct.stop_reason, "stop_sequence");
        assert.equal(direct.stop_sequence, "Qwen");
        assert.equal(blocks(direct, "text").trim(), "Hello from");
        for (const message of [await anthropic(front).messages.create(stopped), await anthropic(front).messages.stream(stopped).finalMessage()]) {
            assert.deepEqual(essence(message), essence(direct));
            assert.equal(message.stop_sequence, "Qwen");
        }
        // The upstream (Hearth) names the stop in its chat completion as vLLM does.
        const completion = await upstream.client.chat.completions.create({model: qwen, messages: [{role: "user", content: "Hi"}], temperature: 0, stop: ["Qwen"], reasoning_effort: "none"} as OpenAI.ChatCompletionCreateParamsNonStreaming);
        assert.equal((completion.choices[0] as {stop_reason?: unknown}).stop_reason, "Qwen");
        // Without one, a reply that simply ended is end_turn, with no stop_sequence.
        const ended = await anthropic(front).messages.create({...stopped, stop_sequences: ["zzzz"]});
        assert.equal(ended.stop_reason, "end_turn");
        assert.equal(ended.stop_sequence, null);
    });

    test("the Anthropic SDK gets a tool_use block, and the answer after its tool_result, as from the upstream itself", async () => {
        const ask = {...base, tools: [weather], messages: [{role: "user", content: "Weather in Paris?"}]} as MessageCreateParamsNonStreaming;
        const call = await anthropic(front).messages.create(ask);
        const use = assertWeatherCall(call);
        assert.deepEqual(essence(call), essence(await anthropic(upstream).messages.create(ask)));

        const streamedCall = await anthropic(front).messages.stream(ask).finalMessage();
        assert.deepEqual(essence(streamedCall), essence(call));

        const answer: MessageCreateParamsNonStreaming = {
            ...ask,
            messages: [
                ...ask.messages,
                {role: "assistant", content: call.content},
                {role: "user", content: [{type: "tool_result", tool_use_id: use.id, content: [{type: "text", text: "sunny, 22 °C"}]}]}
            ]
        };
        const final = await anthropic(front).messages.create(answer);
        assert.equal(final.stop_reason, "end_turn");
        assert.equal(blocks(final, "text").trim(), "It is sunny in Paris.");
        assert.deepEqual(essence(final), essence(await anthropic(upstream).messages.create(answer)));
    });

    test("the ollama client chats with thinking, streamed and not, as with the upstream itself", async () => {
        const request = () => ({model: qwen, messages: [{role: "user", content: "Hi"}], think: true, options: {temperature: 0}});
        const direct = await ollama(upstream).chat(request());
        const whole = await ollama(front).chat(request());
        assert.equal(whole.model, qwen);
        assert.equal(whole.message.thinking?.trim(), "Let me think.");
        assert.equal(whole.message.content.trim(), "Hello from Qwen.");
        assert.equal(whole.done_reason, "stop");
        assert.equal(whole.eval_count, direct.eval_count);
        assert.equal(whole.prompt_eval_count, direct.prompt_eval_count);
        assert.deepEqual({content: whole.message.content, thinking: whole.message.thinking}, {content: direct.message.content, thinking: direct.message.thinking});

        const parts: ChatResponse[] = [];
        for await (const part of await ollama(front).chat({...request(), stream: true}))
            parts.push(part);
        assert.ok(parts.length > 4, `${parts.length} lines`);
        assert.equal(parts.map((part) => part.message.thinking ?? "").join(""), whole.message.thinking);
        assert.equal(parts.map((part) => part.message.content).join(""), whole.message.content);
        assert.equal(parts.at(-1)!.done, true);
        assert.equal(parts.at(-1)!.eval_count, whole.eval_count);
    });

    test("the ollama client gets tool_calls, and the answer after a tool message, as from the upstream itself", async () => {
        const tools = [{type: "function", function: {name: "get_weather", description: "The weather in a city", parameters: {type: "object", properties: {city: {type: "string"}}, required: ["city"]}}}];
        const messages: Message[] = [{role: "user", content: "Weather in Paris?"}];
        const call = await ollama(front).chat({model: qwen, messages, tools, options: {temperature: 0}});
        assert.equal(call.message.tool_calls?.length, 1, JSON.stringify(call.message));
        assert.equal(call.message.tool_calls![0]!.function.name, "get_weather");
        assert.deepEqual(call.message.tool_calls![0]!.function.arguments, {city: "Paris"});
        const direct = await ollama(upstream).chat({model: qwen, messages, tools, options: {temperature: 0}});
        assert.deepEqual(direct.message.tool_calls?.map((entry) => entry.function), call.message.tool_calls.map((entry) => entry.function));

        const streamed: ChatResponse[] = [];
        for await (const part of await ollama(front).chat({model: qwen, messages, tools, options: {temperature: 0}, stream: true}))
            streamed.push(part);
        assert.deepEqual(streamed.flatMap((part) => part.message.tool_calls ?? []).map((entry) => entry.function), call.message.tool_calls.map((entry) => entry.function));

        // Ollama's tool messages name the tool, not the call: the front finds the call's id for the upstream.
        const history: Message[] = [...messages, call.message, {role: "tool", content: "sunny, 22 °C", tool_name: "get_weather"}];
        const answer = await ollama(front).chat({model: qwen, messages: history, tools, options: {temperature: 0}});
        assert.equal(answer.message.content.trim(), "It is sunny in Paris.");
        assert.equal(answer.message.content, (await ollama(upstream).chat({model: qwen, messages: history, tools, options: {temperature: 0}})).message.content);
    });

    test("the ollama client generates, raw and not, lists the upstream's models, shows one and embeds with it", async () => {
        const generated = await ollama(front).generate({model: qwen, prompt: "Hi", think: false, options: {temperature: 0}});
        assert.equal(generated.response?.trim(), "Hello from Qwen.");
        assert.equal(generated.response, (await ollama(upstream).generate({model: qwen, prompt: "Hi", think: false, options: {temperature: 0}})).response);
        const raw = {model: stories, prompt: "Once upon a time", raw: true, options: {temperature: 0, num_predict: 12}};
        const rawFront = await ollama(front).generate(raw);
        assert.ok((rawFront.response ?? "").length > 5, rawFront.response);
        assert.equal(rawFront.response, (await ollama(upstream).generate(raw)).response);
        assert.equal(rawFront.done_reason, "length");
        assert.equal(rawFront.eval_count, 12);

        const listed = await ollama(front).list();
        assert.ok(listed.models.some((model) => model.name === qwen), JSON.stringify(listed.models.map((model) => model.name)));
        const entry = listed.models.find((model) => model.name === stories) as unknown as {remote_host?: string};
        assert.equal(entry?.remote_host, upstream.url);
        const shown = await ollama(front).show({model: qwen});
        assert.ok(shown.capabilities.includes("completion"));

        const embedded = await ollama(front).embed({model: stories, input: ["Once upon a time", "a little girl"]});
        const direct = await ollama(upstream).embed({model: stories, input: ["Once upon a time", "a little girl"]});
        assert.equal(embedded.embeddings.length, 2);
        embedded.embeddings.forEach((vector, index) => {
            assert.equal(vector.length, direct.embeddings[index]!.length);
            vector.forEach((value, dimension) => assert.ok(Math.abs(value - direct.embeddings[index]![dimension]!) < 1e-5));
        });
        assert.ok(embedded.prompt_eval_count! > 0);
        const legacy = await ollama(front).embeddings({model: stories, prompt: "Once upon a time"});
        assert.equal(legacy.embedding.length, direct.embeddings[0]!.length);
    });

    test("the app's conversations reply with an upstream's model too", async () => {
        const post = async (url: string, body: unknown) => (await fetch(url, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)})).json() as Promise<{id: string}>;
        const conversation = await post(`${front.url}/api/conversations`, {model: qwen, options: {temperature: 0}});
        await post(`${front.url}/api/conversations/${conversation.id}/messages`, {role: "user", content: "Hi"});
        const response = await fetch(`${front.url}/api/conversations/${conversation.id}/reply`, {method: "POST", headers: {"content-type": "application/json"}, body: "{}"});
        assert.equal(response.status, 200);
        const lines = (await response.text()).trim().split("\n").map((line) => JSON.parse(line) as {type: string, text?: string, message?: {content: string, reasoning: string, status: string}});
        const done = lines.at(-1)!;
        assert.equal(done.type, "done", JSON.stringify(done));
        assert.equal(done.message!.status, "complete");
        assert.equal(done.message!.content.trim(), "Hello from Qwen.");
        assert.equal(done.message!.reasoning.trim(), "Let me think.");
        assert.equal(lines.filter((line) => line.type === "text").map((line) => line.text).join(""), done.message!.content);
    });

    test("a route's upstream target is chosen on /v1/messages and the Ollama API too", async () => {
        const put = await fetch(`${front.url}/api/routes/helper`, {method: "PUT", headers: {"content-type": "application/json"}, body: JSON.stringify({targets: [{model: qwen}]})});
        assert.equal(put.status, 200);
        try {
            const {data: message, response} = await anthropic(front).messages.create({...base, model: "helper", thinking: {type: "disabled"}}).withResponse();
            assert.equal(response.headers.get("x-hearth-model"), qwen);
            assert.equal(blocks(message, "text").trim(), "Hello from Qwen.");
            const chat = await fetch(`${front.url}/api/chat`, {method: "POST", body: JSON.stringify({model: "helper", messages: [{role: "user", content: "Hi"}], think: false, stream: false})});
            assert.equal(chat.status, 200);
            assert.equal(chat.headers.get("x-hearth-model"), qwen);
            assert.equal(((await chat.json()) as ChatResponse).message.content.trim(), "Hello from Qwen.");
        } finally {
            assert.equal((await fetch(`${front.url}/api/routes/helper`, {method: "DELETE"})).status, 204);
        }
    });

    test("an upstream that is down is an Anthropic error with its status, and an Ollama error, not a 500", async () => {
        await assert.rejects(anthropic(front).messages.create({...base, model: "qwen-gone"}), (error: unknown) => {
            assert.ok(error instanceof Anthropic.APIError, String(error));
            assert.ok(error.status === 502 || error.status === 503, `status ${error.status}`);
            const body = error.error as {type?: string, error?: {type?: string, message?: string}};
            assert.equal(body.type, "error");
            assert.equal(body.error?.type, error.status === 503 ? "overloaded_error" : "api_error");
            assert.match(body.error?.message ?? "", /upstream/);
            return true;
        });
        // Now out for its back-off: every upstream that serves it is down.
        await assert.rejects(anthropic(front).messages.create({...base, model: "qwen-gone"}), (error: unknown) => {
            assert.ok(error instanceof Anthropic.APIError && error.status === 503, String(error));
            assert.equal((error.error as {error?: {type?: string}}).error?.type, "overloaded_error");
            return true;
        });
        const response = await fetch(`${front.url}/api/chat`, {method: "POST", body: JSON.stringify({model: "qwen-gone", messages: [{role: "user", content: "Hi"}]})});
        assert.equal(response.status, 503);
        assert.ok(response.headers.get("retry-after") != null);
        assert.match((await response.json() as {error: string}).error, /upstream/);
    });

    test("an upstream's refusal reaches the client with its status and message, in the client's API's shape", async () => {
        const refused = await fetch(`${front.url}/api/chat`, {method: "POST", body: JSON.stringify({model: qwen, messages: [{role: "user", content: "Hi"}], format: {type: "object", not: {}}})});
        assert.equal(refused.status, 400);
        assert.match((await refused.json() as {error: string}).error, /refused the request \(HTTP 400\)/);
        // Too long for the upstream's context: only the upstream, which has the tokenizer, can tell. Its refusal is
        // worded as each API words its own, so that agents compact their history.
        const long = "word ".repeat(6000);
        await assert.rejects(anthropic(front).messages.create({...base, messages: [{role: "user", content: long}]}), (error: unknown) => {
            assert.ok(error instanceof Anthropic.BadRequestError, String(error));
            const body = error.error as {type?: string, error?: {type?: string, message?: string}};
            assert.equal(body.error?.type, "invalid_request_error");
            assert.match(body.error?.message ?? "", /^prompt is too long: \d+ tokens > 4095 maximum$/);
            return true;
        });
        const response = await fetch(`${front.url}/api/chat`, {method: "POST", body: JSON.stringify({model: qwen, messages: [{role: "user", content: long}]})});
        assert.equal(response.status, 400);
        assert.match((await response.json() as {error: string}).error, /^This prompt is \d+ tokens long, but the context of the upstream .+'s model is 4096 tokens/);
        // A refusal is the request's fault, not the upstream's: it stays up.
        assert.equal((await upstreamsOf(front)).find((entry) => entry.url === upstream.url)?.health, "up");
    });

    test("a stream that breaks upstream ends with the API's own error event", async () => {
        const lines = await (await fetch(`${front.url}/api/chat`, {method: "POST", body: JSON.stringify({model: "qwen-error", messages: [{role: "user", content: "Hi"}]})})).text();
        const parsed = lines.trim().split("\n").map((line) => JSON.parse(line) as {message?: {content: string}, error?: string});
        assert.equal(parsed[0]!.message?.content, "Half a");
        assert.match(parsed.at(-1)!.error ?? "", /stopped in the middle of its reply: the model crashed/);

        const stream = anthropic(front).messages.stream({...base, model: "qwen-broken"});
        let text = "";
        stream.on("text", (piece) => text += piece);
        await assert.rejects(stream.finalMessage(), (error: unknown) => {
            assert.ok(error instanceof Anthropic.APIError, String(error));
            assert.match(error.message, /api_error/);
            assert.match(error.message, /stopped in the middle of its reply/);
            return true;
        });
        assert.equal(text, "Half a");
    });

    test("a reply in another server's dialect reads the same: reasoning, calls in pieces, usage in a last chunk", async () => {
        await troubledUp();
        const ask = {...base, model: "qwen-dialect", tools: [weather]} as MessageCreateParamsNonStreaming;
        const expected = {
            content: [{type: "thinking", thinking: "Thinking hard", signature: ""}, {type: "text", text: "Calling"}, {type: "tool_use", name: "get_weather", input: {city: "Zürich"}}],
            stop_reason: "tool_use",
            output_tokens: 7,
            prompt_tokens: 11
        };
        const message = await anthropic(front).messages.create(ask);
        assert.deepEqual(essence(message), expected);
        assert.equal(message.usage.cache_read_input_tokens, 4);
        const streamed = await anthropic(front).messages.stream(ask).finalMessage();
        assert.deepEqual(essence(streamed), expected);
        const chat = await ollama(front).chat({model: "qwen-dialect", messages: [{role: "user", content: "Hi"}], tools: [{type: "function", function: {name: "get_weather"}}]});
        assert.equal(chat.message.thinking, "Thinking hard");
        assert.deepEqual(chat.message.tool_calls?.map((call) => call.function), [{index: 0, name: "get_weather", arguments: {city: "Zürich"}}]);
        assert.equal(chat.prompt_eval_count, 11);
        assert.equal(chat.eval_count, 7);
    });

    test("a client that goes away mid-stream cancels the request upstream and frees it", async () => {
        await troubledUp();
        const controller = new AbortController();
        const response = await fetch(`${front.url}/v1/messages`, {
            method: "POST", signal: controller.signal, headers: {"content-type": "application/json"},
            body: JSON.stringify({model: "qwen-slow", max_tokens: 2000, stream: true, messages: [{role: "user", content: "Hi"}]})
        });
        assert.equal(response.status, 200);
        const reader = response.body!.getReader();
        let received = "";
        while (!received.includes(" more"))
            received += new TextDecoder().decode((await reader.read()).value);
        assert.equal((await upstreamsOf(front)).find((entry) => entry.url === troubled.url)!.in_flight, 1);
        controller.abort();
        await eventually(async () => {
            assert.equal((await upstreamsOf(front)).find((entry) => entry.url === troubled.url)!.in_flight, 0);
            assert.equal(troubled.closedEarly, 1);
        });
    });

    test("the request timeout ends an upstream's streaming reply as if its tokens ran out, a reply not begun with a 503, and cancels both upstream", async () => {
        await troubledUp();
        const hasty = await startTestServer({modelFiles: [], upstreams: [{url: troubled.url, key: undefined}], requestTimeoutMs: 400});
        try {
            await eventually(async () => assert.equal((await upstreamsOf(hasty))[0]?.health, "up"));
            const closedBefore = troubled.closedEarly;
            const response = await fetch(`${hasty.url}/api/chat`, {method: "POST", body: JSON.stringify({model: "qwen-slow", messages: [{role: "user", content: "Hi"}]})});
            assert.equal(response.status, 200);
            const lines = (await response.text()).trim().split("\n").map((line) => JSON.parse(line) as {message?: {content: string}, done?: boolean, done_reason?: string, eval_count?: number, error?: string});
            assert.equal(lines[0]!.message?.content, "Half a");
            const last = lines.at(-1)!;
            assert.equal(last.error, undefined);
            assert.equal(last.done, true);
            assert.equal(last.done_reason, "length");
            // No usage came from the upstream: each chunk that carried a piece counts as a token.
            assert.equal(last.eval_count, lines.filter((line) => (line.message?.content ?? "") !== "").length);
            assert.ok(last.eval_count! >= 3, `${last.eval_count} chunks in 0.4 s`);

            const message = await anthropic(hasty).messages.create({...base, model: "qwen-slow"});
            assert.equal(message.stop_reason, "max_tokens");
            assert.match(message.content[0]?.type === "text" ? message.content[0].text : "", /^Half a( more)+$/);
            assert.ok(message.usage.output_tokens >= 3);

            await assert.rejects(anthropic(hasty).messages.create({...base, model: "qwen-silent"}), (error: unknown) => {
                assert.ok(error instanceof Anthropic.APIError && error.status === 503, String(error));
                assert.equal((error.error as {error?: {type?: string}}).error?.type, "overloaded_error");
                assert.match((error.error as {error?: {message?: string}}).error?.message ?? "", /request timeout \(0.4 s\)/);
                return true;
            });
            await eventually(async () => {
                assert.equal((await upstreamsOf(hasty))[0]!.in_flight, 0);
                assert.equal(troubled.closedEarly, closedBefore + 3);
            });
        } finally {
            await hasty.close();
        }
    });

    test("the request upstream is OpenAI's, streamed with its usage, with the tools, thinking and sampling translated", async () => {
        await troubledUp();
        const before = troubled.bodies.length;
        await ollama(front).chat({
            model: "qwen-error", messages: [{role: "system", content: "Be brief."}, {role: "user", content: "Hi"}], think: false, format: "json",
            options: {temperature: 0.5, top_k: 7, seed: 3, num_predict: 9, stop: ["!"]}
        }).catch(() => undefined);
        await anthropic(front).messages.create({
            ...base, model: "qwen-error", tools: [weather], tool_choice: {type: "tool", name: "get_weather"}, thinking: {type: "enabled", budget_tokens: 2000},
            messages: [
                {role: "user", content: "Weather?"},
                {role: "assistant", content: [{type: "tool_use", id: "toolu_1", name: "get_weather", input: {city: "Paris"}}]},
                {role: "user", content: [{type: "tool_result", tool_use_id: "toolu_1", content: "sunny"}]}
            ]
        }).catch(() => undefined);
        const [ollamaBody, anthropicBody] = troubled.bodies.slice(before);
        assert.deepEqual(ollamaBody, {
            model: "qwen-error",
            messages: [{role: "system", content: "Be brief."}, {role: "user", content: "Hi"}],
            max_tokens: 9, temperature: 0.5, top_k: 7, seed: 3, stop: ["!"],
            stream: true, stream_options: {include_usage: true},
            response_format: {type: "json_object"},
            chat_template_kwargs: {enable_thinking: false}
        });
        assert.deepEqual(anthropicBody, {
            model: "qwen-error",
            messages: [
                {role: "user", content: "Weather?"},
                {role: "assistant", content: null, tool_calls: [{id: "toolu_1", type: "function", function: {name: "get_weather", arguments: "{\"city\":\"Paris\"}"}}]},
                {role: "tool", content: "sunny", tool_call_id: "toolu_1", name: "get_weather"}
            ],
            max_tokens: 200, temperature: 0,
            stream: true, stream_options: {include_usage: true},
            tools: [{type: "function", function: {name: "get_weather", description: "The weather in a city", parameters: weather.input_schema}}],
            tool_choice: {type: "function", function: {name: "get_weather"}},
            chat_template_kwargs: {enable_thinking: true}, reasoning_effort: "low"
        });
    });

    test("images go upstream as OpenAI's image_url parts (data URIs), where each was in the message", async () => {
        await troubledUp();
        const before = troubled.bodies.length;
        const red = await fixtureImage("red.png");
        const uri = `data:image/png;base64,${red.toString("base64")}`;
        await ollama(front).chat({model: "qwen-error", messages: [{role: "user", content: "What colour?", images: [red.toString("base64")]}]}).catch(() => undefined);
        await anthropic(front).messages.create({
            ...base, model: "qwen-error",
            messages: [{role: "user", content: [{type: "text", text: "Compare"}, {type: "image", source: {type: "base64", media_type: "image/png", data: red.toString("base64")}}, {type: "text", text: "with"},
                {type: "image", source: {type: "base64", media_type: "image/png", data: red.toString("base64")}}]}]
        }).catch(() => undefined);
        const [ollamaBody, anthropicBody] = troubled.bodies.slice(before) as {messages: unknown[]}[];
        assert.deepEqual(ollamaBody!.messages, [{role: "user", content: [{type: "image_url", image_url: {url: uri}}, {type: "text", text: "What colour?"}]}]);
        assert.deepEqual(anthropicBody!.messages, [{role: "user", content: [
            {type: "text", text: "Compare"}, {type: "image_url", image_url: {url: uri}}, {type: "text", text: "with"}, {type: "image_url", image_url: {url: uri}}
        ]}]);
    });
});
