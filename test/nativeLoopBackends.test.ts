import assert from "node:assert/strict";
import {readFileSync} from "node:fs";
import {createRequire} from "node:module";
import {join} from "node:path";
import {after, before, describe, it} from "node:test";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import type {Llama, LlamaContext, LlamaModel} from "node-llama-cpp";
import {addonFolder, manifestPath} from "../native/addon/addonPath.js";
import type {AddonManifest} from "../native/addon/addonPath.js";
import {NativeDecodeLoop, nativeDecodeLoopStatus, nativeGpuDevices} from "../native/decode/NativeDecodeLoop.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";

// Hearth's native decode loop on a GPU backend: node-llama-cpp's prebuilt Vulkan binary on lavapipe, Mesa's
// software Vulkan device (Debian's mesa-vulkan-drivers), which it sees only with GGML_VK_VISIBLE_DEVICES set.
// Where Vulkan is not usable these tests fail and say so: CI installs it, and a skip would hide the backend.
const vulkanEnv = {GGML_VK_VISIBLE_DEVICES: "0"};
process.env.GGML_VK_VISIBLE_DEVICES = vulkanEnv.GGML_VK_VISIBLE_DEVICES;
const noVulkan = "Vulkan is not usable here: install Mesa's software Vulkan driver (Debian: apt-get install mesa-vulkan-drivers libvulkan1)";

type Served = {url: string, stop(): Promise<void>};

async function serve(args: string[]): Promise<Served> {
    const modelPath = await testModel("stories260K.gguf");
    const server = spawnHearth(["serve", "--model", modelPath, "--port", "0", "--threads", "1", "--parallel", "2", ...args], vulkanEnv);
    const stop = async () => {
        if (server.child.exitCode == null && server.child.signalCode == null) {
            server.child.kill("SIGTERM");
            await server.exited;
        }
    };
    try {
        const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        await server.waitForOutput(/Ready/);
        return {url: url!, stop};
    } catch (error) {
        await stop();
        throw new Error(`hearth serve ${args.join(" ")} did not start${args.includes("vulkan") ? ` (${noVulkan})` : ""}: ${(error as Error).message}`);
    }
}

type ServerInfo = {
    backend: {selected: string, decode_loop: string, decode_loop_reason: string | null},
    models: {name: string, decode_loop: string, decode_loop_reason: string | null}[]
};
type Ps = {models: {name: string, size_vram: number, decode_loop: string, decode_loop_reason: string | null}[]};

async function getJson<T>(url: string): Promise<T> {
    const response = await fetch(url);
    assert.equal(response.status, 200, url);
    return await response.json() as T;
}

async function greedy(url: string, prompt: string): Promise<string> {
    const response = await fetch(`${url}/v1/completions`, {
        method: "POST",
        headers: {"content-type": "application/json"},
        body: JSON.stringify({model: "stories260K", prompt, max_tokens: 24, temperature: 0})
    });
    assert.equal(response.status, 200);
    return (await response.json() as {choices: {text: string}[]}).choices[0]!.text;
}

