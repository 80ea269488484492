import type {ModelShape} from "../models/modelShape.js";
import {DEFAULT_KV_CACHE_TYPE, KV_CACHE_BYTES_PER_ELEMENT} from "./kvCacheTypes.js";
import type {KvCacheType} from "./kvCacheTypes.js";

export type LoadSettings = {
    /** Context size of each slot, in tokens: `"auto"` sizes it by the model and free memory (see `planOffload`). */
    ctxSize: "auto" | number,
    /** Slots (sequences), each with its own `ctxSize` of KV cache. */
    parallel: number,
    /** Layers on the GPU: `"auto"` as many as fit with a safety margin, `"max"` all of them, or a number. */
    gpuLayers: "auto" | "max" | number,
    /** The K and V cache's element type. Defaults to `"f16"`. */
    kvCacheType?: KvCacheType
};

/** The settings one estimate is for: a context size already chosen. */
export type SizedSettings = {ctxSize: number, parallel: number, kvCacheType?: KvCacheType};

/** Memory the machine has for a model now (after what is already loaded). */
export type MemoryAvailable = {
    ramFreeBytes: number,
    ramTotalBytes: number,
    /** 0 without a GPU backend. */
    vramFreeBytes: number,
    vramTotalBytes: number,
    /** Apple silicon: the GPU's memory is the RAM, so both estimates draw on one pool. */
    unifiedMemory: boolean,
    /**
     * The largest tensor the GPU runs operations on, the smallest over the devices in use (Vulkan: 128 MiB on
     * lavapipe, often 4 GiB on real GPUs); absent where there is no such limit (CUDA) or it is not known (Hearth's
     * addon is not loaded for the backend), and then none is applied. See {@link maxGpuLayers}.
     */
    vramMaxTensorBytes?: number
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
    /** Context size of each slot, in tokens: the one asked for, or the one `"auto"` chose. */
    contextSize: number,
    /** Why the context is this size, for the log, `/api/ps` and the app ("the model's trained context"). */
    contextReason: string,
    /** Slots: those asked for, or fewer where an `"auto"` context at its floor fits only fewer. */
    parallel: number,
    kvCacheType: KvCacheType,
    fits: boolean,
    /** Where the model runs: all layers on the GPU, some, none, or it does not fit at all. */
    placement: "gpu" | "partial" | "cpu" | "none",
    /** Why it does not fit and what would, when it does not. */
    message?: string,
    /** The model's projector (mmproj), counted in `vramBytes` when `projectorOnGpu`, else in `ramBytes`; 0 without one. */
    projectorBytes: number,
    projectorOnGpu: boolean,
    /**
     * The draft model's part (`--draft-model`): its weights, KV cache (the model's context and slots) and buffers, already
     * counted in `vramBytes` and `ramBytes`. Absent without one.
     */
    draft?: MemoryEstimate
};

