import type {ModelShape} from "../models/modelShape.js";

export type LoadSettings = {
    /** Context size of each slot, in tokens. */
    ctxSize: number,
    /** Slots (sequences), each with its own `ctxSize` of KV cache. */
    parallel: number,
    /** Layers on the GPU: `"auto"` as many as fit with a safety margin, `"max"` all of them, or a number. */
    gpuLayers: "auto" | "max" | number
};

/** Memory the machine has for a model now (after what is already loaded). */
export type MemoryAvailable = {
    ramFreeBytes: number,
    ramTotalBytes: number,
    /** 0 without a GPU backend. */
    vramFreeBytes: number,
    vramTotalBytes: number,
    /** Apple silicon: the GPU's memory is the RAM, so both estimates draw on one pool. */
    unifiedMemory: boolean
};

export type MemoryEstimate = {
    /** Layers that can be offloaded: every block, and the output layer. */
    layersTotal: number,
    gpuLayers: number,
    vramBytes: number,
    ramBytes: number,
    /** The part of `ramBytes` that is weights, mapped from the file rather than allocated. */
    ramWeightsBytes: number
};

export type OffloadPlan = MemoryEstimate & {
    contextSize: number,
    parallel: number,
    fits: boolean,
    /** Where the model runs: all layers on the GPU, some, none, or it does not fit at all. */
    placement: "gpu" | "partial" | "cpu" | "none",
    /** Why it does not fit and what would, when it does not. */
    message?: string
};

/** The KV cache holds F16 keys and values, as node-llama-cpp and llama.cpp create it by default. */
const KV_BYTES_PER_ELEMENT = 2;
/** llama.cpp's default micro-batch: the compute buffers are sized for this many tokens at once. */
const MAX_UBATCH = 512;
/**
 * Runtime memory for a loaded model outside llama.cpp's buffers (vocabulary tables, metadata): a line through what
 * `npm run bench:memory` measured on the fixtures, 9.0 MiB with a 512-token vocabulary and 28-32 MiB with 32,000 tokens.
 */
const RUNTIME_OVERHEAD_BYTES = 8.5 * 2 ** 20;
const RUNTIME_BYTES_PER_TOKEN = 660;

/**
 * What loading a model takes with `gpuLayers` of its layers on the GPU: weights (llama.cpp offloads the
 * output layer first, then the last blocks: n layers are the output layer and the last n - 1 blocks), KV
 * cache (per block, where the block runs), compute buffers (sized for a full micro-batch: its logits, the
 * attention mask and the activations) and the runtime's own tables. Measured against llama.cpp's own buffer
 * sizes on the test models, on the CPU and on a Vulkan device.
 */
export function estimateMemory(shape: ModelShape, {ctxSize, parallel}: Omit<LoadSettings, "gpuLayers">, gpuLayers: number): MemoryEstimate {
    const layersTotal = shape.blockCount + 1;
    const onGpu = Math.max(0, Math.min(Math.floor(gpuLayers), layersTotal));
    const firstGpuBlock = shape.blockCount - Math.max(0, onGpu - 1);
    const outputOnGpu = onGpu > 0;

    let vramBytes = 0;
    let ramWeightsBytes = shape.inputBytes;
    let ramBytes = 0;
    const kvBytesPerBlock = (block: number) => ctxSize * parallel * shape.kvElementsPerBlock[block]! * KV_BYTES_PER_ELEMENT;
    for (let block = 0; block < shape.blockCount; block++) {
        if (block >= firstGpuBlock) {
            vramBytes += shape.blockBytes[block]! + kvBytesPerBlock(block);
        } else {
            ramWeightsBytes += shape.blockBytes[block]!;
            ramBytes += kvBytesPerBlock(block);
        }
    }
    if (outputOnGpu)
        vramBytes += shape.outputBytes + (shape.tiedOutput ? shape.inputBytes : 0);
    else
        ramWeightsBytes += shape.outputBytes;
    ramBytes += ramWeightsBytes;

    const ubatch = Math.min(MAX_UBATCH, ctxSize * parallel);
    const activationBytes = ubatch * (3 * shape.embeddingLength + shape.feedForwardLength) * 4;
    const computeBytes = Math.max(ubatch * shape.vocabularySize * 4, ctxSize * ubatch * 2) + activationBytes;
    if (onGpu > 0)
        vramBytes += computeBytes;
    // With everything on the GPU the CPU only looks up embeddings; otherwise it runs layers too.
    ramBytes += onGpu === layersTotal ? ubatch * shape.embeddingLength * 4 * 2 : computeBytes;
    // The logits of each slot are copied back to RAM.
    ramBytes += parallel * shape.vocabularySize * 4;
    ramBytes += RUNTIME_OVERHEAD_BYTES + RUNTIME_BYTES_PER_TOKEN * shape.vocabularySize;
    return {layersTotal, gpuLayers: onGpu, vramBytes, ramBytes, ramWeightsBytes};
}