describe("the native decode loop on the Vulkan backend (lavapipe)", () => {
    let vulkan: Served;
    let cpu: Served;
    before(async () => {
        vulkan = await serve(["--gpu", "vulkan", "--gpu-layers", "3"]);
        cpu = await serve(["--gpu", "cpu"]);
    });
    after(async () => {
        await vulkan?.stop();
        await cpu?.stop();
    });

    it("reports the native loop for the backend and for the model", async () => {
        const info = await getJson<ServerInfo>(`${vulkan.url}/api/server`);
        assert.equal(info.backend.selected, "vulkan", noVulkan);
        assert.equal(info.backend.decode_loop, "native", `the native loop should run on Vulkan: ${info.backend.decode_loop_reason}`);
        assert.equal(info.backend.decode_loop_reason, null);
        assert.deepEqual(info.models, [{name: "stories260K", decode_loop: "native", decode_loop_reason: null}]);

        const ps = await getJson<Ps>(`${vulkan.url}/api/ps`);
        assert.equal(ps.models.length, 1);
        assert.equal(ps.models[0]!.decode_loop, "native");
        assert.equal(ps.models[0]!.decode_loop_reason, null);
        assert.ok(ps.models[0]!.size_vram > 0, "3 layers are on the device");
    });

    it("answers greedily as the CPU does", async () => {
        for (const prompt of ["Once upon a time", "The little dog"]) {
            const onVulkan = await greedy(vulkan.url, prompt);
            const onCpu = await greedy(cpu.url, prompt);
            assert.equal(onVulkan, onCpu, prompt);
            if (prompt === "Once upon a time")
                assert.match(onVulkan, /Lily/);
        }
        const cpuInfo = await getJson<ServerInfo>(`${cpu.url}/api/server`);
        assert.equal(cpuInfo.backend.decode_loop, "native", `the native loop should run on the CPU too: ${cpuInfo.backend.decode_loop_reason}`);
    });
});