/** A model's projector as a plan counts it: its file's bytes, and whether it may go on the GPU (`--no-mmproj-offload`: not). */
export type ProjectorLoad = {sizeBytes: number, offload: boolean};

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
export function estimateMemory(shape: ModelShape, {ctxSize, parallel, kvCacheType = DEFAULT_KV_CACHE_TYPE}: SizedSettings, gpuLayers: number): MemoryEstimate {
    const layersTotal = shape.blockCount + 1;
    const onGpu = Math.max(0, Math.min(Math.floor(gpuLayers), layersTotal));
    const firstGpuBlock = shape.blockCount - Math.max(0, onGpu - 1);
    const outputOnGpu = onGpu > 0;

    let vramBytes = 0;
    let ramWeightsBytes = shape.inputBytes;
    let ramBytes = 0;
    const kvBytesPerBlock = (block: number) => ctxSize * parallel * shape.kvElementsPerBlock[block]! * KV_CACHE_BYTES_PER_ELEMENT[kvCacheType];
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

/** llama.cpp pads each slot's (sequence's) KV cells to a multiple of this. */
const KV_CELL_PADDING = 256;

/**
 * Bytes of the larger of a block's K and V cache tensors: llama.cpp keeps the block's K for every slot in one
 * tensor, and its V in another, of (context padded to 256 cells) x slots x width x the cache type's bytes.
 */
export function kvTensorBytes(shape: ModelShape, {ctxSize, parallel, kvCacheType = DEFAULT_KV_CACHE_TYPE}: SizedSettings, block: number): number {
    const cells = Math.ceil(ctxSize / KV_CELL_PADDING) * KV_CELL_PADDING * parallel;
    const elements = shape.kvTensorElementsPerBlock?.[block] ?? shape.kvElementsPerBlock[block]!;
    return cells * elements * KV_CACHE_BYTES_PER_ELEMENT[kvCacheType];
}

/**
 * The most layers the GPU can take with this context, given the largest tensor it runs operations on
 * (`vramMaxTensorBytes`). llama.cpp keeps each block's K and V cache with the block, on the GPU when the block is
 * there, and ggml aborts the whole process when such a tensor is larger than the device runs operations on; the
 * cache of a block on the CPU stays in RAM, where there is no such limit. Layers are offloaded output layer first,
 * then from the last block down, so the count stops below the last block whose K or V tensor is too large (just the
 * output layer when every block's is). So:
 * - `--gpu-layers auto` takes no more layers than this: the others stay on the CPU;
 * - `--ctx-size auto` stops growing the context where a GPU block's K or V tensor would exceed the limit;
 * - a fixed `--gpu-layers` (or `max`) above this is refused, saying the limit and what would fit.
 * Weights need no such rule: llama.cpp itself keeps a weight tensor that the device cannot run in RAM.
 */
export function maxGpuLayers(shape: ModelShape, settings: SizedSettings, available: MemoryAvailable): number {
    const layersTotal = shape.blockCount + 1;
    const limit = available.vramMaxTensorBytes;
    if (limit == null || available.vramTotalBytes === 0)
        return layersTotal;
    let layers = 1;
    for (let block = shape.blockCount - 1; block >= 0 && kvTensorBytes(shape, settings, block) <= limit; block--)
        layers++;
    return layers;
}

/** Memory kept free: the OS, other apps and the allocators' slack need room beyond the estimate. */
export function safetyMarginBytes(totalBytes: number): number {
    return Math.min(1 << 30, Math.max(256 << 20, totalBytes * 0.05));
}

/** An `"auto"` context never starts below this many tokens per slot, unless the model was trained on fewer. */
export const AUTO_CONTEXT_FLOOR = 4096;
/** An `"auto"` context below the trained one is a multiple of this (llama.cpp pads a sequence's cells to 256). */
const AUTO_CONTEXT_STEP = 256;

type SizedLoadSettings = LoadSettings & {ctxSize: number};

/**
 * How to load a model on this machine: with `"auto"` layers, the most whose VRAM fits (with a safety
 * margin), and whether the rest fits in RAM; with an `"auto"` context, see {@link planAutoContext}.
 * A plan that does not fit says what would.
 */
export function planOffload(shape: ModelShape, settings: LoadSettings, available: MemoryAvailable, projector?: ProjectorLoad, draft?: ModelShape): OffloadPlan {
    if (draft != null)
        return planWithDraft(shape, settings, available, projector, draft);
    if (projector == null || projector.sizeBytes <= 0)
        return planModel(shape, settings, available);
    // The projector is placed first, as Ollama reserves it on the GPU before the layers: encoding an image is one large
    // batch, many times faster on the GPU, while a layer that no longer fits beside it costs little on the CPU. Its
    // weights are read into buffers, not mapped, so they are allocated memory wherever they go.
    const bytes = projector.sizeBytes;
    const onGpu = projector.offload && available.vramTotalBytes > 0 &&
        (available.unifiedMemory || bytes <= available.vramFreeBytes - safetyMarginBytes(available.vramTotalBytes));
    const rest = onGpu && !available.unifiedMemory
        ? {...available, vramFreeBytes: available.vramFreeBytes - bytes}
        : {...available, ramFreeBytes: available.ramFreeBytes - bytes};
    const plan = planModel(shape, settings, rest);
    return {
        ...plan,
        vramBytes: plan.vramBytes + (onGpu ? bytes : 0),
        ramBytes: plan.ramBytes + (onGpu ? 0 : bytes),
        projectorBytes: bytes,
        projectorOnGpu: onGpu,
        ...plan.message != null ? {message: `${plan.message} Its projector (mmproj) takes ${formatGigabytes(bytes)} more${onGpu ? " on the GPU" : ""}.`} : {}
    };
}

/**
 * A model with a draft model: the draft is placed first, as the projector is, whole on the GPU where it fits there (it
 * runs once per drafted token, so a draft split between devices would cost more than it saves), else whole in RAM. Its
 * KV cache has the model's slots and context; with `--ctx-size auto` room is kept for it at the model's largest context,
 * then it is counted at the context the plan chose.
 */
function planWithDraft(shape: ModelShape, settings: LoadSettings, available: MemoryAvailable, projector: ProjectorLoad | undefined, draft: ModelShape): OffloadPlan {
    const largest = settings.ctxSize !== "auto" ? settings.ctxSize
        : shape.trainedContextLength != null && shape.trainedContextLength > 0 ? shape.trainedContextLength : AUTO_CONTEXT_FLOOR;
    const layers = draft.blockCount + 1;
    const onGpuReserve = estimateMemory(draft, {ctxSize: largest, parallel: settings.parallel, kvCacheType: settings.kvCacheType}, layers);
    const onGpu = available.vramTotalBytes > 0 && settings.gpuLayers !== 0 && !available.unifiedMemory &&
        onGpuReserve.vramBytes <= available.vramFreeBytes - safetyMarginBytes(available.vramTotalBytes);
    const reserve = onGpu ? onGpuReserve : estimateMemory(draft, {ctxSize: largest, parallel: settings.parallel, kvCacheType: settings.kvCacheType}, 0);
    const plan = planOffload(shape, settings, {
        ...available,
        ramFreeBytes: available.ramFreeBytes - reserve.ramBytes,
        vramFreeBytes: available.vramFreeBytes - reserve.vramBytes
    }, projector);
    const estimate = estimateMemory(draft, {ctxSize: plan.contextSize, parallel: plan.parallel, kvCacheType: plan.kvCacheType}, onGpu ? layers : 0);
    return {
        ...plan,
        vramBytes: plan.vramBytes + estimate.vramBytes,
        ramBytes: plan.ramBytes + estimate.ramBytes,
        ramWeightsBytes: plan.ramWeightsBytes + estimate.ramWeightsBytes,
        draft: estimate,
        ...plan.message != null ? {message: `${plan.message} Its draft model takes ${formatGigabytes(estimate.ramBytes + estimate.vramBytes)} more.`} : {}
    };
}

function planModel(shape: ModelShape, settings: LoadSettings, available: MemoryAvailable): OffloadPlan {
    if (settings.ctxSize === "auto")
        return planAutoContext(shape, settings, available);
    return planSized(shape, {...settings, ctxSize: settings.ctxSize}, available, "the size asked for");
}

function planSized(shape: ModelShape, settings: SizedLoadSettings, available: MemoryAvailable, contextReason: string): OffloadPlan {
    const estimate = estimateFor(shape, settings, available);
    return planOf(shape, settings, available, estimate, contextReason);
}

function planOf(shape: ModelShape, settings: SizedLoadSettings, available: MemoryAvailable, estimate: MemoryEstimate, contextReason: string): OffloadPlan {
    const fits = fitsAll(shape, settings, estimate, available);
    const placement = !fits ? "none" : estimate.gpuLayers === 0 ? "cpu" : estimate.gpuLayers === estimate.layersTotal ? "gpu" : "partial";
    const plan: OffloadPlan = {
        ...estimate, contextSize: settings.ctxSize, contextReason, parallel: settings.parallel,
        kvCacheType: settings.kvCacheType ?? DEFAULT_KV_CACHE_TYPE, fits, placement, projectorBytes: 0, projectorOnGpu: false
    };
    if (!fits)
        plan.message = withinTensorLimit(shape, settings, estimate, available) ? notFitMessage(shape, settings, available, estimate) : tensorLimitMessage(shape, settings, available, estimate);
    return plan;
}

/**
 * `--ctx-size auto`, the default. The rule, in order:
 * 1. Each slot's ceiling is the model's trained context (4,096 tokens when its header does not say); its floor is
 *    {@link AUTO_CONTEXT_FLOOR} tokens, or the trained context where that is less.
 * 2. Layers before context, as Ollama does: with `--gpu-layers auto` the layers are the most that fit at the floor
 *    context (all of them where they fit); a layer count or `max` is kept as given.
 * 3. With those layers, the context grows in steps of 256 tokens while the whole load still fits (VRAM and RAM,
 *    each with its safety margin, and each GPU block's K and V tensors within the largest tensor the GPU runs
 *    operations on: see {@link maxGpuLayers}), up to the ceiling. So a model partly on the GPU keeps its layers there and gets
 *    little more than the floor, and one on the CPU gets what free RAM allows.
 * 4. When even the floor does not fit with `--parallel` slots: the most slots that fit at the floor (then 3 with
 *    those); when one slot at the floor does not fit, the plan does not fit and says what would.
 */
function planAutoContext(shape: ModelShape, settings: LoadSettings, available: MemoryAvailable): OffloadPlan {
    const trained = shape.trainedContextLength != null && shape.trainedContextLength > 0 ? shape.trainedContextLength : undefined;
    const ceiling = trained ?? AUTO_CONTEXT_FLOOR;
    const floor = Math.min(AUTO_CONTEXT_FLOOR, ceiling);
    const atFloor = (parallel: number): SizedLoadSettings => ({...settings, ctxSize: floor, parallel});

    let parallel = settings.parallel;
    let floorEstimate = estimateFor(shape, atFloor(parallel), available);
    while (!fitsAll(shape, atFloor(parallel), floorEstimate, available) && parallel > 1)
        floorEstimate = estimateFor(shape, atFloor(--parallel), available);
    if (!fitsAll(shape, atFloor(parallel), floorEstimate, available)) {
        const refused = planOf(shape, atFloor(1), available, floorEstimate, `the smallest automatic context, ${floor} tokens in 1 slot`);
        refused.message = `Even ${floor} tokens in 1 slot, the least --ctx-size auto gives, do not fit. ${refused.message!}`;
        return refused;
    }

    const layers = floorEstimate.gpuLayers;
    const sized = (ctxSize: number): SizedLoadSettings => ({...settings, ctxSize, parallel});
    const estimateAt = (ctxSize: number) => estimateMemory(shape, sized(ctxSize), layers);
    const fitsAt = (ctxSize: number) => fitsAll(shape, sized(ctxSize), estimateAt(ctxSize), available);
    let ctxSize = floor;
    let estimate = floorEstimate;
    if (fitsAt(ceiling)) {
        ctxSize = ceiling;
        estimate = estimateAt(ceiling);
    } else {
        // The largest multiple of the step below the ceiling that fits; the floor does.
        let low = Math.ceil(floor / AUTO_CONTEXT_STEP);
        let high = Math.ceil(ceiling / AUTO_CONTEXT_STEP) - 1;
        while (low < high) {
            const middle = Math.ceil((low + high) / 2);
            if (fitsAt(middle * AUTO_CONTEXT_STEP))
                low = middle;
            else
                high = middle - 1;
        }
        if (low * AUTO_CONTEXT_STEP > floor) {
            ctxSize = low * AUTO_CONTEXT_STEP;
            estimate = estimateAt(ctxSize);
        }
    }

    const slots = (count: number) => `${count} ${count === 1 ? "slot" : "slots"}`;
    let reason: string;
    if (ctxSize === ceiling)
        reason = trained != null ? "the model's trained context" : "the model does not say its trained context";
    else
        reason = `what fits in ${scarceMemory(shape, sized(Math.min(ceiling, ctxSize + AUTO_CONTEXT_STEP)), estimateAt(Math.min(ceiling, ctxSize + AUTO_CONTEXT_STEP)), available)} with ${slots(parallel)}`;
    if (parallel < settings.parallel)
        reason += `; only ${slots(parallel)} of ${settings.parallel} fit in ${scarceMemory(shape, atFloor(parallel + 1), estimateFor(shape, atFloor(parallel + 1), available), available)} at ${floor} tokens`;
    return planOf(shape, sized(ctxSize), available, estimate, reason);
}

/** Which memory an estimate that does not fit runs out of, as a person would name it. */
function scarceMemory(shape: ModelShape, settings: SizedSettings, estimate: MemoryEstimate, available: MemoryAvailable): string {
    if (!withinTensorLimit(shape, settings, estimate, available))
        return `one buffer of the GPU (${formatMebibytes(available.vramMaxTensorBytes!)} for each layer's K or V cache)`;
    if (available.unifiedMemory)
        return "free memory";
    const usableVram = available.vramFreeBytes - (estimate.vramBytes > 0 ? safetyMarginBytes(available.vramTotalBytes) : 0);
    return estimate.vramBytes > usableVram ? "free VRAM" : "free RAM";
}

function estimateFor(shape: ModelShape, settings: SizedLoadSettings, available: MemoryAvailable): MemoryEstimate {
    const layersTotal = shape.blockCount + 1;
    if (available.vramTotalBytes === 0)
        return estimateMemory(shape, settings, 0); // on the CPU backend a layer count asks for nothing
    if (settings.gpuLayers === "max")
        return estimateMemory(shape, settings, layersTotal);
    if (settings.gpuLayers !== "auto")
        return estimateMemory(shape, settings, settings.gpuLayers);
    const usableVram = available.vramFreeBytes - safetyMarginBytes(available.vramTotalBytes);
    // VRAM grows with every layer offloaded: take the most that fit, and none whose KV cache the GPU cannot hold.
    let best = estimateMemory(shape, settings, 0);
    for (let layers = 1; layers <= maxGpuLayers(shape, settings, available); layers++) {
        const estimate = estimateMemory(shape, settings, layers);
        if (estimate.vramBytes > usableVram)
            break;
        best = estimate;
    }
    return best;
}

/** Whether a load fits: in memory, and with every K and V tensor on the GPU within what the GPU runs operations on. */
function fitsAll(shape: ModelShape, settings: SizedSettings, estimate: MemoryEstimate, available: MemoryAvailable): boolean {
    return fitsIn(estimate, available) && withinTensorLimit(shape, settings, estimate, available);
}

function withinTensorLimit(shape: ModelShape, settings: SizedSettings, estimate: MemoryEstimate, available: MemoryAvailable): boolean {
    return estimate.gpuLayers <= maxGpuLayers(shape, settings, available);
}

function fitsIn(estimate: MemoryEstimate, available: MemoryAvailable): boolean {
    const usableRam = available.ramFreeBytes - safetyMarginBytes(available.ramTotalBytes);
    if (available.unifiedMemory)
        return estimate.ramBytes + estimate.vramBytes <= usableRam;
    const usableVram = available.vramFreeBytes - (estimate.vramBytes > 0 ? safetyMarginBytes(available.vramTotalBytes) : 0);
    return estimate.ramBytes <= usableRam && estimate.vramBytes <= usableVram;
}

function notFitMessage(shape: ModelShape, settings: SizedLoadSettings, available: MemoryAvailable, estimate: MemoryEstimate): string {
    const neededBytes = estimate.ramBytes + estimate.vramBytes;
    const freeBytes = available.ramFreeBytes + (available.unifiedMemory ? 0 : available.vramFreeBytes);
    const needs = `It needs ${formatGigabytes(neededBytes)} of memory (${formatGigabytes(estimate.ramBytes)} RAM` +
        (estimate.vramBytes > 0 ? ` + ${formatGigabytes(estimate.vramBytes)} VRAM` : "") + `); ${formatGigabytes(freeBytes)} is free`;
    const tries: string[] = [];
    const fitsWith = (changed: SizedLoadSettings) => fitsAll(shape, changed, estimateFor(shape, changed, available), available);
    for (let ctxSize = smallerPowerOfTwo(settings.ctxSize); ctxSize >= 512; ctxSize /= 2) {
        if (fitsWith({...settings, ctxSize})) {
            tries.push(`a context of ${ctxSize} tokens`);
            break;
        }
    }
    if (settings.parallel > 1 && fitsWith({...settings, parallel: 1}))
        tries.push("1 parallel slot");
    tries.push("a smaller quantization (such as Q4_K_M)");
    return `${needs}. Try ${tries.join(", or ")}.`;
}

/**
 * Why a fixed layer count cannot run with this context: a GPU block's K or V tensor is larger than the GPU runs
 * operations on, and what would fit: a context (per slot) whose tensors do, fewer slots, or fewer GPU layers.
 */
function tensorLimitMessage(shape: ModelShape, settings: SizedLoadSettings, available: MemoryAvailable, estimate: MemoryEstimate): string {
    const limit = available.vramMaxTensorBytes!;
    const firstGpuBlock = shape.blockCount - Math.max(0, estimate.gpuLayers - 1);
    let largest = 0;
    let widest = 0;
    for (let block = firstGpuBlock; block < shape.blockCount; block++) {
        largest = Math.max(largest, kvTensorBytes(shape, settings, block));
        widest = Math.max(widest, kvTensorBytes(shape, {...settings, ctxSize: 1, parallel: 1}, block) / KV_CELL_PADDING);
    }
    const cellsThatFit = Math.floor(limit / widest);
    const contextThatFits = Math.floor(cellsThatFit / settings.parallel / KV_CELL_PADDING) * KV_CELL_PADDING;
    const layers = maxGpuLayers(shape, settings, available);
    const tries: string[] = [];
    if (contextThatFits > 0)
        tries.push(`a context of at most ${contextThatFits} tokens${settings.parallel > 1 ? ` per slot with ${settings.parallel} slots` : ""}`);
    if (settings.parallel > 1 && Math.ceil(settings.ctxSize / KV_CELL_PADDING) * KV_CELL_PADDING <= cellsThatFit)
        tries.push(`${Math.floor(cellsThatFit / (Math.ceil(settings.ctxSize / KV_CELL_PADDING) * KV_CELL_PADDING))} or fewer parallel slots`);
    tries.push(`--gpu-layers ${layers} or fewer (or auto, which keeps the other layers on the CPU)`);
    const slots = settings.parallel === 1 ? "1 slot" : `${settings.parallel} slots`;
    return `With ${estimate.gpuLayers} layers on the GPU, each layer's K or V cache is one tensor of ${formatMebibytes(largest)} ` +
        `(${settings.ctxSize} tokens x ${slots}), and the GPU's largest buffer for one tensor is ${formatMebibytes(limit)}. ` +
        `Try ${tries.join(", or ")}.`;
}

/** `128 MiB`: buffer limits are powers of two, so they read best in binary units. */
function formatMebibytes(bytes: number): string {
    return bytes >= 2 ** 30 ? `${+(bytes / 2 ** 30).toFixed(2)} GiB` : `${+(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function smallerPowerOfTwo(value: number): number {
    return 2 ** Math.ceil(Math.log2(value) - 1);
}

/** `9.1 GB`, with the 0.1 GB resolution that memory advice needs (small amounts in MB). */
function formatGigabytes(bytes: number): string {
    return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${Math.max(1, Math.round(bytes / 1e6))} MB`;
}
