import assert from "node:assert/strict";
import {stat} from "node:fs/promises";
import {describe, it} from "node:test";
import {readModelShape} from "../models/index.js";
import type {ModelShape} from "../models/index.js";
import {readGgufHeader} from "../models/readGgufHeader.js";
import {AUTO_CONTEXT_FLOOR, estimateMemory, kvTensorBytes, planOffload} from "../native/planOffload.js";
import type {MemoryAvailable} from "../native/planOffload.js";
import {measureLoadMemory, measuredTotalBytes} from "./helpers/measureLoadMemory.js";
import {testModel} from "./helpers/testModels.js";

const GB = 1e9;

describe("memory estimates", () => {
    const cases: [file: string, ctxSize: number, parallel: number][] = [
        ["stories260K.gguf", 2048, 4],
        ["derived/stories260K-Q4_0.gguf", 8192, 2],
        ["llama-2-tiny-random.gguf", 2048, 1],
        ["synthetic/synthetic-llama-23M-F16.gguf", 2048, 4],
        ["synthetic/synthetic-llama-23M-Q8_0.gguf", 8192, 1],
        ["synthetic/synthetic-llama-23M-Q4_K_M.gguf", 32768, 2]
    ];
    for (const [file, ctxSize, parallel] of cases) {
        it(`are within 15% (or 8 MiB) of what loading ${file} with ${ctxSize} tokens x ${parallel} slots uses on the CPU`, async () => {
            const modelPath = await testModel(file);
            const shape = await readModelShape(modelPath);
            const measured = await measureLoadMemory(modelPath, ctxSize, parallel);
            const estimate = estimateMemory(shape, {ctxSize, parallel}, 0);
            const measuredBytes = measuredTotalBytes(measured);
            const ratio = estimate.ramBytes / measuredBytes;
            // Within 15%, or 8 MiB for the smallest loads: the allocator's share of a load outside llama.cpp's buffers
            // moved between 3.5 and 10.7 MiB from run to run for the same 512-token model (docs/benchmarks.md).
            const allowedBytes = Math.max(0.15 * measuredBytes, 8 * 2 ** 20);
            assert.ok(Math.abs(estimate.ramBytes - measuredBytes) <= allowedBytes,
                `estimated ${estimate.ramBytes} bytes, measured ${measuredBytes} (${JSON.stringify(measured)}): ratio ${ratio.toFixed(3)}`);
            assert.equal(estimate.vramBytes, 0);
            // llama.cpp holds at least the file's tensor data (reported to 0.01 MiB); on x86 it also repacks
            // Q4_0 and Q4_K tensors into a second, interleaved buffer, which the load overhead covers.
            assert.ok(measured.weightsBytes >= estimate.ramWeightsBytes - 0.01 * 2 ** 20, `weights ${estimate.ramWeightsBytes} vs ${measured.weightsBytes}`);
        });
    }

    it("know a q8_0 KV cache: 34 bytes per 32 elements, within 15% of what llama.cpp allocates, and the whole load too", async () => {
        const modelPath = await testModel("synthetic/synthetic-llama-23M-Q8_0.gguf");
        const shape = await readModelShape(modelPath);
        const [ctxSize, parallel] = [8192, 2];
        const measured = await measureLoadMemory(modelPath, ctxSize, parallel, "q8_0");
        const estimate = estimateMemory(shape, {ctxSize, parallel, kvCacheType: "q8_0"}, 0);
        const f16 = estimateMemory(shape, {ctxSize, parallel}, 0);
        const kvElements = shape.kvElementsPerBlock.reduce((sum, elements) => sum + elements, 0) * ctxSize * parallel;
        const estimatedKvBytes = kvElements * 34 / 32;
        assert.equal(f16.ramBytes - estimate.ramBytes, kvElements * 2 - estimatedKvBytes, "only the KV cache differs from F16's");
        assert.ok(Math.abs(measured.kvBytes - estimatedKvBytes) <= 0.15 * measured.kvBytes,
            `KV cache: estimated ${estimatedKvBytes} bytes, llama.cpp reports ${measured.kvBytes}`);
        const measuredBytes = measuredTotalBytes(measured);
        assert.ok(Math.abs(estimate.ramBytes - measuredBytes) <= Math.max(0.15 * measuredBytes, 8 * 2 ** 20),
            `estimated ${estimate.ramBytes} bytes, measured ${measuredBytes} (${JSON.stringify(measured)})`);
    });

    it("sizes every tensor from the header's offsets: they add up to the file's data", async () => {
        const modelPath = await testModel("synthetic/synthetic-llama-23M-Q4_K_M.gguf");
        const shape = await readModelShape(modelPath);
        const header = await readGgufHeader(modelPath);
        const total = shape.inputBytes + shape.outputBytes + shape.blockBytes.reduce((sum, bytes) => sum + bytes, 0);
        assert.equal(total, (await stat(modelPath)).size - header.dataOffsetBytes);
        assert.equal(shape.blockCount, 6);
        assert.equal(shape.vocabularySize, 32000);
        assert.deepEqual(shape.kvElementsPerBlock, new Array(6).fill(2 * 384));
        assert.deepEqual(shape.kvTensorElementsPerBlock, new Array(6).fill(384), "K and V are a tensor each");
        assert.equal(shape.tiedOutput, true);
    });
});

