import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {useTestServer} from "./helpers/testServer.js";

const model = "stories260K";
const server = useTestServer();

describe("POST /v1/chat/completions", () => {
    it("continues a story greedily and deterministically", async () => {
        const request = {model, messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0, max_tokens: 40};
        const first = await server.client.chat.completions.create(request);
        const second = await server.client.chat.completions.create(request);
        const content = first.choices[0]!.message.content!;
        assert.ok(content.length > 20, `got "${content}"`);
        assert.equal(second.choices[0]!.message.content, content);
        assert.equal(first.object, "chat.completion");
        assert.equal(first.model, model);
        assert.match(first.id, /^chatcmpl-/);
        assert.equal(first.choices[0]!.message.role, "assistant");
        assert.equal(first.usage!.completion_tokens, 40);
        assert.equal(first.choices[0]!.finish_reason, "length");
        assert.equal(first.usage!.total_tokens, first.usage!.prompt_tokens + first.usage!.completion_tokens);
    });

    it("streams the same text as SSE chunks, ending with a finish reason", async () => {
        const request = {model, messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0, max_tokens: 40};
        const whole = await server.client.chat.completions.create(request);
        const stream = await server.client.chat.completions.create({...request, stream: true, stream_options: {include_usage: true}});
        let text = "";
        let role: string | undefined;
        let finishReason: string | null = null;
        let usage;
        let chunks = 0;
        for await (const chunk of stream) {
            chunks++;
            assert.equal(chunk.object, "chat.completion.chunk");
            if (chunk.usage != null)
                usage = chunk.usage;
            const choice = chunk.choices[0];
            if (choice == null)
                continue;
            role ??= choice.delta.role;
            text += choice.delta.content ?? "";
            finishReason = choice.finish_reason ?? finishReason;
        }
        assert.equal(role, "assistant");
        assert.equal(text, whole.choices[0]!.message.content);
        assert.equal(finishReason, "length");
        assert.ok(chunks > 10, "one chunk per token, not one blob");
        assert.equal(usage?.completion_tokens, 40);
        assert.equal(usage?.prompt_tokens, whole.usage!.prompt_tokens);
    });

    it("stops at a stop string, never includes it, and names it in stop_reason (vLLM's field)", async () => {
        const base = {model, messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0, max_tokens: 60};
        const whole = await server.client.chat.completions.create(base);
        const full = whole.choices[0]!.message.content!;
        assert.equal((whole.choices[0] as {stop_reason?: unknown}).stop_reason, null);
        const words = full.split(" ").filter((word) => word.length >= 3);
        const stopWord = words[3]!;
        const cut = full.slice(0, full.indexOf(stopWord));
        for (const stop of [stopWord, [stopWord, "zzzz"]]) {
            const stopped = await server.client.chat.completions.create({...base, stop});
            assert.equal(stopped.choices[0]!.message.content, cut);
            assert.equal(stopped.choices[0]!.finish_reason, "stop");
            assert.equal((stopped.choices[0] as {stop_reason?: unknown}).stop_reason, stopWord);
        }
        const stream = await server.client.chat.completions.create({...base, stop: stopWord, stream: true});
        let text = "";
        let stopReason: unknown;
        for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? "";
            if (chunk.choices[0]?.finish_reason != null)
                stopReason = (chunk.choices[0] as {stop_reason?: unknown}).stop_reason;
        }
        assert.equal(text, cut);
        assert.equal(stopReason, stopWord);
    });

    it("gives the same output for the same seed when sampling", async () => {
        const request = {model, messages: [{role: "user" as const, content: "Tell me a story"}], temperature: 1, max_tokens: 30, seed: 1234};
        const a = await server.client.chat.completions.create(request);
        const b = await server.client.chat.completions.create(request);
        const c = await server.client.chat.completions.create({...request, seed: 99});
        assert.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
        assert.notEqual(a.choices[0]!.message.content, c.choices[0]!.message.content);
    });

    it("accepts every sampling option", async () => {
        const response = await server.client.chat.completions.create({
            model, messages: [{role: "user", content: "Once upon a time"}], max_tokens: 10,
            temperature: 0.7, top_p: 0.9, presence_penalty: 0.5, frequency_penalty: 0.5, seed: 1,
            // llama.cpp's extra options, as local tools send them
            ...{top_k: 20, min_p: 0.1, repeat_penalty: 1.2}
        });
        assert.equal(response.usage!.completion_tokens, 10);
    });

    it("returns n choices, generated in parallel slots", async () => {
        const response = await server.client.chat.completions.create({
            model, messages: [{role: "user", content: "Tell me a story"}], max_tokens: 20, n: 3, temperature: 1, seed: 7
        });
        assert.deepEqual(response.choices.map((choice) => choice.index), [0, 1, 2]);
        assert.equal(response.usage!.completion_tokens, 60);
        assert.equal(new Set(response.choices.map((choice) => choice.message.content)).size, 3, "each choice gets its own seed");

        const stream = await server.client.chat.completions.create({
            model, messages: [{role: "user", content: "Tell me a story"}], max_tokens: 20, n: 3, temperature: 1, seed: 7, stream: true
        });
        const texts = ["", "", ""];
        for await (const chunk of stream)
            for (const choice of chunk.choices)
                texts[choice.index] += choice.delta.content ?? "";
        assert.deepEqual(texts, response.choices.map((choice) => choice.message.content));
    });

    it("takes system, assistant and tool messages and text content parts", async () => {
        const response = await server.client.chat.completions.create({
            model,
            messages: [
                {role: "system", content: "You tell stories."},
                {role: "user", content: [{type: "text", text: "Once upon "}, {type: "text", text: "a time"}]},
                {role: "assistant", content: "there was a cat."},
                {role: "user", content: "And then?"}
            ],
            temperature: 0,
            max_tokens: 10
        });
        assert.equal(response.usage!.completion_tokens, 10);
        assert.ok(response.usage!.prompt_tokens > 20);
    });

    it("reports log probabilities of each token and its top alternatives", async () => {
        const response = await server.client.chat.completions.create({
            model, messages: [{role: "user", content: "Once upon a time"}], temperature: 0, max_tokens: 8, logprobs: true, top_logprobs: 3
        });
        const content = response.choices[0]!.logprobs!.content!;
        assert.equal(content.length, 8);
        assert.equal(content.map((entry) => entry.token).join(""), response.choices[0]!.message.content);
        for (const entry of content) {
            assert.ok(entry.logprob <= 0);
            assert.equal(entry.top_logprobs.length, 3);
            assert.equal(entry.top_logprobs[0]!.token, entry.token, "greedy picks the likeliest token");
            assert.deepEqual(entry.bytes, [...Buffer.from(entry.token)]);
        }
    });

    it("reuses the cached prefix of a growing conversation", async () => {
        const system = {role: "system" as const, content: "You are a storyteller. ".repeat(20)};
        const first = await server.client.chat.completions.create({model, messages: [system, {role: "user", content: "Hello"}], temperature: 0, max_tokens: 5});
        const second = await server.client.chat.completions.create({model, messages: [system, {role: "user", content: "Hello there"}], temperature: 0, max_tokens: 5});
        const cached = second.usage!.prompt_tokens_details!.cached_tokens!;
        const cachedBefore = first.usage!.prompt_tokens_details!.cached_tokens!;
        assert.ok(cached - cachedBefore > 100, `the shared system prompt is reused (${cached} cached of ${second.usage!.prompt_tokens}, ${cachedBefore} before)`);
        assert.ok(cached < second.usage!.prompt_tokens);
    });
});
