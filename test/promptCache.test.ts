import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {fileServers, waitFor} from "./helpers/fileServers.js";
import type {TestServer} from "./helpers/testServer.js";
import {metricValue} from "./helpers/metrics.js";
import type {Token} from "node-llama-cpp";
import {PromptCache} from "../native/decode/PromptCache.js";

const model = "stories260K";
const server = fileServers();

/** About 330 tokens of stories260K's vocabulary. */
const story = "Once upon a time there was a tiny dragon who loved to read books in the old library by the sea. ".repeat(12);
const otherStory = "The little red car drove up the hill to see the big yellow sun rise over the green trees. ".repeat(4);

const loops = ["auto", "javascript"] as const;

for (const decodeLoop of loops) {
    describe(`prompt prefixes that survive (${decodeLoop} decode loop)`, () => {
        it("copies a prefix from a busy slot instead of evaluating it, with the same greedy reply as a cold one", async () => {
            const {client, engine} = await server({parallel: 2, decodeLoop});
            const loaded = engine.get(model);
            assert.equal(loaded.decodeLoop.kind, decodeLoop === "auto" ? "native" : "javascript");
            const request = {model, prompt: `${story}Then the dragon`, max_tokens: 24, temperature: 0};
            const cold = await client.completions.create(request);
            assert.equal(cold.usage!.prompt_tokens_details?.cached_tokens ?? 0, 0);
            assert.ok(cold.usage!.prompt_tokens > 300, `${cold.usage!.prompt_tokens} prompt tokens`);

            // Another conversation with the same long start takes the slot that holds it, and keeps it busy.
            const controller = new AbortController();
            const busy = client.completions.create({model, prompt: `${story}One day a girl`, max_tokens: 1500, temperature: 0}, {signal: controller.signal});
            await waitFor(() => loaded.scheduler.busySlots === 1);
            const copiesBefore = engine.promptCache.stats.copies;
            const warm = await client.completions.create(request);
            assert.equal(loaded.scheduler.busySlots, 1, "the other conversation was still generating");
            controller.abort();
            await busy.catch(() => undefined);

            assert.equal(engine.promptCache.stats.copies, copiesBefore + 1);
            const cached = warm.usage!.prompt_tokens_details?.cached_tokens ?? 0;
            // The story's last token or two may merge with the text after it, so they differ.
            assert.ok(cached >= cold.usage!.prompt_tokens - 8, `${cached} of ${cold.usage!.prompt_tokens} prompt tokens copied`);
            assert.equal(warm.choices[0]!.text, cold.choices[0]!.text);
        });

        it("keeps a conversation's state in RAM while another one holds the only slot, and restores it when it comes back", async () => {
            const turns = async (started: TestServer) => {
                const first = await started.client.completions.create({model, prompt: story, max_tokens: 24, temperature: 0});
                const other = await started.client.completions.create({model, prompt: otherStory, max_tokens: 24, temperature: 0});
                const next = await started.client.completions.create({model, prompt: `${story}${first.choices[0]!.text} The end.`, max_tokens: 24, temperature: 0});
                return {first, other, next};
            };
            const cached = await server({parallel: 1, decodeLoop, cacheRamBytes: 64 * 1024 * 1024});
            const uncached = await server({parallel: 1, decodeLoop, cacheRamBytes: 0});
            const withCache = await turns(cached);
            const without = await turns(uncached);

            const reused = withCache.next.usage!.prompt_tokens_details?.cached_tokens ?? 0;
            assert.ok(reused >= withCache.first.usage!.prompt_tokens - 2, `${reused} tokens reused of the first turn's ${withCache.first.usage!.prompt_tokens}`);
            assert.ok((without.next.usage!.prompt_tokens_details?.cached_tokens ?? 0) < 8, "without the RAM cache the first turn is evaluated again");
            assert.equal(withCache.next.choices[0]!.text, without.next.choices[0]!.text);
            assert.equal(withCache.other.choices[0]!.text, without.other.choices[0]!.text);

            // The first conversation went out of RAM into the slot; the other one's state took its place.
            const stats = cached.engine.promptCache.stats;
            assert.deepEqual({saves: stats.saves, hits: stats.hits, entries: stats.entries}, {saves: 2, hits: 1, entries: 1});
            const metrics = await (await fetch(`${cached.url}/metrics`)).text();
            assert.equal(metricValue(metrics, "hearth_prompt_cache_hits_total"), 1);
            assert.equal(metricValue(metrics, "hearth_prompt_cache_entries"), 1);
            assert.equal(metricValue(metrics, "hearth_prompt_cache_bytes"), stats.bytes);
            assert.ok(stats.bytes > 0 && stats.bytes <= stats.limitBytes);
            assert.equal(uncached.engine.promptCache.stats.entries, 0);
        });
    });
}

