import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/** `/api` answers errors in Ollama's shape, `{"error": "message"}`. */
type Json = Record<string, unknown> & {error?: string};
type Details = {family: string, families: string[], parameter_size: string, quantization_level: string};
type Running = {name: string, context_length: number, expires_at: string, details: Details};

async function call(method: "GET" | "POST", url: string, body?: unknown): Promise<{status: number, headers: Headers, json: Json}> {
    const response = await fetch(url, {method, ...body !== undefined ? {headers: {"content-type": "application/json"}, body: JSON.stringify(body)} : {}});
    return {status: response.status, headers: response.headers, json: await response.json() as Json};
}

/** The loaded models, by name. */
async function running(server: TestServer): Promise<Map<string, Running>> {
    const {json} = await call("GET", `${server.url}/api/ps`);
    return new Map((json.models as Running[]).map((model) => [model.name, model]));
}

describe("POST /api/load does what it says", () => {
    let server: TestServer;
    const LIBRARY_NAME = "stories-q8";

    before(async () => {
        // stories260K is pinned (--model) with the server's 2,048 tokens x 4 slots; a Q8_0 copy sits in the library.
        server = await startTestServer({modelFiles: ["stories260K.gguf"], ctxSize: 2048, parallel: 4});
        await server.library.import(await testModel("derived/stories260K-Q8_0.gguf"), LIBRARY_NAME);
    });
    after(() => server.close());

    it("reloads an idle pinned model with the settings asked for; it stays pinned and keeps them when a load names none", async () => {
        const loaded = await call("POST", `${server.url}/api/load`, {model: "stories260K", ctx_size: 4096, parallel: 2});
        assert.equal(loaded.status, 200, JSON.stringify(loaded.json));
        assert.deepEqual([loaded.json.model, loaded.json.context_size, loaded.json.parallel], ["stories260K", 4096, 2]);
        const ps = (await running(server)).get("stories260K")!;
        assert.equal(ps.context_length, 4096);
        assert.match(ps.expires_at, /^2318/, "still pinned");
        const completion = await server.client.completions.create({model: "stories260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0});
        assert.match(completion.choices[0]!.text, /Lily/);

        const again = await call("POST", `${server.url}/api/load`, {model: "stories260K"});
        assert.equal(again.status, 200);
        assert.deepEqual([again.json.context_size, again.json.parallel], [4096, 2], "a load without settings leaves them as they are");
        const same = await call("POST", `${server.url}/api/load`, {model: "stories260K", ctx_size: 4096, gpu_layers: 0});
        assert.deepEqual([same.status, same.json.context_size, same.json.parallel], [200, 4096, 2]);
    });

    it("answers 409 naming what differs while a request holds the model, and reloads it once the request is done", async () => {
        const lease = await server.engine.acquire("stories260K");
        try {
            const refused = await call("POST", `${server.url}/api/load`, {model: "stories260K", ctx_size: 8192});
            assert.equal(refused.status, 409, JSON.stringify(refused.json));
            assert.equal(refused.json.error!,
                "\"stories260K\" is loaded with ctx_size 4096, parallel 2 and in use; it can be reloaded with ctx_size 8192 when its requests finish.");
            assert.equal(refused.headers.get("retry-after"), "5");
            assert.equal((await running(server)).get("stories260K")!.context_length, 4096, "nothing changed");
            // The same settings are no change: answered at once, in use or not.
            assert.equal((await call("POST", `${server.url}/api/load`, {model: "stories260K", parallel: 2})).status, 200);
        } finally {
            lease.release();
        }
        const reloaded = await call("POST", `${server.url}/api/load`, {model: "stories260K", ctx_size: 8192});
        assert.equal(reloaded.status, 200, JSON.stringify(reloaded.json));
        assert.deepEqual([reloaded.json.context_size, reloaded.json.parallel], [8192, 2]);
    });

    it("refuses a reload that cannot fit with 422 and keeps the model loaded as it was", async () => {
        const refused = await call("POST", `${server.url}/api/load`, {model: "stories260K", ctx_size: 1 << 20, parallel: 256});
        assert.equal(refused.status, 422, JSON.stringify(refused.json));
        assert.match(refused.json.error!, /does not fit in memory/);
        assert.equal((await running(server)).get("stories260K")!.context_length, 8192);
        assert.deepEqual((await call("GET", `${server.url}/health`)).json, {status: "ok"});
        const completion = await server.client.completions.create({model: "stories260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0});
        assert.match(completion.choices[0]!.text, /Lily/);
    });

    it("a library model in use gets the same 409 (not 503), and a load naming some settings keeps the others", async () => {
        const loaded = await call("POST", `${server.url}/api/load`, {model: LIBRARY_NAME, ctx_size: 4096, parallel: 1});
        assert.equal(loaded.status, 200, JSON.stringify(loaded.json));
        const lease = await server.engine.acquire(LIBRARY_NAME);
        try {
            const refused = await call("POST", `${server.url}/api/load`, {model: LIBRARY_NAME, parallel: 3, gpu_layers: 0});
            assert.equal(refused.status, 409, JSON.stringify(refused.json));
            assert.equal(refused.json.error!,
                `"${LIBRARY_NAME}" is loaded with ctx_size 4096, parallel 1 and in use; it can be reloaded with parallel 3 when its requests finish.`);
        } finally {
            lease.release();
        }
        const reloaded = await call("POST", `${server.url}/api/load`, {model: LIBRARY_NAME, parallel: 3});
        assert.deepEqual([reloaded.status, reloaded.json.context_size, reloaded.json.parallel], [200, 4096, 3]);
        const kept = await call("POST", `${server.url}/api/load`, {model: LIBRARY_NAME, ctx_size: 2048});
        assert.deepEqual([kept.status, kept.json.context_size, kept.json.parallel], [200, 2048, 3], "parallel stays 3, not the server's 4");
        assert.equal((await running(server)).get(LIBRARY_NAME)!.context_length, 2048);
    });

    it("/api/ps and /api/show give family, parameter_size and quantization_level for a pinned model as for a library one", async () => {
        const ps = await running(server);
        const expected = {family: "llama", families: ["llama"], parameter_size: "293K"};
        assert.deepEqual(ps.get("stories260K")!.details, {parent_model: "", format: "gguf", ...expected, quantization_level: "F32"});
        assert.deepEqual(ps.get(LIBRARY_NAME)!.details, {parent_model: "", format: "gguf", ...expected, quantization_level: "Q8_0"});

        const shown = await call("POST", `${server.url}/api/show`, {model: "stories260K"});
        assert.equal(shown.status, 200, JSON.stringify(shown.json));
        assert.deepEqual(shown.json.details, ps.get("stories260K")!.details);
        const info = shown.json.model_info as Record<string, unknown>;
        assert.equal(info["general.architecture"], "llama");
        assert.equal(info["llama.context_length"], 2048);
        assert.equal(shown.json.template, "");
        assert.deepEqual(shown.json.capabilities, ["completion"]);

        // The same file imported into the library is described by the same function, from the registry's copy of its header.
        await server.library.import(await testModel("stories260K.gguf"), "stories-f32");
        assert.deepEqual((await call("POST", `${server.url}/api/show`, {model: "stories-f32"})).json.details, shown.json.details);
        assert.equal((await call("POST", `${server.url}/api/show`, {model: "nothing-here"})).status, 404);
    });

    it("refuses to unload a pinned model, saying it stays while the server runs", async () => {
        const refused = await call("POST", `${server.url}/api/unload`, {model: "stories260K"});
        assert.equal(refused.status, 409, JSON.stringify(refused.json));
        assert.match(refused.json.error!, /served with --model: it stays loaded while the server runs/);
        assert.ok((await running(server)).has("stories260K"));
    });
});
