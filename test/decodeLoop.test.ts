import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {metricValue} from "./helpers/metrics.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";
import {useTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

// The same server twice: on Hearth's native decode loop (built by `npm run build`) and on its JavaScript
// loop. Both must give the same replies, token for token, and keep each slot's KV cache in step.
const native = useTestServer();
const javascript = useTestServer({decodeLoop: "javascript"});
const model = "stories260K";

type Completion = {text: string, finish: string | null, cached: number};

async function complete(server: TestServer, body: Record<string, unknown>): Promise<Completion> {
    const response = await server.client.completions.create({model, max_tokens: 60, temperature: 0, ...body} as never) as unknown as {
        choices: {text: string, finish_reason: string | null}[],
        usage: {prompt_tokens_details?: {cached_tokens: number}}
    };
    return {text: response.choices[0]!.text, finish: response.choices[0]!.finish_reason, cached: response.usage.prompt_tokens_details?.cached_tokens ?? 0};
}

async function onBoth(body: Record<string, unknown>): Promise<[Completion, Completion]> {
    return [await complete(native, body), await complete(javascript, body)];
}

const prompts = ["Once upon a time", "Lily and Ben", "The little dog", "One day, a bird"];

describe("decode loops", () => {
    it("runs the native loop here, and the JavaScript one when asked", async () => {
        const nativeInfo = await fetch(`${native.url}/api/server`).then((response) => response.json()) as {backend: {decode_loop: string, decode_loop_reason: string | null}};
        assert.equal(nativeInfo.backend.decode_loop, "native", `the native decode loop should be built and load here: ${nativeInfo.backend.decode_loop_reason}`);
        assert.equal(nativeInfo.backend.decode_loop_reason, null);
        const javascriptInfo = await fetch(`${javascript.url}/api/server`).then((response) => response.json()) as {backend: {decode_loop: string, decode_loop_reason: string | null}};
        assert.equal(javascriptInfo.backend.decode_loop, "javascript");
        assert.match(javascriptInfo.backend.decode_loop_reason!, /--decode-loop javascript/);
        // Per model too, in /api/server and beside Ollama's fields in /api/ps.
        type PerModel = {models: {decode_loop: string, decode_loop_reason: string | null}[]};
        for (const [server, loop] of [[native, "native"], [javascript, "javascript"]] as const) {
            for (const route of ["/api/server", "/api/ps"]) {
                const {models} = await fetch(`${server.url}${route}`).then((response) => response.json()) as PerModel;
                assert.equal(models.length, 1, route);
                assert.equal(models[0]!.decode_loop, loop, route);
                if (loop === "native")
                    assert.equal(models[0]!.decode_loop_reason, null, route);
                else
                    assert.match(models[0]!.decode_loop_reason!, /--decode-loop javascript/, route);
            }
        }
    });

    it("gives the same greedy text on both loops, alone and four streams at once", async () => {
        const [alone] = await onBoth({prompt: "Once upon a time", max_tokens: 200});
        assert.match(alone.text, /^, there was a little girl named Lily/);
        for (const server of [native, javascript]) {
            const together = await Promise.all(prompts.map((prompt) => complete(server, {prompt, max_tokens: 120})));
            const apart: Completion[] = [];
            for (const prompt of prompts)
                apart.push(await complete(server, {prompt, max_tokens: 120}));
            assert.deepEqual(together.map((reply) => reply.text), apart.map((reply) => reply.text), "batching does not change greedy replies");
        }
        for (const prompt of prompts) {
            const [fromNative, fromJavascript] = await onBoth({prompt, max_tokens: 120});
            assert.equal(fromNative.text, fromJavascript.text, prompt);
            assert.equal(fromNative.finish, fromJavascript.finish);
        }
    });

    it("samples the same text for the same seed, with penalties too", async () => {
        for (const body of [
            {prompt: "Once upon a time", temperature: 1, seed: 7, top_p: 0.9},
            {prompt: "The little dog", temperature: 0.8, seed: 123, frequency_penalty: 0.6, presence_penalty: 0.3},
            {prompt: "Lily and Ben", temperature: 0, frequency_penalty: 1.5}
        ]) {
            const [fromNative, fromJavascript] = await onBoth({...body, max_tokens: 80});
            assert.ok(fromNative.text.length > 0);
            assert.equal(fromNative.text, fromJavascript.text, JSON.stringify(body));
        }
        const [greedy] = await onBoth({prompt: "Lily and Ben", max_tokens: 80});
        const [penalized] = await onBoth({prompt: "Lily and Ben", max_tokens: 80, frequency_penalty: 1.5});
        assert.notEqual(penalized.text, greedy.text, "the penalty changes the reply");
    });

    it("keeps the cache in step after a stop string, when tokens were sampled past it", async () => {
        const followUps: Completion[] = [];
        for (const server of [native, javascript]) {
            const first = await complete(server, {prompt: "Once upon a time", stop: [" named"], max_tokens: 100});
            assert.equal(first.finish, "stop");
            assert.equal(first.text, ", there was a little girl");
            // The next request extends the first one's prompt and reply: the slot reuses what it cached.
            const followUp = await complete(server, {prompt: `Once upon a time${first.text} named Lily. She`, max_tokens: 40});
            assert.ok(followUp.cached >= 5, `reused ${followUp.cached} cached tokens`);
            followUps.push(followUp);
        }
        assert.equal(followUps[0]!.text, followUps[1]!.text);
    });

    it("gives the same log probabilities on both loops", async () => {
        const body = {model, messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 3};
        const [fromNative, fromJavascript] = await Promise.all([native.client.chat.completions.create(body), javascript.client.chat.completions.create(body)]);
        const a = fromNative.choices[0]!.logprobs!.content!;
        const b = fromJavascript.choices[0]!.logprobs!.content!;
        assert.equal(a.length, 12);
        assert.deepEqual(a.map((entry) => entry.token), b.map((entry) => entry.token));
        a.forEach((entry, index) => {
            assert.ok(Math.abs(entry.logprob - b[index]!.logprob) < 1e-3, `${entry.logprob} against ${b[index]!.logprob}`);
            assert.deepEqual(entry.top_logprobs.map((top) => top.token), b[index]!.top_logprobs.map((top) => top.token));
            assert.equal(entry.top_logprobs[0]!.token, entry.token);
        });
    });

    it("follows a JSON schema on both loops", async () => {
        const body = {
            model, temperature: 0, max_tokens: 60,
            messages: [{role: "user" as const, content: "Tell me about Lily"}],
            response_format: {type: "json_schema" as const, json_schema: {name: "pet", schema: {
                type: "object", properties: {name: {type: "string"}, age: {type: "integer"}}, required: ["name", "age"]
            }}}
        };
        const [fromNative, fromJavascript] = await Promise.all([native.client.chat.completions.create(body), javascript.client.chat.completions.create(body)]);
        const parsed = JSON.parse(fromNative.choices[0]!.message.content!) as {name: unknown, age: unknown};
        assert.equal(typeof parsed.name, "string");
        assert.ok(Number.isInteger(parsed.age));
        assert.equal(fromNative.choices[0]!.message.content, fromJavascript.choices[0]!.message.content);
    });

    it("stops a stream whose client goes away, and frees its slot", async () => {
        for (const server of [native, javascript]) {
            const stream = await server.client.completions.create({model, prompt: "Once upon a time", max_tokens: 100_000, temperature: 0, stream: true});
            let chunks = 0;
            for await (const _chunk of stream) {
                if (++chunks === 5)
                    break;
            }
            // The slot is free long before 100,000 tokens (the slot's context ends at 2,048 anyway) could be generated.
            let busy = Number.NaN;
            for (let attempt = 0; attempt < 50; attempt++) {
                const metrics = await fetch(`${server.url}/metrics`).then((response) => response.text());
                busy = metricValue(metrics, "hearth_busy_slots", {model}) ?? Number.NaN;
                if (busy === 0)
                    break;
                await new Promise((resolve) => setTimeout(resolve, 10));
            }
            assert.equal(busy, 0);
            const replies = await Promise.all(prompts.map((prompt) => complete(server, {prompt, max_tokens: 20})));
            assert.ok(replies.every((reply) => reply.text.length > 0));
        }
    });

    it("samples at most a bounded distance ahead of a reader that stops reading", async () => {
        const loaded = native.engine.get(model);
        const prompt = loaded.textPrompt("The tiny dragon flew");
        const generation = await loaded.start(prompt, {maxTokens: 1500, sampling: {temperature: 0}, stop: [], ignoreEos: true});
        await generation.events.next();
        // At this model's speed the loop would sample the whole budget in this time, were it not held back.
        await new Promise((resolve) => setTimeout(resolve, 400));
        await generation.events.return(undefined);
        const slot = loaded.scheduler.slots.find((candidate) => prompt.tokens.every((token, index) => candidate.sequence.contextTokens[index] === token));
        assert.ok(slot != null, "the generation's slot keeps its prompt");
        const sampled = slot.sequence.contextTokens.length - prompt.tokens.length;
        // 32 events prefetched for the reader, the loop 64 tokens ahead of those (acknowledged every 8), the batch in flight.
        assert.ok(sampled > 0 && sampled <= 110, `${sampled} tokens sampled while one was read`);
    });

    it("exits cleanly when stopped at once while a reply is being generated", async () => {
        const server = spawnHearth(["serve", "--model", await testModel("stories260K.gguf"), "--port", "0", "--threads", "1", "--ctx-size", "32768", "--parallel", "1"]);
        const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        await server.waitForOutput(/Ready/);
        const response = await fetch(`${url}/v1/completions`, {
            method: "POST", headers: {"content-type": "application/json"},
            body: JSON.stringify({model, prompt: "Once upon a time", max_tokens: 30_000, temperature: 0, stream: true})
        });
        const reader = response.body!.getReader();
        await reader.read();
        // The first SIGTERM drains running replies; the second exits at once, with the loop thread still decoding.
        server.child.kill("SIGTERM");
        await new Promise((resolve) => setTimeout(resolve, 200));
        server.child.kill("SIGTERM");
        const exited = await server.exited;
        assert.equal(exited.code, 1, `exit code ${exited.code}: ${exited.stderr}`);
        await reader.cancel().catch(() => undefined);
    });
});