describe("the native decode loop's binding to node-llama-cpp (in process)", () => {
    let vulkanLlama: Llama;
    let cpuLlama: Llama;
    let model: LlamaModel;
    let context: LlamaContext;
    before(async () => {
        // Both binaries loaded in one process, as after `--gpu auto` passed one over: each libllama is mapped.
        try {
            vulkanLlama = await getLlama({gpu: "vulkan", build: "never", logLevel: LlamaLogLevel.error});
        } catch (error) {
            throw new Error(`${noVulkan}: ${(error as Error).message}`);
        }
        cpuLlama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
        model = await vulkanLlama.loadModel({modelPath: await testModel("stories260K.gguf"), gpuLayers: 3});
        context = await model.createContext({contextSize: 256, sequences: 2, batchSize: 128});
    });
    after(async () => {
        await context?.dispose();
        await model?.dispose();
        await vulkanLlama?.dispose();
        await cpuLlama?.dispose();
    });

    it("lists lavapipe as the one GPU device of the Vulkan binary, none for the CPU binary", () => {
        assert.equal(vulkanLlama.gpu, "vulkan", noVulkan);
        const devices = nativeGpuDevices(vulkanLlama);
        assert.ok(devices != null, "the addon is loaded for the Vulkan binary");
        assert.equal(devices.length, 1, noVulkan);
        const [device] = devices;
        assert.equal(device!.index, 0);
        assert.equal(device!.name, "Vulkan0");
        assert.match(device!.description, /llvmpipe/);
        assert.ok(device!.totalBytes >= 1.5 * 2 ** 30 && device!.totalBytes <= 2.5 * 2 ** 30, `about 2 GiB, got ${device!.totalBytes}`);
        assert.ok(device!.freeBytes > 0 && device!.freeBytes <= device!.totalBytes);
        // ggml's Vulkan buffers are at most 1 GiB; the largest tensor it runs operations on is lavapipe's storage-buffer range.
        assert.equal(device!.maxBufferBytes, 2 ** 30);
        assert.equal(device!.maxTensorBytes, 128 * 2 ** 20);
        assert.deepEqual(nativeGpuDevices(cpuLlama), []);
    });

    it("loads the copy built for each binary, with both binaries in the process", async () => {
        assert.deepEqual(nativeDecodeLoopStatus(vulkanLlama), {available: true});
        assert.deepEqual(nativeDecodeLoopStatus(cpuLlama), {available: true});
        const cpuModel = await cpuLlama.loadModel({modelPath: await testModel("stories260K.gguf")});
        try {
            const cpuContext = await cpuModel.createContext({contextSize: 256, sequences: 1});
            for (const [owner, candidate] of [[model, context], [cpuModel, cpuContext]] as const) {
                const loop = NativeDecodeLoop.create(owner, candidate);
                assert.ok(loop instanceof NativeDecodeLoop, `native on ${owner.llama.gpu || "cpu"}: ${(loop as {reason?: string}).reason}`);
                await loop.close();
            }
            await cpuContext.dispose();
        } finally {
            await cpuModel.dispose();
        }
    });

    it("refuses a context whose native view differs from what JavaScript knows, without crashing", async () => {
        for (const [expectation, pattern] of [
            [{batchSize: 64}, /n_batch 128, not .* 64/],
            [{sequences: 3}, /n_seq_max 2 .* not .* 3 and/],
            [{contextSize: 1}, /has n_ctx \d+, .* not 1,/]
        ] as const) {
            const refused = NativeDecodeLoop.create(model, context, expectation);
            assert.ok(!(refused instanceof NativeDecodeLoop), "refused");
            assert.match(refused.reason, /node-llama-cpp's context is not what this addon was built for/);
            assert.match(refused.reason, pattern);
        }
    });

    it("refuses, in the addon itself, native objects that are not a context of that model", async () => {
        // Past the JavaScript checks: node-llama-cpp objects of other classes, read at a context's offsets.
        const manifest = JSON.parse(readFileSync(manifestPath(), "utf8")) as AddonManifest;
        const entry = manifest.addons.find((built) => built.bindingFolder.endsWith("/linux-x64-vulkan"));
        assert.ok(entry != null, "a copy was built for the Vulkan binary");
        const addon = createRequire(import.meta.url)(join(addonFolder(), entry.addon)) as {
            DecodeLoop: new (context: object, model: object, expected: object, onEvents: () => void) => unknown
        };
        type Internals = {_ctx: object, _model: object, _grammar: object};
        const nativeContext = (context as unknown as Internals)._ctx;
        const nativeModel = (model as unknown as Internals)._model;
        const grammar = (await vulkanLlama.createGrammar({grammar: "root ::= \"a\""}) as unknown as Internals)._grammar;
        const expected = {contextSize: 512, sequences: 2, batchSize: 128};
        for (const [what, candidate, owner, pattern] of [
            ["a grammar", grammar, nativeModel, /its model is not the model object/],
            ["the model", nativeModel, nativeModel, /its model is not the model object/],
            ["a plain object", {}, nativeModel, /wraps no native object/],
            ["the context as its own model", nativeContext, nativeContext, /its model is not the model object/]
        ] as const)
            assert.throws(() => new addon.DecodeLoop(candidate, owner, expected, () => undefined), pattern, what);
    });

    it("refuses a context paired with another model's object", async () => {
        const other = await vulkanLlama.loadModel({modelPath: await testModel("stories260K.gguf"), gpuLayers: 0});
        try {
            const refused = NativeDecodeLoop.create(other, context);
            assert.ok(!(refused instanceof NativeDecodeLoop), "refused");
            assert.match(refused.reason, /its model is not the model object it was created from/);
        } finally {
            await other.dispose();
        }
        // After the refusals the real pairing still runs natively.
        const loop = NativeDecodeLoop.create(model, context);
        assert.ok(loop instanceof NativeDecodeLoop);
        await loop.close();
    });
});

describe("a decode-loop fallback", () => {
    it("is logged once with its reason, not once per model", async () => {
        const files = await Promise.all(["stories260K.gguf", "llama-2-tiny-random.gguf"].map((file) => testModel(file)));
        const server = spawnHearth(["serve", ...files.flatMap((file) => ["--model", file]), "--port", "0", "--threads", "1", "--parallel", "1", "--gpu", "cpu",
            "--decode-loop", "javascript"]);
        try {
            const [, ready] = await server.waitForOutput(/Ready: (.+)/);
            assert.match(ready!, /stories260K.*llama-2-tiny-random|llama-2-tiny-random.*stories260K/, "both models loaded");
        } finally {
            server.child.kill("SIGTERM");
        }
        const {stdout, stderr} = await server.exited;
        const fallbacks = `${stdout}\n${stderr}`.split("\n").filter((line) => /JavaScript loop/.test(line));
        assert.equal(fallbacks.length, 1, fallbacks.join("\n"));
        assert.match(fallbacks[0]!, /--decode-loop javascript/);
    });
});
