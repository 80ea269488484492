import assert from "node:assert/strict";
import {after, describe, it} from "node:test";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/** synthetic-llama-23M was trained on 4,096 tokens: twice the context Hearth gave every model before `--ctx-size auto`. */
const SYNTHETIC = "synthetic/synthetic-llama-23M-Q8_0.gguf";

type Json = Record<string, unknown>;

async function call(method: "GET" | "POST", url: string, body?: unknown): Promise<{status: number, json: Json}> {
    const response = await fetch(url, {method, headers: body != null ? {"content-type": "application/json"} : {}, body: body != null ? JSON.stringify(body) : undefined});
    return {status: response.status, json: await response.json() as Json};
}

/** A prompt of `count` token ids (BOS, then one ordinary token repeated), so its length is exact whatever the tokenizer. */
const tokens = (count: number) => [1, ...new Array<number>(count - 1).fill(1000)];

describe("--ctx-size auto (the default)", () => {
    it("gives each slot of a fresh `hearth serve --model` the model's trained context, says why, and takes a prompt past 2,048 tokens", async () => {
        const model = await testModel(SYNTHETIC);
        const hearth = spawnHearth(["serve", "--model", model, "--port", "0", "--threads", "1", "--parallel", "2", "--gpu", "cpu"], {HEARTH_LOG_LEVEL: "info"});
        try {
            const [, url] = await hearth.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
            await hearth.waitForOutput(/Ready/);
            // The load log line gives the size and the reason.
            const [loadLine] = await hearth.waitForOutput(/loaded synthetic-llama-23M-Q8_0[^\n]*/);
            assert.match(loadLine, /4096 tokens x 2 slots: the model's trained context/);

            const ps = (await call("GET", `${url}/api/ps`)).json as {models: Json[]};
            assert.equal(ps.models.length, 1);
            assert.equal(ps.models[0]!.context_length, 4096);
            assert.equal(ps.models[0]!.context_reason, "the model's trained context");

            const estimate = await call("GET", `${url}/api/estimate?model=synthetic-llama-23M-Q8_0`);
            assert.equal(estimate.status, 200);
            assert.equal(estimate.json.context_size, 4096);
            assert.equal(estimate.json.context_reason, "the model's trained context");
            assert.equal(estimate.json.kv_cache_type, "f16");
            assert.equal(estimate.json.parallel, 2);

            const long = await call("POST", `${url}/v1/completions`, {model: "synthetic-llama-23M-Q8_0", prompt: tokens(3000), max_tokens: 2, temperature: 0});
            assert.equal(long.status, 200, JSON.stringify(long.json));
            assert.equal((long.json.usage as Json).prompt_tokens, 3000);

            // A prompt longer than the slot's context still gets the clear 400.
            const tooLong = await call("POST", `${url}/v1/completions`, {model: "synthetic-llama-23M-Q8_0", prompt: tokens(4096), max_tokens: 2});
            assert.equal(tooLong.status, 400);
            const error = tooLong.json.error as Json;
            assert.equal(error.code, "context_length_exceeded");
            assert.equal(error.message, "This model's maximum context length is 4096 tokens. However, your prompt resulted in 4096 tokens. Please reduce the length of the prompt.");
        } finally {
            hearth.child.kill("SIGTERM");
            await hearth.exited;
        }
    });

    describe("on a running server", () => {
        let server: TestServer | undefined;
        after(async () => await server?.close());

        it("estimates with ctx_size auto or a number, and refuses one out of range with a 400", async () => {
            server = await startTestServer({modelFiles: [SYNTHETIC], ctxSize: 2048, parallel: 1});
            const auto = await call("GET", `${server.url}/api/estimate?model=synthetic-llama-23M-Q8_0&ctx_size=auto&parallel=3`);
            assert.equal(auto.status, 200);
            assert.equal(auto.json.context_size, 4096);
            assert.equal(auto.json.parallel, 3);
            assert.equal(auto.json.context_reason, "the model's trained context");
            const asked = await call("GET", `${server.url}/api/estimate?model=synthetic-llama-23M-Q8_0&ctx_size=1024`);
            assert.equal(asked.json.context_size, 1024);
            assert.equal(asked.json.context_reason, "the size asked for");
            const bad = await call("GET", `${server.url}/api/estimate?model=synthetic-llama-23M-Q8_0&ctx_size=32`);
            assert.equal(bad.status, 400);
            // Ollama's error shape, as every /api route answers.
            assert.match(String(bad.json.error), /ctx_size must be auto or a whole number from 64/);
            const ps = (await call("GET", `${server.url}/api/ps`)).json as {models: Json[]};
            assert.equal(ps.models[0]!.context_length, 2048);
            assert.equal(ps.models[0]!.context_reason, "the size asked for");
        });

        it("loads a library model with ctx_size auto at its trained context (8,192 tokens for the scripted Qwen3)", async () => {
            const name = (await server!.library.import(await testModel("scripted/qwen3-script.gguf"))).name;
            const loaded = await call("POST", `${server!.url}/api/load`, {model: name, ctx_size: "auto", parallel: 1});
            assert.equal(loaded.status, 200, JSON.stringify(loaded.json));
            assert.equal(loaded.json.context_size, 8192);
            assert.equal(loaded.json.context_reason, "the model's trained context");
            const ps = (await call("GET", `${server!.url}/api/ps`)).json as {models: Json[]};
            const entry = ps.models.find((model) => model.name === name)!;
            assert.equal(entry.context_length, 8192);
            assert.equal(entry.context_reason, "the model's trained context");
            const long = await call("POST", `${server!.url}/v1/completions`, {model: name, prompt: tokens(5000), max_tokens: 1, temperature: 0});
            assert.equal(long.status, 200, JSON.stringify(long.json));
            assert.equal((long.json.usage as Json).prompt_tokens, 5000);
            assert.equal((await call("POST", `${server!.url}/api/unload`, {model: name})).status, 200);
            const bad = await call("POST", `${server!.url}/api/load`, {model: name, ctx_size: "lots"});
            assert.equal(bad.status, 400);
            assert.match(String(bad.json.error), /ctx_size/);
        });
    });
});

describe("--kv-cache-type", () => {
    let server: TestServer | undefined;
    after(async () => await server?.close());

    it("loads a q8_0 cache, plans it, and generates; a model whose heads cannot hold it is refused with a 422 that says why", async () => {
        server = await startTestServer({modelFiles: [SYNTHETIC, "stories260K.gguf"], ctxSize: "auto", parallel: 2, kvCacheType: "q8_0"});
        const estimate = await call("GET", `${server.url}/api/estimate?model=synthetic-llama-23M-Q8_0`);
        assert.equal(estimate.json.kv_cache_type, "q8_0");
        assert.equal(estimate.json.context_size, 4096);
        const reply = await call("POST", `${server.url}/v1/completions`, {model: "synthetic-llama-23M-Q8_0", prompt: tokens(2500), max_tokens: 4, temperature: 0});
        assert.equal(reply.status, 200, JSON.stringify(reply.json));
        assert.equal((reply.json.usage as Json).completion_tokens, 4);

        // stories260K's attention heads are 8 wide; llama.cpp's q8_0 blocks are 32.
        const refused = await call("POST", `${server.url}/v1/completions`, {model: "stories260K", prompt: "Once upon a time", max_tokens: 4});
        assert.equal(refused.status, 422);
        const error = refused.json.error as Json;
        assert.equal(error.code, "unsupported_kv_cache_type");
        assert.match(String(error.message), /"stories260K" cannot load with the q8_0 KV cache: its attention heads are 8 wide, not a multiple of the cache's 32-element blocks\. Start the server with --kv-cache-type f16/);
    });
});
