import type {Backend} from "./loadBackend.js";
import type {DecodeLoopReport, GenerationReport, LoadedModel} from "./LoadedModel.js";
import type {FlashAttentionSetting} from "./flashAttention.js";
import type {DecodeLoopSetting} from "./decode/NativeDecodeLoop.js";
import type {KvCacheType} from "./kvCacheTypes.js";
import type {OffloadPlan} from "./planOffload.js";
import type {DraftTally, SpeculationSettings} from "./decode/speculation.js";

/** The types the engine is configured with and hands out. */

export type EngineOptions = {
    /** Defaults to `"auto"`: CUDA, Metal or Vulkan when usable, else the CPU. */
    gpu: "auto" | Backend,
    /** GPU devices by index or name (`--gpu-devices`). Defaults to none: the backend's own choice. */
    gpuDevices?: readonly string[],
    gpuLayers: "auto" | "max" | number,
    /** Defaults to `"auto"`: see `flashAttentionFor`. */
    flashAttention?: FlashAttentionSetting,
    /** Defaults to `"auto"`: Hearth's native decode loop where it is built. */
    decodeLoop?: DecodeLoopSetting,
    /** Speculative decoding (`--speculative`, `--draft-max`). Defaults to `auto`, 16 tokens a draft. */
    speculation?: SpeculationSettings,
    /** Defaults to `"auto"`: `defaultThreadCount` of the machine's math cores. */
    threads: "auto" | number,
    parallel: number,
    /** Context size of each slot: `"auto"` sizes it by the model and free memory (see `planOffload`). */
    ctxSize: "auto" | number,
    /** The K and V cache's element type. Defaults to `"f16"`. */
    kvCacheType?: KvCacheType,
    /** Put a model's projector (mmproj) on the GPU when it fits (`--no-mmproj-offload` turns it off). Defaults to `true`. */
    mmprojOffload?: boolean,
    maxQueue: number,
    /** The RAM cache of evicted slot states, in bytes; 0 turns it off. Defaults to `defaultPromptCacheBytes()` (PromptCache.ts). */
    cacheRamBytes?: number,
    chatTemplate?: string,
    /** How long a library model stays loaded after its last request; negative keeps it loaded. Defaults to 5 minutes. */
    keepAliveMs?: number,
    /** Library models loaded at once; loading one more unloads the least recently used idle one. Defaults to 3. */
    maxLoadedModels?: number,
    /** The models that load on first use (the library). */
    catalog?: ModelCatalog,
    /** `debug` carries llama.cpp's own log lines (the buffers and layers each load puts on a device) when `logLlamaCpp` is on. */
    log?: (level: "debug" | "info" | "warn" | "error", message: string) => void,
    /** Pass llama.cpp's info lines to `log` at debug level. Defaults to `false`: its errors only. */
    logLlamaCpp?: boolean,
    /** Told of every generation that ran to its end: its model, token counts and timings. */
    onGenerationDone?: (report: GenerationReport) => void
};

/**
 * `projectorPath`: the model's multimodal projector (mmproj GGUF), which lets it see images; from `--mmproj`, the library
 * entry, or an `mmproj*.gguf` beside the model file. Undefined: a text-only model. `draftModelPath`: a small model with the
 * same vocabulary that drafts tokens for it (`--draft-model`, speculative decoding on the native decode loop).
 */
export type ModelToLoad = {path: string, names: readonly string[], projectorPath?: string, draftModelPath?: string};

/** Where models that are not pinned at start come from: the library, which hands over verified paths only. */
export type ModelCatalog = {
    /** The model a name refers to, with its canonical name first in `names`, or undefined. */
    find(name: string): ModelToLoad | undefined,
    /** Every name it can serve. */
    names(): string[]
};

/** A loaded model held by a request; `release` starts its keep-alive once no request holds it. */
export type ModelLease = {readonly model: LoadedModel, release(): void};

export type LoadedModelInfo = {
    names: readonly string[],
    path: string,
    pinned: boolean,
    /** When it unloads if nothing uses it; undefined while in use or for a model kept loaded. */
    expiresAt: Date | undefined,
    /** The settings it was loaded with and the memory planned for them. */
    plan: OffloadPlan,
    decodeLoop: DecodeLoopReport,
    /** How it drafts, and the tokens its replies drafted and kept so far; `draftModelName`: its draft model's, when one drafts. */
    speculation: SpeculationSettings & DraftTally & {draftModelName?: string}
};

