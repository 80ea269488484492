import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import {getLlama} from "node-llama-cpp";
import type {Llama, LlamaModel} from "node-llama-cpp";
import {attentionHeadSize, flashAttentionFor} from "../native/flashAttention.js";
import {useTestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/** `--flash-attn`: Hearth's choice per model, and both forced settings giving the same greedy text. */

describe("flash attention", () => {
    let llama: Llama;
    const models: Record<string, LlamaModel> = {};

    before(async () => {
        llama = await getLlama({gpu: false, build: "never"});
        for (const file of ["stories260K.gguf", "synthetic/synthetic-llama-23M-Q8_0.gguf"])
            models[file] = await llama.loadModel({modelPath: await testModel(file)});
    });
    after(async () => {
        for (const model of Object.values(models))
            await model.dispose();
        await llama.dispose();
    });

    it("is off on the CPU for a model with tiny attention heads, and llama.cpp's choice otherwise", () => {
        const tiny = models["stories260K.gguf"]!;
        const wider = models["synthetic/synthetic-llama-23M-Q8_0.gguf"]!;
        assert.equal(attentionHeadSize(tiny), 8, "64 dimensions over 8 heads");
        assert.equal(attentionHeadSize(wider), 64, "384 dimensions over 6 heads");
        assert.equal(flashAttentionFor("auto", tiny), false);
        assert.equal(flashAttentionFor("auto", wider), "auto");
        for (const model of [tiny, wider]) {
            assert.equal(flashAttentionFor("on", model), true, "a forced setting is kept");
            assert.equal(flashAttentionFor("off", model), false);
        }
    });

    describe("forced on", () => {
        const server = useTestServer({flashAttention: "on"});

        it("is reported and gives the same greedy story", async () => {
            const info = await (await fetch(`${server.url}/api/server`)).json() as {defaults: {flash_attn: string}};
            assert.equal(info.defaults.flash_attn, "on");
            const completion = await server.client.completions.create({model: "stories260K", prompt: "Once upon a time", max_tokens: 20, temperature: 0});
            assert.match(completion.choices[0]!.text, /^, there was a little girl named Lily/);
        });
    });
});
