import assert from "node:assert/strict";
import {mkdtemp} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {getLlamaGpuTypes} from "node-llama-cpp";
import OpenAI from "openai";
import {readModelShape} from "../models/index.js";
import {estimateMemory} from "../native/planOffload.js";
import {startFakeHub} from "./helpers/fakeHub.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

type Fit = {fits: boolean, placement: string, layers_total: number, gpu_layers: number, vram_bytes: number, ram_bytes: number, context_size: number, parallel: number, message?: string};

async function call(method: "GET" | "POST", url: string, body?: unknown): Promise<{status: number, json: Record<string, unknown>}> {
    const response = await fetch(url, {method, ...body !== undefined ? {headers: {"content-type": "application/json"}, body: JSON.stringify(body)} : {}});
    return {status: response.status, json: await response.json() as Record<string, unknown>};
}

function assertSystemReport(report: Record<string, unknown>): void {
    const {cpu, memory, gpus, backend} = report as {
        cpu: {model: string, cores: number, threads: number, simd: string[]},
        memory: {total_bytes: number, free_bytes: number},
        gpus: unknown[],
        backend: {selected: string, available: string[], reason: string | null}
    };
    assert.ok(cpu.model.length > 0);
    assert.ok(cpu.cores >= 1 && cpu.threads >= cpu.cores, JSON.stringify(cpu));
    assert.ok(cpu.simd.length > 0 && cpu.simd.every((name) => /^[a-z0-9_]+$/.test(name)), JSON.stringify(cpu.simd));
    if (process.arch === "x64")
        assert.ok(cpu.simd.includes("avx2") || cpu.simd.includes("avx"), "an x64 CPU reports its AVX level");
    assert.ok(memory.total_bytes > 1e9 && memory.free_bytes > 0 && memory.free_bytes <= memory.total_bytes, JSON.stringify(memory));
    assert.ok(Array.isArray(gpus));
    assert.ok(backend.available.includes("cpu") && backend.available.includes(backend.selected), JSON.stringify(backend));
    if (backend.selected === "cpu")
        assert.match(backend.reason ?? "", /CUDA|Metal|Vulkan/, "says why no GPU backend was used");
}

describe("hardware: the system report and backend choice", () => {
    it("GET /api/system and hearth system --json report the CPU, memory, GPUs and the backend with its reason", async () => {
        const server = await startTestServer({models: [], gpu: "auto"});
        try {
            const {status, json} = await call("GET", `${server.url}/api/system`);
            assert.equal(status, 200);
            assertSystemReport(json);
        } finally {
            await server.close();
        }
        const cli = await spawnHearth(["system", "--json"]).exited;
        assert.equal(cli.code, 0, cli.stderr);
        assertSystemReport(JSON.parse(cli.stdout) as Record<string, unknown>);
        const text = await spawnHearth(["system"]).exited;
        assert.match(text.stdout, /^CPU {6}.+\nMemory {3}.+ total, .+ free\n/);
    });

    it("a forced backend this machine cannot run fails at once, naming it and why", async () => {
        const usable = await getLlamaGpuTypes("supported");
        for (const [backend, name] of [["cuda", "CUDA"], ["vulkan", "Vulkan"]] as const) {
            if (usable.includes(backend)) {
                // Its driver is here: it is chosen when forced if the driver has a device, else it fails saying so
                // (Mesa's Vulkan driver with no GPU hides its software device: see gpuOffload.test.ts).
                const report = await spawnHearth(["system", "--gpu", backend, "--json"]).exited;
                if (report.code === 0)
                    assert.equal((JSON.parse(report.stdout) as {backend: {selected: string}}).backend.selected, backend);
                else
                    assert.match(report.stderr, new RegExp(`The ${name} backend is not available on this machine: its driver found no usable device`));
                continue;
            }
            const started = performance.now();
            const serve = await spawnHearth(["serve", "--gpu", backend, "--port", "0"]).exited;
            assert.notEqual(serve.code, 0);
            assert.match(serve.stderr, new RegExp(`The ${name} backend is not available on this machine: no .+ was found\\. Use --gpu auto`));
            assert.ok(performance.now() - started < 15_000, "fails fast");
        }
    });
});

