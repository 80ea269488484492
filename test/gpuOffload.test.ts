import assert from "node:assert/strict";
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {getLlamaGpuTypes} from "node-llama-cpp";
import {readModelShape} from "../models/index.js";
import {estimateMemory, safetyMarginBytes} from "../native/planOffload.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";

/**
 * The GPU backend on a real device: lavapipe, Mesa's software Vulkan device (2 GiB of "VRAM"), which CI
 * installs (mesa-vulkan-drivers). ggml hides software renderers unless they are selected, so the device is
 * reached only through --gpu-devices here, never through ggml's own variable. Where Vulkan is missing these
 * tests fail, saying so: they are how Hearth's offloading is checked at all.
 */

delete process.env.GGML_VK_VISIBLE_DEVICES;
delete process.env.HEARTH_GPU_DEVICES;
delete process.env.HEARTH_GPU;

const GiB = 2 ** 30;
const PROMPT = "Once upon a time";

type Server = {url: string, stdout: () => string, stop: () => Promise<void>};

async function startHearth(args: readonly string[], env: Record<string, string> = {}): Promise<Server> {
    const server = spawnHearth(["serve", "--port", "0", "--threads", "1", ...args], env);
    let stdout = "";
    server.child.stdout.on("data", (data: Buffer) => stdout += data);
    const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
    await server.waitForOutput(/^Ready/m);
    return {
        url: url!,
        stdout: () => stdout,
        stop: async () => {
            server.child.kill("SIGTERM");
            await server.exited;
        }
    };
}

async function call(method: "GET" | "POST", url: string, body?: unknown): Promise<{status: number, json: Record<string, unknown>}> {
    const response = await fetch(url, {method, ...body !== undefined ? {headers: {"content-type": "application/json"}, body: JSON.stringify(body)} : {}});
    return {status: response.status, json: await response.json() as Record<string, unknown>};
}

/** A greedy completion; the synthetic model is slow on lavapipe (a 32,000-token output layer), so it gets fewer tokens. */
async function complete(url: string, model: string): Promise<string> {
    const maxTokens = model.startsWith("synthetic") ? 8 : 24;
    const {status, json} = await call("POST", `${url}/v1/completions`, {model, prompt: PROMPT, max_tokens: maxTokens, temperature: 0});
    assert.equal(status, 200, JSON.stringify(json));
    return (json as {choices: {text: string}[]}).choices[0]!.text;
}

/** What llama.cpp logged (at the server's debug level) from `offset` on: layers offloaded and the device's buffers. */
async function llamaCppReport(server: Server, offset: number): Promise<{offloaded: string, deviceBytes: number, buffers: Record<string, number>}> {
    // llama.cpp's lines reach the log asynchronously; the compute buffer is the last one a load writes.
    for (let waited = 0; waited < 5000 && !/compute buffer size/.test(server.stdout().slice(offset)); waited += 50)
        await new Promise((resolve) => setTimeout(resolve, 50));
    const buffers: Record<string, number> = {};
    let offloaded = "";
    for (const line of server.stdout().slice(offset).split("\n")) {
        const message = line.startsWith("{") ? (JSON.parse(line) as {msg?: string}).msg ?? "" : line;
        const buffer = /(\S+) +(model|KV|compute|output) buffer size = +([\d.]+) MiB/.exec(message);
        if (buffer != null)
            buffers[`${buffer[1]} ${buffer[2]}`] = (buffers[`${buffer[1]} ${buffer[2]}`] ?? 0) + Number(buffer[3]) * 2 ** 20;
        offloaded = /offloaded (\d+\/\d+) layers to GPU/.exec(message)?.[1] ?? offloaded;
    }
    const deviceBytes = ["model", "KV", "compute"].reduce((sum, kind) => sum + (buffers[`Vulkan0 ${kind}`] ?? 0), 0);
    return {offloaded, deviceBytes, buffers};
}

async function importModels(home: string, files: readonly string[]): Promise<string[]> {
    const names: string[] = [];
    for (const file of files) {
        const imported = await spawnHearth(["import", await testModel(file)], {HEARTH_HOME: home}).exited;
        assert.equal(imported.code, 0, imported.stderr);
        names.push(/ as (\S+)/.exec(imported.stdout)![1]!);
    }
    return names;
}