describe("offload planning", () => {
    /** A 7B-like model: 32 blocks of 200 MB, 4096 wide, 8 KV heads of 128, a 32k vocabulary. */
    const model: ModelShape = {
        architecture: "llama", blockCount: 32, embeddingLength: 4096, feedForwardLength: 14336,
        kvElementsPerBlock: new Array(32).fill(2 * 8 * 128), kvTensorElementsPerBlock: new Array(32).fill(8 * 128), vocabularySize: 32000, trainedContextLength: 32768,
        blockBytes: new Array(32).fill(200e6), inputBytes: 70e6, outputBytes: 100e6, tiedOutput: false
    };
    const machine = (vramFreeGb: number, ramFreeGb = 32): MemoryAvailable => ({
        ramFreeBytes: ramFreeGb * GB, ramTotalBytes: 64 * GB, vramFreeBytes: vramFreeGb * GB, vramTotalBytes: vramFreeGb > 0 ? 24 * GB : 0, unifiedMemory: false
    });
    const settings = {ctxSize: 4096, parallel: 1, gpuLayers: "auto" as const};

    it("puts every layer on a GPU with room, and only the token embeddings stay in RAM", () => {
        const plan = planOffload(model, settings, machine(20));
        assert.equal(plan.placement, "gpu");
        assert.equal(plan.gpuLayers, 33);
        assert.equal(plan.layersTotal, 33);
        assert.ok(plan.vramBytes > 32 * 200e6 && plan.vramBytes < 8 * GB, `${plan.vramBytes}`);
        assert.ok(plan.ramBytes < 0.2 * GB, `${plan.ramBytes}`);
    });

    it("offloads as many layers as fit with a safety margin, and the rest run on the CPU", () => {
        const plan = planOffload(model, settings, machine(4));
        assert.equal(plan.placement, "partial");
        assert.ok(plan.gpuLayers > 10 && plan.gpuLayers < 33, `${plan.gpuLayers} layers`);
        assert.ok(plan.vramBytes <= 4 * GB - 256e6, `${plan.vramBytes} bytes of VRAM`);
        const oneMore = estimateMemory(model, settings, plan.gpuLayers + 1);
        assert.ok(oneMore.vramBytes > 4 * GB - 1.2 * GB, "one more layer would not have fit");
        assert.ok(plan.ramBytes > (33 - plan.gpuLayers - 1) * 200e6, "the blocks left on the CPU are in RAM");
    });

    it("runs on the CPU without a GPU, and refuses what fits nowhere with advice that works", () => {
        assert.equal(planOffload(model, settings, machine(0)).placement, "cpu");
        assert.equal(planOffload(model, {...settings, gpuLayers: "max"}, machine(0)).placement, "cpu", "layers asked of a CPU backend run on the CPU");
        const tooSmall = planOffload(model, {...settings, ctxSize: 32768, parallel: 4}, machine(0, 13));
        assert.equal(tooSmall.fits, false);
        assert.equal(tooSmall.placement, "none");
        assert.match(tooSmall.message!, /^It needs \d+\.\d GB of memory \(\d+\.\d GB RAM\); 13\.0 GB is free\. Try a context of \d+ tokens, or 1 parallel slot, or a smaller quantization/);
        const suggested = Number(/Try a context of (\d+) tokens/.exec(tooSmall.message!)![1]);
        assert.equal(planOffload(model, {...settings, ctxSize: suggested, parallel: 4}, machine(0, 13)).fits, true);
        assert.equal(planOffload(model, {...settings, ctxSize: suggested * 2, parallel: 4}, machine(0, 13)).fits, false);
    });

    it("counts a model's projector: on the GPU before the layers when it fits, in RAM when it does not or may not go there", () => {
        const projector = {sizeBytes: 800e6, offload: true};
        const alone = planOffload(model, settings, machine(4));
        const seeing = planOffload(model, settings, machine(4), projector);
        assert.equal(seeing.projectorBytes, 800e6);
        assert.equal(seeing.projectorOnGpu, true);
        assert.ok(seeing.gpuLayers < alone.gpuLayers, `the projector takes the room of layers: ${seeing.gpuLayers} vs ${alone.gpuLayers}`);
        assert.ok(seeing.vramBytes <= 4 * GB - 256e6 && seeing.vramBytes >= 800e6, `${seeing.vramBytes} bytes of VRAM`);
        assert.equal(alone.projectorBytes, 0);

        const kept = planOffload(model, settings, machine(4), {...projector, offload: false});
        assert.equal(kept.projectorOnGpu, false, "--no-mmproj-offload keeps it on the CPU");
        assert.equal(kept.gpuLayers, alone.gpuLayers, "and the GPU's layers as they were");
        assert.equal(kept.ramBytes, alone.ramBytes + 800e6);

        const noRoom = planOffload(model, settings, machine(0.5), projector);
        assert.equal(noRoom.projectorOnGpu, false, "a GPU without room for it leaves it in RAM");
        assert.equal(planOffload(model, settings, machine(0), projector).projectorOnGpu, false, "as the CPU backend does");

        assert.equal(planOffload(model, settings, machine(0, 9)).fits, true);
        const tooTight = planOffload(model, settings, machine(0, 9), {sizeBytes: 2 * GB, offload: true});
        assert.equal(tooTight.fits, false, "the projector's bytes must fit too");
        assert.match(tooTight.message!, /Its projector \(mmproj\) takes 2\.0 GB more\./);
    });

    it("takes a layer count as given, and counts a unified memory's GPU share against its RAM", () => {
        const four = planOffload(model, {...settings, gpuLayers: 4}, machine(20));
        assert.equal(four.gpuLayers, 4);
        assert.equal(four.placement, "partial");
        const unified = {...machine(10, 10), unifiedMemory: true};
        const onMac = planOffload(model, settings, unified);
        assert.equal(onMac.gpuLayers, 33);
        assert.ok(onMac.fits);
        assert.equal(planOffload(model, {...settings, ctxSize: 65536}, unified).fits, false);
    });

    describe("with a GPU whose largest tensor is 1 GiB", () => {
        const GiB = 2 ** 30;
        /** A large GPU (160 GB free) whose device runs operations on tensors of at most 1 GiB, as many Vulkan devices do. */
        const limited: MemoryAvailable = {...machine(20, 200), vramTotalBytes: 192 * GB, vramFreeBytes: 160 * GB, vramMaxTensorBytes: GiB};
        const unlimited: MemoryAvailable = {...limited, vramMaxTensorBytes: undefined};
        /** 32,768 tokens x 17 slots: each block's K (and V) tensor is 557,056 cells x 1,024 x 2 bytes, 1.06 GiB. */
        const tooLong = {ctxSize: 32768, parallel: 17};

        it("sizes each K and V tensor by the context padded to 256 cells, times the slots", () => {
            assert.equal(kvTensorBytes(model, tooLong, 0), 32768 * 17 * 1024 * 2);
            assert.equal(kvTensorBytes(model, {ctxSize: 1000, parallel: 2}, 5), 1024 * 2 * 1024 * 2);
            assert.equal(kvTensorBytes(model, {ctxSize: 4096, parallel: 1, kvCacheType: "q8_0"}, 0), 4096 * 1024 * 34 / 32);
        });

        it("with --ctx-size auto, stops growing the context where a K or V tensor would exceed the limit", () => {
            const auto = {ctxSize: "auto" as const, parallel: 8, gpuLayers: "auto" as const};
            const long = {...model, trainedContextLength: 131072};
            const plan = planOffload(long, auto, limited);
            assert.equal(plan.fits, true);
            assert.equal(plan.gpuLayers, 33);
            assert.equal(plan.contextSize, 65536, "8 slots x 65,536 cells x 2 KiB is 1 GiB");
            assert.equal(plan.contextReason, "what fits in one buffer of the GPU (1 GiB for each layer's K or V cache) with 8 slots");
            assert.ok(planOffload(long, auto, unlimited).contextSize > 65536, "free VRAM alone would allow more");
        });

        it("with a fixed context and --gpu-layers auto, keeps the layers whose K and V tensors exceed the limit on the CPU", () => {
            const plan = planOffload(model, {...tooLong, gpuLayers: "auto"}, limited);
            assert.equal(plan.fits, true);
            assert.equal(plan.placement, "partial");
            assert.equal(plan.gpuLayers, 1, "only the output layer, which has no KV cache");
            assert.ok(plan.ramBytes > 32 * kvTensorBytes(model, tooLong, 0) * 2, "every block's KV cache is in RAM");
            assert.equal(planOffload(model, {...tooLong, gpuLayers: "auto"}, unlimited).gpuLayers, 33, "free VRAM alone would take all of them");
            assert.equal(planOffload(model, {ctxSize: 32768, parallel: 16, gpuLayers: "auto"}, limited).gpuLayers, 33, "1 GiB exactly fits");
        });

        it("refuses a fixed layer count whose K and V tensors exceed the limit, with advice that works", () => {
            for (const gpuLayers of ["max", 2] as const) {
                const plan = planOffload(model, {...tooLong, gpuLayers}, limited);
                assert.equal(plan.fits, false);
                assert.equal(plan.placement, "none");
                assert.equal(plan.message, `With ${gpuLayers === "max" ? 33 : 2} layers on the GPU, each layer's K or V cache is one tensor of 1.06 GiB (32768 tokens x 17 slots), ` +
                    "and the GPU's largest buffer for one tensor is 1 GiB. Try a context of at most 30720 tokens per slot with 17 slots, or 16 or fewer parallel slots, " +
                    "or --gpu-layers 1 or fewer (or auto, which keeps the other layers on the CPU).");
            }
            assert.equal(planOffload(model, {ctxSize: 30720, parallel: 17, gpuLayers: "max"}, limited).fits, true);
            assert.equal(planOffload(model, {ctxSize: 32768, parallel: 16, gpuLayers: "max"}, limited).fits, true);
            assert.equal(planOffload(model, {...tooLong, gpuLayers: 1}, limited).fits, true);
            assert.equal(planOffload(model, {...tooLong, gpuLayers: "max"}, unlimited).fits, true, "without a limit it fits");
            assert.equal(planOffload(model, {...tooLong, gpuLayers: "max"}, {...limited, vramTotalBytes: 0, vramFreeBytes: 0}).placement, "cpu", "a CPU backend has no such limit");
        });
    });

    describe("with an automatic context", () => {
        const auto = {ctxSize: "auto" as const, parallel: 4, gpuLayers: "auto" as const};
        /** 128 KiB of F16 K/V per token per slot: 32 blocks of 2 x 8 heads x 128. */
        const kvBytesPerToken = 32 * 2 * 8 * 128 * 2;

        it("gives each slot the model's trained context when it fits, all layers on the GPU", () => {
            const plan = planOffload(model, auto, {...machine(24), vramTotalBytes: 80 * GB, vramFreeBytes: 80 * GB});
            assert.equal(plan.fits, true);
            assert.equal(plan.contextSize, 32768);
            assert.equal(plan.parallel, 4);
            assert.equal(plan.placement, "gpu");
            assert.equal(plan.contextReason, "the model's trained context");
            assert.equal(plan.kvCacheType, "f16");
        });

        it("caps the context by free VRAM, in steps of 256 tokens, keeping every layer on the GPU", () => {
            const plan = planOffload(model, auto, machine(20));
            assert.equal(plan.fits, true);
            assert.equal(plan.placement, "gpu");
            assert.equal(plan.parallel, 4);
            assert.ok(plan.contextSize > AUTO_CONTEXT_FLOOR && plan.contextSize < 32768, `${plan.contextSize} tokens`);
            assert.equal(plan.contextSize % 256, 0);
            assert.equal(plan.contextReason, "what fits in free VRAM with 4 slots");
            // The most that fits: 256 tokens more would not, within the same margin the layers are planned with.
            const usableVram = 20 * GB - 1 * 2 ** 30;
            assert.ok(plan.vramBytes <= usableVram, `${plan.vramBytes}`);
            assert.ok(estimateMemory(model, {ctxSize: plan.contextSize + 256, parallel: 4}, 33).vramBytes > usableVram);
            // 20 GB less the 6.6 GB of weights, the compute buffers and the 1 GiB margin: 23,000-25,000 tokens of 128 KiB x 4 slots.
            assert.ok(Math.abs(plan.contextSize * 4 * kvBytesPerToken - (20 * GB - 1 * 2 ** 30 - 6.6 * GB)) < 1 * GB, `${plan.contextSize}`);
        });

        it("puts the layers first: on a small GPU it offloads what fits at the 4,096-token floor, and the context stays near it", () => {
            const plan = planOffload(model, auto, machine(6));
            assert.equal(plan.fits, true);
            assert.equal(plan.placement, "partial");
            const atFloor = planOffload(model, {...auto, ctxSize: AUTO_CONTEXT_FLOOR}, machine(6));
            assert.equal(plan.gpuLayers, atFloor.gpuLayers, "the layers the floor context allows");
            assert.ok(plan.contextSize >= AUTO_CONTEXT_FLOOR && plan.contextSize < 8192, `${plan.contextSize} tokens`);
            assert.match(plan.contextReason, /^what fits in free VRAM with 4 slots$/);
        });

        it("on the CPU takes what free RAM allows, never below the floor", () => {
            const plan = planOffload(model, auto, machine(0, 16));
            assert.equal(plan.placement, "cpu");
            assert.equal(plan.parallel, 4);
            assert.ok(plan.contextSize >= AUTO_CONTEXT_FLOOR && plan.contextSize < 32768, `${plan.contextSize}`);
            assert.equal(plan.contextReason, "what fits in free RAM with 4 slots");
            assert.ok(plan.ramBytes <= 16 * GB - 2 ** 30 * 1, `${plan.ramBytes}`);
        });

        it("gives a model trained on fewer than 4,096 tokens its trained context", () => {
            const small = planOffload({...model, trainedContextLength: 2048}, auto, machine(20));
            assert.equal(small.contextSize, 2048);
            assert.equal(small.contextReason, "the model's trained context");
            const unknown = planOffload({...model, trainedContextLength: undefined}, auto, machine(20));
            assert.equal(unknown.contextSize, AUTO_CONTEXT_FLOOR);
        });

        it("runs fewer slots when even the floor does not fit with all of them, and says so", () => {
            // 6.9 GB of weights and buffers, 0.5 GB a slot at 4,096 tokens: 2 slots fit in 9 GB less the 1 GiB margin.
            const plan = planOffload(model, auto, machine(0, 9));
            assert.equal(plan.fits, true);
            assert.ok(plan.parallel >= 1 && plan.parallel < 4, `${plan.parallel} slots`);
            assert.ok(plan.contextSize >= AUTO_CONTEXT_FLOOR && plan.contextSize < 2 * AUTO_CONTEXT_FLOOR, `${plan.contextSize}`);
            assert.match(plan.contextReason, new RegExp(`; only ${plan.parallel} slots? of 4 fit in free RAM at 4096 tokens$`));
            assert.equal(planOffload(model, {...auto, ctxSize: AUTO_CONTEXT_FLOOR, parallel: plan.parallel + 1}, machine(0, 9)).fits, false);
        });

        it("refuses with the numbers when one slot at the floor does not fit", () => {
            const plan = planOffload(model, auto, machine(0, 8.1));
            assert.equal(plan.fits, false);
            assert.equal(plan.placement, "none");
            assert.equal(plan.contextSize, AUTO_CONTEXT_FLOOR);
            assert.equal(plan.parallel, 1);
            assert.match(plan.message!, /^Even 4096 tokens in 1 slot, the least --ctx-size auto gives, do not fit\. It needs 7\.\d GB of memory \(7\.\d GB RAM\); 8\.1 GB is free\. Try a context of 2048 tokens, or a smaller quantization/);
            assert.equal(planOffload(model, {...auto, ctxSize: 2048, parallel: 1}, machine(0, 8.1)).fits, true, "the advice works");
        });

        it("fits about 1.9 times the tokens with a q8_0 KV cache, and 3.5 times with q4_0", () => {
            const f16 = planOffload(model, auto, machine(12));
            const q8 = planOffload(model, {...auto, kvCacheType: "q8_0"}, machine(12));
            const q4 = planOffload(model, {...auto, kvCacheType: "q4_0"}, machine(12));
            assert.equal(q8.kvCacheType, "q8_0");
            assert.equal(f16.placement, "gpu");
            assert.equal(q8.placement, "gpu");
            const ratio = q8.contextSize / f16.contextSize;
            assert.ok(ratio > 1.8 && ratio < 2, `q8_0 ${q8.contextSize} vs f16 ${f16.contextSize} tokens: ${ratio.toFixed(2)}`);
            assert.ok(q4.contextSize / f16.contextSize > 3.2, `q4_0 ${q4.contextSize}`);
            const kv = (settings: {ctxSize: number, kvCacheType?: "q8_0"}) => estimateMemory(model, {...settings, parallel: 1}, 0).ramBytes;
            assert.equal(kv({ctxSize: 8192}) - kv({ctxSize: 4096}), 4096 * kvBytesPerToken);
            assert.equal(kv({ctxSize: 8192, kvCacheType: "q8_0"}) - kv({ctxSize: 4096, kvCacheType: "q8_0"}), 4096 * kvBytesPerToken * 34 / 64);
        });

        it("keeps a context size asked for as it is", () => {
            const plan = planOffload(model, {...auto, ctxSize: 8192}, machine(20));
            assert.equal(plan.contextSize, 8192);
            assert.equal(plan.contextReason, "the size asked for");
        });
    });
});