describe("hardware: estimates, explicit load and unload, refusal", () => {
    let server: TestServer;
    let name: string;
    let modelPath: string;

    before(async () => {
        server = await startTestServer({models: [], home: await mkdtemp(path.join(os.tmpdir(), "hearth-hardware-"))});
        modelPath = await testModel("synthetic/synthetic-llama-23M-Q4_K_M.gguf");
        name = (await server.library.import(modelPath)).name;
    });
    after(() => server.close());

    it("GET /api/estimate says how a library model would load, and hearth estimate agrees", async () => {
        const {status, json} = await call("GET", `${server.url}/api/estimate?model=${encodeURIComponent(name)}&ctx_size=4096&parallel=2`);
        assert.equal(status, 200, JSON.stringify(json));
        const fit = json as unknown as Fit;
        assert.deepEqual([fit.fits, fit.placement, fit.layers_total, fit.gpu_layers, fit.vram_bytes, fit.context_size, fit.parallel], [true, "cpu", 7, 0, 0, 4096, 2]);
        const expected = estimateMemory(await readModelShape(modelPath), {ctxSize: 4096, parallel: 2}, 0);
        assert.equal(fit.ram_bytes, expected.ramBytes);

        const cli = await spawnHearth(["estimate", name, "--ctx-size", "4096", "--parallel", "2", "--gpu", "cpu", "--json", "--home", server.library.home]).exited;
        assert.equal(cli.code, 0, cli.stderr);
        assert.equal((JSON.parse(cli.stdout) as Fit).ram_bytes, expected.ramBytes);
        const file = await spawnHearth(["estimate", modelPath, "--ctx-size", "1048576", "--parallel", "256", "--gpu", "cpu"]).exited;
        assert.match(file.stdout, /does not fit\n[^]*It needs \d+(\.\d)? GB of memory/);

        const unknown = await call("GET", `${server.url}/api/estimate?model=nope`);
        assert.equal(unknown.status, 404);
        const bad = await call("GET", `${server.url}/api/estimate?model=${encodeURIComponent(name)}&ctx_size=lots`);
        assert.equal(bad.status, 400);
        assert.match(String(bad.json.error), /ctx_size/);
    });

    it("POST /api/load loads with the settings asked for, /api/ps shows them, and /api/unload unloads", async () => {
        const loaded = await call("POST", `${server.url}/api/load`, {model: name, ctx_size: 4096, parallel: 2});
        assert.equal(loaded.status, 200, JSON.stringify(loaded.json));
        assert.equal(loaded.json.loaded, true);
        assert.equal(loaded.json.context_size, 4096);
        assert.equal(loaded.json.parallel, 2);

        const ps = (await call("GET", `${server.url}/api/ps`)).json as {models: {name: string, size: number, size_vram: number, context_length: number, expires_at: string}[]};
        assert.equal(ps.models.length, 1);
        assert.equal(ps.models[0]!.context_length, 4096);
        assert.equal(ps.models[0]!.size, loaded.json.ram_bytes);
        assert.equal(ps.models[0]!.size_vram, 0);
        assert.match(ps.models[0]!.expires_at, /^2318/, "an explicit load stays until unloaded");

        const reply = await server.client.chat.completions.create({model: name, messages: [{role: "user", content: "Hi"}], max_tokens: 4});
        assert.equal(reply.choices[0]!.message.role, "assistant");

        const unloaded = await call("POST", `${server.url}/api/unload`, {model: name});
        assert.deepEqual(unloaded.json, {model: name, unloaded: true});
        assert.deepEqual(((await call("GET", `${server.url}/api/ps`)).json as {models: unknown[]}).models, []);
        assert.equal((await call("POST", `${server.url}/api/unload`, {model: "nope"})).status, 404);
        assert.equal((await call("POST", `${server.url}/api/load`, {model: name, parallel: 0})).status, 400);
    });

    it("refuses a load that cannot fit with 422 and advice, and the server keeps serving", async () => {
        const refused = await call("POST", `${server.url}/api/load`, {model: name, ctx_size: 1 << 20, parallel: 256});
        assert.equal(refused.status, 422, JSON.stringify(refused.json));
        assert.match(String(refused.json.error), /does not fit in memory\. It needs \d+(\.\d)? GB of memory \(.+\); .+ is free\. Try a context of \d+ tokens/);
        assert.deepEqual(((await call("GET", `${server.url}/api/ps`)).json as {models: unknown[]}).models, []);
        assert.deepEqual((await call("GET", `${server.url}/health`)).json, {status: "ok"});
        const reply = await server.client.chat.completions.create({model: name, messages: [{role: "user", content: "Hi"}], max_tokens: 4});
        assert.ok(reply.usage!.completion_tokens > 0);
    });

    it("a model served with settings that cannot fit is refused per request with 422, through the SDK", async () => {
        const huge = await startTestServer({modelFiles: ["synthetic/synthetic-llama-23M-Q4_K_M.gguf"], ctxSize: 1 << 20, parallel: 256});
        try {
            assert.deepEqual((await call("GET", `${huge.url}/health`)).json, {status: "ok"});
            await assert.rejects(
                huge.client.chat.completions.create({model: "synthetic-llama-23M-Q4_K_M", messages: [{role: "user", content: "Hi"}]}),
                (error: unknown) => error instanceof OpenAI.UnprocessableEntityError && /does not fit in memory/.test(error.message)
            );
        } finally {
            await huge.close();
        }
    });
});