describe("GPU offload on a Vulkan device (lavapipe)", () => {
    const files = ["stories260K.gguf", "synthetic/synthetic-llama-23M-F16.gguf"];
    let home: string;
    let names: string[];
    let vulkan: Server;
    /** Greedy completions of the same prompt on the CPU backend, by model. */
    const onCpu = new Map<string, string>();
    let cpuDecodeLoop: unknown;

    before(async () => {
        if (!(await getLlamaGpuTypes("supported")).includes("vulkan"))
            throw new Error("Vulkan is not usable on this machine: install Mesa's Vulkan drivers and the loader (apt-get install mesa-vulkan-drivers libvulkan1, as .ci/run does)");
        home = await mkdtemp(path.join(os.tmpdir(), "hearth-gpu-"));
        names = await importModels(home, files);
        const cpu = await startHearth(["--gpu", "cpu", "--ctx-size", "512", "--parallel", "1", ...(await Promise.all(files.map(testModel))).flatMap((file) => ["--model", file])]);
        try {
            for (const [index, file] of files.entries())
                onCpu.set(names[index]!, await complete(cpu.url, path.basename(file, ".gguf")));
            cpuDecodeLoop = ((await call("GET", `${cpu.url}/api/server`)).json.backend as {decode_loop: unknown}).decode_loop;
        } finally {
            await cpu.stop();
        }
        assert.match(onCpu.get(names[0]!)!, /Lily/);
        vulkan = await startHearth(["--gpu", "vulkan", "--gpu-devices", "0"], {HEARTH_HOME: home, HEARTH_LOG_LEVEL: "debug"});
    });

    after(async () => {
        await vulkan?.stop();
        if (home != null)
            await rm(home, {recursive: true, force: true});
    });

    it("--gpu-devices 0 reaches the hidden device: /api/system lists it with its own 2 GiB", async (t) => {
        const server = (await call("GET", `${vulkan.url}/api/server`)).json.backend as {decode_loop: string, decode_loop_reason: string | null};
        t.diagnostic(`decode loop on Vulkan: ${server.decode_loop}${server.decode_loop_reason != null ? ` (${server.decode_loop_reason})` : ""}`);
        const {json} = await call("GET", `${vulkan.url}/api/system`);
        const {gpus, backend} = json as {gpus: {name: string, backend: string, vram_total_bytes: number, vram_free_bytes: number}[], backend: {selected: string}};
        assert.equal(backend.selected, "vulkan");
        assert.equal(gpus.length, 1, JSON.stringify(gpus));
        assert.match(gpus[0]!.name, /llvmpipe/);
        assert.equal(gpus[0]!.backend, "vulkan");
        assert.equal(gpus[0]!.vram_total_bytes, 2 * GiB);
    });

    it("--gpu-layers N puts N layers on the device, as much VRAM as estimated, and answers as the CPU does", async (t) => {
        // The synthetic model's tied 32,000-token output layer is the first layer offloaded, and the largest.
        const cases = [
            {model: 0, ctxSize: 256, parallel: 1, gpuLayers: 3, compare: true},
            {model: 0, ctxSize: 2048, parallel: 2, gpuLayers: 6, compare: true},
            {model: 1, ctxSize: 128, parallel: 1, gpuLayers: 1, compare: true},
            {model: 1, ctxSize: 1024, parallel: 4, gpuLayers: 4, compare: false}
        ];
        for (const {model, ctxSize, parallel, gpuLayers, compare} of cases) {
            const name = names[model]!;
            const shape = await readModelShape(await testModel(files[model]!));
            const estimate = estimateMemory(shape, {ctxSize, parallel}, gpuLayers);
            const offset = vulkan.stdout().length;
            const loaded = await call("POST", `${vulkan.url}/api/load`, {model: name, ctx_size: ctxSize, parallel, gpu_layers: gpuLayers});
            assert.equal(loaded.status, 200, JSON.stringify(loaded.json));
            assert.equal(loaded.json.gpu_layers, gpuLayers);
            assert.equal(loaded.json.placement, gpuLayers === shape.blockCount + 1 ? "gpu" : "partial");

            const ps = (await call("GET", `${vulkan.url}/api/ps`)).json as {models: {name: string, size_vram: number}[]};
            const sizeVram = ps.models.find((entry) => entry.name === name)!.size_vram;
            assert.ok(sizeVram > 0);
            assert.equal(sizeVram, estimate.vramBytes);

            const llamaCpp = await llamaCppReport(vulkan, offset);
            const context = `${name} with ${gpuLayers} layers, ctx ${ctxSize} x ${parallel}: ${JSON.stringify(llamaCpp.buffers)}`;
            assert.equal(llamaCpp.offloaded, `${gpuLayers}/${shape.blockCount + 1}`, context);
            t.diagnostic(`${name}, ${gpuLayers} layers, ctx ${ctxSize} x ${parallel}: estimated ${estimate.vramBytes} bytes of VRAM, llama.cpp's Vulkan0 buffers ${llamaCpp.deviceBytes}`);
            assert.ok(Math.abs(llamaCpp.deviceBytes - estimate.vramBytes) <= 0.15 * llamaCpp.deviceBytes,
                `${context}: the device holds ${llamaCpp.deviceBytes} bytes, the estimate is ${estimate.vramBytes}`);

            if (compare)
                assert.equal(await complete(vulkan.url, name), onCpu.get(name), context);
            assert.equal((await call("POST", `${vulkan.url}/api/unload`, {model: name})).status, 200);
        }
    });

    it("auto plans against the device's free VRAM: a small model goes all on it, a context too large spills to the CPU, and one that fits nowhere is refused", async () => {
        const name = names[0]!;
        const shape = await readModelShape(await testModel(files[0]!));
        const layersTotal = shape.blockCount + 1;

        const small = (await call("GET", `${vulkan.url}/api/estimate?model=${name}&ctx_size=2048&parallel=1&gpu_layers=auto`)).json;
        assert.deepEqual([small.placement, small.gpu_layers], ["gpu", layersTotal]);
        let offset = vulkan.stdout().length;
        const loaded = await call("POST", `${vulkan.url}/api/load`, {model: name, ctx_size: 2048, parallel: 1, gpu_layers: "auto"});
        assert.equal(loaded.json.gpu_layers, layersTotal, JSON.stringify(loaded.json));
        assert.equal((await llamaCppReport(vulkan, offset)).offloaded, `${layersTotal}/${layersTotal}`);
        assert.equal((await call("POST", `${vulkan.url}/api/unload`, {model: name})).status, 200);

        // 2 x 1,048,576 tokens: the KV cache and the attention mask of every layer need more than the device's 2 GiB.
        const spill = {ctxSize: 1 << 20, parallel: 2};
        const usableVram = 2 * GiB - safetyMarginBytes(2 * GiB);
        const planned = (await call("GET", `${vulkan.url}/api/estimate?model=${name}&ctx_size=${spill.ctxSize}&parallel=${spill.parallel}`)).json as {placement: string, gpu_layers: number, vram_bytes: number, fits: boolean};
        assert.equal(planned.placement, "partial", JSON.stringify(planned));
        assert.ok(planned.gpu_layers > 0 && planned.gpu_layers < layersTotal, JSON.stringify(planned));
        assert.ok(planned.vram_bytes <= usableVram, "what is planned fits the device");
        assert.ok(estimateMemory(shape, spill, planned.gpu_layers + 1).vramBytes > usableVram, "one more layer would not");
        offset = vulkan.stdout().length;
        const spilled = await call("POST", `${vulkan.url}/api/load`, {model: name, ctx_size: spill.ctxSize, parallel: spill.parallel});
        assert.equal(spilled.status, 200, JSON.stringify(spilled.json));
        assert.deepEqual([spilled.json.placement, spilled.json.gpu_layers], ["partial", planned.gpu_layers]);
        assert.equal((await llamaCppReport(vulkan, offset)).offloaded, `${planned.gpu_layers}/${layersTotal}`);
        assert.equal(await complete(vulkan.url, name), onCpu.get(name));
        assert.equal((await call("POST", `${vulkan.url}/api/unload`, {model: name})).status, 200);

        const nowhere = (await call("GET", `${vulkan.url}/api/estimate?model=${name}&ctx_size=${1 << 20}&parallel=256`)).json;
        assert.deepEqual([nowhere.fits, nowhere.placement], [false, "none"]);
        const refused = await call("POST", `${vulkan.url}/api/load`, {model: name, ctx_size: 1 << 20, parallel: 256});
        assert.equal(refused.status, 422, JSON.stringify(refused.json));
        assert.match(String(refused.json.error), /does not fit in memory/);
        assert.equal((await call("GET", `${vulkan.url}/api/ps`)).json.models instanceof Array, true, "the server is still up");
    });

    it("keeps each layer's K and V cache within the largest tensor the device runs (128 MiB on lavapipe): max is refused, auto keeps the blocks on the CPU", async (t) => {
        const {gpus} = (await call("GET", `${vulkan.url}/api/system`)).json as {gpus: {max_buffer_bytes?: number, max_tensor_bytes?: number}[]};
        t.diagnostic(`lavapipe: largest buffer ${gpus[0]!.max_buffer_bytes} bytes, largest tensor ${gpus[0]!.max_tensor_bytes} bytes`);
        assert.equal(gpus[0]!.max_tensor_bytes, 128 * 2 ** 20, "lavapipe's storage-buffer range");
        assert.equal(gpus[0]!.max_buffer_bytes, GiB, "ggml's Vulkan buffers are at most 1 GiB");

        // 175,104 tokens: each block's K tensor is 175,104 x 384 x 2 bytes, just over 128 MiB. Before Hearth knew the
        // limit this plan was accepted, and llama.cpp aborted the whole server ("pre-allocated tensor (cache_k_l0) in a
        // buffer (Vulkan0) that cannot run the operation").
        const name = names[1]!;
        const layersTotal = (await readModelShape(await testModel(files[1]!))).blockCount + 1;
        const tooLong = {model: name, ctx_size: 175104, parallel: 1};
        const refused = await call("POST", `${vulkan.url}/api/load`, {...tooLong, gpu_layers: "max"});
        assert.equal(refused.status, 422, JSON.stringify(refused.json));
        assert.match(String(refused.json.error), /With 7 layers on the GPU, each layer's K or V cache is one tensor of 128\.3 MiB \(175104 tokens x 1 slot\), and the GPU's largest buffer for one tensor is 128 MiB\. Try a context of at most 174592 tokens, or --gpu-layers 1 or fewer/);
        assert.equal((await fetch(`${vulkan.url}/health`)).status, 200, "the server is still up");

        let offset = vulkan.stdout().length;
        const spilled = await call("POST", `${vulkan.url}/api/load`, {...tooLong, gpu_layers: "auto"});
        assert.equal(spilled.status, 200, JSON.stringify(spilled.json));
        assert.deepEqual([spilled.json.placement, spilled.json.gpu_layers], ["partial", 1]);
        assert.equal((await llamaCppReport(vulkan, offset)).offloaded, `1/${layersTotal}`);
        assert.equal(await complete(vulkan.url, name), onCpu.get(name));
        assert.equal((await call("POST", `${vulkan.url}/api/unload`, {model: name})).status, 200);

        // The advice is exact: 174,592 tokens (682 x 256 cells) fit in 128 MiB with every layer on the device.
        offset = vulkan.stdout().length;
        const advised = await call("POST", `${vulkan.url}/api/load`, {...tooLong, ctx_size: 174592, gpu_layers: "max"});
        assert.equal(advised.status, 200, JSON.stringify(advised.json));
        assert.equal((await llamaCppReport(vulkan, offset)).offloaded, `${layersTotal}/${layersTotal}`);
        assert.equal(await complete(vulkan.url, name), onCpu.get(name));
        assert.equal((await call("POST", `${vulkan.url}/api/unload`, {model: name})).status, 200);
    });

    it("without a device selection, --gpu auto runs on the CPU and says why, and --gpu vulkan fails at start naming why", async () => {
        const model = await testModel(files[0]!);
        const auto = await startHearth(["--gpu", "auto", "--model", model, "--ctx-size", "512", "--parallel", "1"]);
        try {
            const {gpus, backend} = (await call("GET", `${auto.url}/api/system`)).json as {gpus: unknown[], backend: {selected: string, reason: string}};
            assert.equal(backend.selected, "cpu");
            assert.deepEqual(gpus, []);
            assert.match(backend.reason, /Vulkan: its driver found no usable device \(software renderers such as llvmpipe are hidden unless selected with --gpu-devices\)/);
            // The Vulkan binary was loaded (and found no device) before the CPU one: the CPU path is as it is alone.
            assert.equal(await complete(auto.url, "stories260K"), onCpu.get(names[0]!));
            assert.equal(((await call("GET", `${auto.url}/api/server`)).json.backend as {decode_loop: unknown}).decode_loop, cpuDecodeLoop);
        } finally {
            await auto.stop();
        }
        const forced = await spawnHearth(["serve", "--gpu", "vulkan", "--port", "0"]).exited;
        assert.notEqual(forced.code, 0);
        assert.match(forced.stderr, /The Vulkan backend is not available on this machine: its driver found no usable device \(software renderers such as llvmpipe are hidden unless selected with --gpu-devices\)/);
    });

    it("--gpu-devices takes a device's name, and an unknown device fails at start naming the devices there are", async () => {
        const byName = await spawnHearth(["system", "--gpu-devices", "llvmpipe", "--json"]).exited;
        assert.equal(byName.code, 0, byName.stderr);
        const report = JSON.parse(byName.stdout) as {gpus: {name: string}[], backend: {selected: string}};
        assert.equal(report.backend.selected, "vulkan");
        assert.match(report.gpus.map((gpu) => gpu.name).join(), /^llvmpipe/);

        const unknownName = await spawnHearth(["serve", "--gpu-devices", "RTX 9090", "--port", "0"]).exited;
        assert.notEqual(unknownName.code, 0);
        assert.match(unknownName.stderr, /Vulkan: it has no device "RTX 9090" \(--gpu-devices\); its devices are 0 "llvmpipe/);
        const unknownIndex = await spawnHearth(["serve", "--gpu", "vulkan", "--gpu-devices", "7", "--port", "0"]).exited;
        assert.notEqual(unknownIndex.code, 0);
        assert.match(unknownIndex.stderr, /The Vulkan backend is not available on this machine: it has no device 7 \(--gpu-devices\); its devices are 0 "llvmpipe/);
    });
});
