import assert from "node:assert/strict";
import {describe, it} from "node:test";
import OpenAI from "openai";
import {fileServers, waitFor} from "./helpers/fileServers.js";

const model = "stories260K";
const server = fileServers();

describe("slots and the queue", () => {
    it("serves 8 concurrent requests on 4 slots, batched, with the same greedy output as one alone", async () => {
        const {client, engine} = await server({parallel: 4});
        const request = {model, messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0, max_tokens: 60};
        const alone = (await client.chat.completions.create(request)).choices[0]!.message.content;
        const scheduler = engine.get(model).scheduler;
        let mostBusy = 0;
        let mostQueued = 0;
        const watcher = setInterval(() => {
            mostBusy = Math.max(mostBusy, scheduler.busySlots);
            mostQueued = Math.max(mostQueued, scheduler.queuedRequests);
        }, 1);
        const results = await Promise.all(Array.from({length: 8}, () => client.chat.completions.create(request)));
        clearInterval(watcher);
        for (const result of results)
            assert.equal(result.choices[0]!.message.content, alone);
        assert.equal(mostBusy, 4, "all four slots generated at once");
        assert.ok(mostQueued >= 1, "the rest waited in the queue");
        assert.equal(scheduler.busySlots, 0);
    });

    it("answers 503 with Retry-After when the queue is full", async () => {
        const {client, url, engine} = await server({parallel: 1, maxQueue: 1});
        const scheduler = engine.get(model).scheduler;
        const long = {model, prompt: "Once upon a time", max_tokens: 1800, temperature: 0};
        const running = client.completions.create(long);
        await waitFor(() => scheduler.busySlots === 1);
        const queued = client.completions.create({...long, max_tokens: 5});
        await waitFor(() => scheduler.queuedRequests === 1);

        const response = await fetch(`${url}/v1/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(long)});
        assert.equal(response.status, 503);
        assert.ok(Number(response.headers.get("retry-after")) >= 1);
        const body = await response.json() as {error: {message: string, code: string}};
        assert.equal(body.error.code, "queue_full");
        assert.match(body.error.message, /busy/);
        await assert.rejects(client.completions.create(long), (error: unknown) => error instanceof OpenAI.APIError && error.status === 503);

        assert.equal((await running).usage!.completion_tokens, 1800);
        assert.equal((await queued).usage!.completion_tokens, 5);
    });

    it("frees the slot at once when a streaming client aborts", async () => {
        const {client, engine} = await server({parallel: 1});
        const scheduler = engine.get(model).scheduler;
        // The server streams into the socket's buffers faster than the client reads (several thousand tokens a second),
        // so it may be hundreds of tokens on when the client has read five chunks and leaves; generation must stop
        // then, far short of the 2,000 tokens asked for, and the slot must be free at once.
        const stream = await client.chat.completions.create(
            {model, messages: [{role: "user", content: "Once upon a time"}], max_tokens: 2000, temperature: 0, stream: true});
        let chunks = 0;
        // Leaving the loop early makes the SDK abort the request and close the connection.
        for await (const _ of stream) {
            if (++chunks === 5)
                break;
        }
        assert.equal(chunks, 5);
        await waitFor(() => scheduler.busySlots === 0, 1000);
        const generatedTokens = scheduler.slots[0]!.sequence.contextTokens.length;
        assert.ok(generatedTokens < 1500, `generation stopped early (${generatedTokens} tokens in the slot)`);

        const next = await client.chat.completions.create({model, messages: [{role: "user", content: "Hello"}], max_tokens: 5, temperature: 0});
        assert.equal(next.usage!.completion_tokens, 5);
    });

    it("frees the slot of a waiting request whose client gives up", async () => {
        const {client, engine} = await server({parallel: 1, maxQueue: 4});
        const scheduler = engine.get(model).scheduler;
        const running = client.completions.create({model, prompt: "Once upon a time", max_tokens: 600, temperature: 0});
        await waitFor(() => scheduler.busySlots === 1);
        const controller = new AbortController();
        const waiting = client.completions.create({model, prompt: "The end", max_tokens: 5}, {signal: controller.signal});
        await waitFor(() => scheduler.queuedRequests === 1);
        controller.abort();
        await assert.rejects(waiting);
        await waitFor(() => scheduler.queuedRequests === 0, 1000);
        await running;
    });

    it("routes a request to the slot holding its prefix", async () => {
        const {client} = await server({parallel: 2});
        const story = "Once upon a time there was a tiny dragon who loved to read books in the old library. ".repeat(6);
        const first = await client.completions.create({model, prompt: story, max_tokens: 4, temperature: 0});
        // Another prompt fills the other slot, so prefix routing, not luck, must pick the right one.
        await client.completions.create({model, prompt: "The dog ran", max_tokens: 4, temperature: 0});
        const again = await client.completions.create({model, prompt: story + "The end.", max_tokens: 4, temperature: 0});
        const cached = again.usage!.prompt_tokens_details?.cached_tokens ?? 0;
        assert.equal(first.usage!.prompt_tokens_details?.cached_tokens ?? 0, 0);
        // The story's last token or two may merge with the text after it, so they differ.
        assert.ok(cached >= first.usage!.prompt_tokens - 3, `${cached} of ${first.usage!.prompt_tokens} prompt tokens reused`);
    });

    it("evaluates a prompt longer than a batch in chunks while another slot decodes, changing neither reply", async () => {
        // Without the RAM prompt cache, which would restore the long prompt's evicted state instead of evaluating it.
        const {client} = await server({parallel: 2, ctxSize: 2048, cacheRamBytes: 0});
        const long = "Once upon a time there was a little girl named Lily who loved to play in the park with her red ball. ".repeat(40);
        const short = {model, prompt: "Once upon a time", max_tokens: 200, temperature: 0};
        const longAlone = await client.completions.create({model, prompt: long, max_tokens: 20, temperature: 0});
        assert.ok(longAlone.usage!.prompt_tokens > 1024, `${longAlone.usage!.prompt_tokens} prompt tokens: more than two batches of 512`);
        const shortAlone = (await client.completions.create(short)).choices[0]!.text;
        // Takes the least recently used slot, the long prompt's, so its cache is gone.
        await client.completions.create({model, prompt: "The dog ran", max_tokens: 4, temperature: 0});

        // The short reply streams on its own slot while the whole long prompt is evaluated on the other.
        const stream = await client.completions.create({...short, stream: true});
        let shortText = "";
        let longReply: Promise<OpenAI.Completions.Completion> | undefined;
        for await (const chunk of stream) {
            shortText += chunk.choices[0]?.text ?? "";
            longReply ??= client.completions.create({model, prompt: long, max_tokens: 20, temperature: 0});
        }
        const longTogether = await longReply!;
        assert.ok((longTogether.usage!.prompt_tokens_details?.cached_tokens ?? 0) < 8, "the long prompt was evaluated again");
        assert.equal(shortText, shortAlone);
        assert.equal(longTogether.choices[0]!.text, longAlone.choices[0]!.text);
    });
});