describe("hardware: fit for each quantization on the Hub, before downloading", () => {
    const REPO = "someone/synthetic-23M-GGUF";
    let hub: FakeHub;
    let server: TestServer;
    const files = ["F16", "Q8_0", "Q4_K_M"].map((quant) => `synthetic/synthetic-llama-23M-${quant}.gguf`);

    before(async () => {
        hub = await startFakeHub([
            {id: REPO, files: await Promise.all(files.map(async (file) => ({path: path.basename(file), source: await testModel(file)})))},
            // Another sha256, so the header kept from the first repo (by its sha256) does not answer for it.
            {id: "someone/unreachable-GGUF", files: [{path: "model-Q4_K_M.gguf", source: await testModel(files[2]!), declaredSha256: "1".repeat(64)}]}
        ]);
        server = await startTestServer({models: [], hub: {endpoint: hub.url, token: undefined}, ctxSize: 4096, parallel: 1});
    });
    after(async () => {
        await server.close();
        await hub.close();
    });

    it("reads one header with a Range request and gives every quantization its fit, close to the exact estimate", async () => {
        const {status, json} = await call("GET", `${server.url}/api/hub/files?repo=${REPO}`);
        assert.equal(status, 200, JSON.stringify(json));
        const quantizations = json.quantizations as {quantization: string, fit: Fit | null}[];
        assert.equal(quantizations.length, 3);
        for (const entry of quantizations) {
            const fit = entry.fit!;
            assert.deepEqual([fit.fits, fit.placement, fit.gpu_layers, fit.layers_total, fit.context_size], [true, "cpu", 0, 7, 4096], entry.quantization);
            const exact = estimateMemory(await readModelShape(await testModel(`synthetic/synthetic-llama-23M-${entry.quantization}.gguf`)), {ctxSize: 4096, parallel: 1}, 0);
            assert.ok(Math.abs(fit.ram_bytes / exact.ramBytes - 1) < 0.02, `${entry.quantization}: ${fit.ram_bytes} vs ${exact.ramBytes}`);
        }

        const fileRequests = hub.requests.filter((request) => request.path.includes("/resolve/") || request.path.startsWith("/cdn/"));
        assert.ok(fileRequests.length > 0);
        assert.ok(fileRequests.every((request) => request.range === "bytes=0-2097151"), JSON.stringify(fileRequests));
        assert.ok(fileRequests.every((request) => request.path.includes("Q4_K_M")), "only the default quantization's header is read");

        const before = hub.requests.length;
        const again = await call("GET", `${server.url}/api/hub/files?repo=${REPO}&ctx_size=1048576&parallel=64`);
        const newRequests = hub.requests.slice(before);
        assert.ok(newRequests.every((request) => !request.path.includes("/resolve/") && !request.path.startsWith("/cdn/")), "the header is kept, not read again");
        for (const entry of again.json.quantizations as {fit: Fit}[]) {
            assert.equal(entry.fit.fits, false);
            assert.equal(entry.fit.placement, "none");
            assert.match(entry.fit.message!, /It needs .+ GB of memory/);
        }
        assert.equal((await call("GET", `${server.url}/api/hub/files?repo=${REPO}&ctx_size=big`)).status, 400);
    });

    it("still lists the quantizations when the header cannot be read, saying why the fit is unknown", async () => {
        hub.faults.fail = {times: 20, status: 500};
        try {
            const {status, json} = await call("GET", `${server.url}/api/hub/files?repo=someone/unreachable-GGUF`);
            assert.equal(status, 200, JSON.stringify(json));
            const [entry] = json.quantizations as {fit: Fit | null, fit_error?: string}[];
            assert.equal(entry!.fit, null);
            assert.match(entry!.fit_error!, /Could not read the model's header from the Hub: .*HTTP 500/);
        } finally {
            hub.faults.fail = undefined;
        }
    });
});
