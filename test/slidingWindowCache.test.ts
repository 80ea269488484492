import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import type OpenAI from "openai";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

// A Gemma model's sliding-window layers (window 512 here) keep only the last window and a batch of positions in
// their cache: a prefix whose window has been dropped cannot be reused, or its next tokens would attend to nothing.
const name = "gemma4-vision-script";

type Reply = {text: string, promptTokens: number, cachedTokens: number};

async function ask(client: OpenAI, repeats: number): Promise<Reply> {
    const completion = await client.chat.completions.create({
        model: name, temperature: 0, max_tokens: 8,
        messages: [{role: "user", content: Array(repeats).fill("red green blue").join(" ")}]
    });
    return {
        text: completion.choices[0]!.message.content ?? "",
        promptTokens: completion.usage!.prompt_tokens,
        cachedTokens: completion.usage!.prompt_tokens_details?.cached_tokens ?? 0
    };
}

describe("prefix reuse with a sliding-window cache", () => {
    const servers: [string, TestServer][] = [];

    before(async () => {
        const model = {path: await testModel(`vision/${name}.gguf`), names: [name]};
        servers.push(["native", await startTestServer({models: [model], parallel: 1, ctxSize: 4096})]);
        servers.push(["javascript", await startTestServer({models: [model], parallel: 1, ctxSize: 4096, decodeLoop: "javascript"})]);
    });
    after(async () => {
        for (const [, server] of servers)
            await server.close();
    });

    it("reuses a prefix whose window is still cached, and evaluates again one whose window was dropped", async () => {
        for (const [loop, server] of servers) {
            const cold = await ask(server.client, 300);
            assert.ok(cold.promptTokens > 900, `${loop}: ${cold.promptTokens} prompt tokens`);
            const longer = await ask(server.client, 900);
            assert.ok(longer.cachedTokens > cold.promptTokens - 16, `${loop}: the longer prompt reuses the shorter one (${longer.cachedTokens} cached)`);
            // After 2,700 positions (the window cache holds at most 512 + a batch of them) the first 900's window is gone.
            const shorter = await ask(server.client, 300);
            assert.equal(shorter.cachedTokens, 0, `${loop}: a prefix without its window is evaluated again`);
            assert.equal(shorter.text, cold.text, loop);
            const again = await ask(server.client, 300);
            assert.ok(again.cachedTokens > cold.promptTokens - 16, `${loop}: the same prompt again reuses its cache (${again.cachedTokens} cached)`);
            assert.equal(again.text, cold.text, loop);
        }
    });
});