describe("the RAM prompt cache", () => {
    it("keeps an agent's prefix on every turn while two chats share its only slot", async () => {
        const {client, engine} = await server({parallel: 1});
        const chats = ["The little red car drove up the hill. ", "A big brown bear sat under a tree. "].map((text) => text.repeat(5));
        let agent = story;
        let agentPromptTokens = 0;
        for (let turn = 0; turn < 3; turn++) {
            const reply = await client.completions.create({model, prompt: agent, max_tokens: 12, temperature: 0});
            const cached = reply.usage!.prompt_tokens_details?.cached_tokens ?? 0;
            if (turn > 0)
                assert.ok(cached >= agentPromptTokens - 2, `turn ${turn}: ${cached} of the last turn's ${agentPromptTokens} prompt tokens reused`);
            agentPromptTokens = reply.usage!.prompt_tokens;
            agent += `${reply.choices[0]!.text} Then the dragon said hello. `;
            for (const [index, chat] of chats.entries()) {
                const answer = await client.completions.create({model, prompt: `${chat}Turn ${turn}.`, max_tokens: 4, temperature: 0});
                if (turn > 0)
                    assert.ok((answer.usage!.prompt_tokens_details?.cached_tokens ?? 0) >= 30, `chat ${index} on turn ${turn} found its prefix`);
            }
        }
        // The agent and the two chats each came back from RAM on every turn after the first.
        assert.equal(engine.promptCache.stats.hits, 3 * 2);
    });

    it("saves nothing larger than its limit", async () => {
        const {client, engine} = await server({parallel: 1, cacheRamBytes: 1024});
        await client.completions.create({model, prompt: story, max_tokens: 4, temperature: 0});
        await client.completions.create({model, prompt: otherStory, max_tokens: 4, temperature: 0});
        const back = await client.completions.create({model, prompt: `${story}The end.`, max_tokens: 4, temperature: 0});
        assert.ok((back.usage!.prompt_tokens_details?.cached_tokens ?? 0) < 8);
        assert.deepEqual({entries: engine.promptCache.stats.entries, bytes: engine.promptCache.stats.bytes}, {entries: 0, bytes: 0});
    });

    it("lets the least recently used state go first, and frees what it lets go", () => {
        const freed: string[] = [];
        const state = (name: string, bytes: number) => ({bytes, handle: {}, free: () => freed.push(name)});
        const tokens = (...ids: number[]) => ids as Token[];
        const cache = new PromptCache(100);
        const owner = {};
        cache.add(owner, tokens(1, 2, 3), state("a", 40));
        cache.add(owner, tokens(4, 5, 6), state("b", 40));
        // A longer state of the same tokens replaces the one of its prefix.
        cache.add(owner, tokens(4, 5, 6, 7), state("b2", 40));
        assert.deepEqual(freed, ["b"]);
        assert.equal(cache.best(owner, tokens(4, 5, 6, 7, 8))?.length, 4);
        cache.add(owner, tokens(7, 8, 9), state("c", 40));
        assert.deepEqual(freed, ["b", "a"]);
        assert.equal(cache.best(owner, tokens(1, 2, 3)), undefined);
        assert.equal(cache.best({}, tokens(7, 8, 9)), undefined, "another model's states are not its own");
        cache.drop(owner);
        assert.deepEqual(freed, ["b", "a", "b2", "c"]);
        assert.deepEqual(cache.stats, {bytes: 0, limitBytes: 100, entries: 0, hits: 0, saves: 4, copies: 0});
    });
});