/** Memory kept free: the OS, other apps and the allocators' slack need room beyond the estimate. */
export function safetyMarginBytes(totalBytes: number): number {
    return Math.min(1 << 30, Math.max(256 << 20, totalBytes * 0.05));
}

/**
 * How to load a model on this machine: with `"auto"`, the most layers whose VRAM fits (with a safety
 * margin), and whether the rest fits in RAM. A plan that does not fit says what would.
 */
export function planOffload(shape: ModelShape, settings: LoadSettings, available: MemoryAvailable): OffloadPlan {
    const estimate = estimateFor(shape, settings, available);
    const fits = fitsIn(estimate, available);
    const placement = !fits ? "none" : estimate.gpuLayers === 0 ? "cpu" : estimate.gpuLayers === estimate.layersTotal ? "gpu" : "partial";
    const plan: OffloadPlan = {...estimate, contextSize: settings.ctxSize, parallel: settings.parallel, fits, placement};
    if (!fits)
        plan.message = notFitMessage(shape, settings, available, estimate);
    return plan;
}

function estimateFor(shape: ModelShape, settings: LoadSettings, available: MemoryAvailable): MemoryEstimate {
    const layersTotal = shape.blockCount + 1;
    if (available.vramTotalBytes === 0)
        return estimateMemory(shape, settings, 0); // on the CPU backend a layer count asks for nothing
    if (settings.gpuLayers === "max")
        return estimateMemory(shape, settings, layersTotal);
    if (settings.gpuLayers !== "auto")
        return estimateMemory(shape, settings, settings.gpuLayers);
    const usableVram = available.vramFreeBytes - safetyMarginBytes(available.vramTotalBytes);
    // VRAM grows with every layer offloaded: take the most that fit.
    let best = estimateMemory(shape, settings, 0);
    for (let layers = 1; layers <= layersTotal; layers++) {
        const estimate = estimateMemory(shape, settings, layers);
        if (estimate.vramBytes > usableVram)
            break;
        best = estimate;
    }
    return best;
}

function fitsIn(estimate: MemoryEstimate, available: MemoryAvailable): boolean {
    const usableRam = available.ramFreeBytes - safetyMarginBytes(available.ramTotalBytes);
    if (available.unifiedMemory)
        return estimate.ramBytes + estimate.vramBytes <= usableRam;
    const usableVram = available.vramFreeBytes - (estimate.vramBytes > 0 ? safetyMarginBytes(available.vramTotalBytes) : 0);
    return estimate.ramBytes <= usableRam && estimate.vramBytes <= usableVram;
}

function notFitMessage(shape: ModelShape, settings: LoadSettings, available: MemoryAvailable, estimate: MemoryEstimate): string {
    const neededBytes = estimate.ramBytes + estimate.vramBytes;
    const freeBytes = available.ramFreeBytes + (available.unifiedMemory ? 0 : available.vramFreeBytes);
    const needs = `It needs ${formatGigabytes(neededBytes)} of memory (${formatGigabytes(estimate.ramBytes)} RAM` +
        (estimate.vramBytes > 0 ? ` + ${formatGigabytes(estimate.vramBytes)} VRAM` : "") + `); ${formatGigabytes(freeBytes)} is free`;
    const tries: string[] = [];
    for (let ctxSize = smallerPowerOfTwo(settings.ctxSize); ctxSize >= 512; ctxSize /= 2) {
        if (fitsIn(estimateFor(shape, {...settings, ctxSize}, available), available)) {
            tries.push(`a context of ${ctxSize} tokens`);
            break;
        }
    }
    if (settings.parallel > 1 && fitsIn(estimateFor(shape, {...settings, parallel: 1}, available), available))
        tries.push("1 parallel slot");
    tries.push("a smaller quantization (such as Q4_K_M)");
    return `${needs}. Try ${tries.join(", or ")}.`;
}

function smallerPowerOfTwo(value: number): number {
    return 2 ** Math.ceil(Math.log2(value) - 1);
}

/** `9.1 GB`, with the 0.1 GB resolution that memory advice needs (small amounts in MB). */
function formatGigabytes(bytes: number): string {
    return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / 1e6))} MB`;
}
