import {InsufficientMemoryError} from "node-llama-cpp";
import type {Llama} from "node-llama-cpp";
import type {ModelToLoad} from "./engineTypes.js";
import type {FlashAttentionSetting} from "./flashAttention.js";
import {ModelTooLargeError} from "./errors.js";
import {LoadedModel} from "./LoadedModel.js";
import type {GenerationReport} from "./LoadedModel.js";
import type {DecodeLoopSetting} from "./decode/NativeDecodeLoop.js";
import type {LoadSettings, OffloadPlan} from "./planOffload.js";
import type {PromptCache} from "./decode/PromptCache.js";
import type {SpeculationSettings} from "./decode/speculation.js";

/** Loads a model as planned: the plan's layers on the GPU, its context size, slots and KV cache type. */
export async function loadPlannedModel(llama: Llama, spec: ModelToLoad, settings: LoadSettings, plan: OffloadPlan,
    {threads, flashAttention, decodeLoop, speculation, maxQueue, promptCache, chatTemplate, projectorOnGpu, onGenerationDone}: {threads: number, flashAttention: FlashAttentionSetting,
        decodeLoop: DecodeLoopSetting, speculation?: SpeculationSettings, maxQueue: number, promptCache?: PromptCache, chatTemplate: string | undefined, projectorOnGpu?: boolean,
        onGenerationDone?: (report: GenerationReport) => void}): Promise<LoadedModel> {
    try {
        return await LoadedModel.load(llama, {
            names: spec.names,
            path: spec.path,
            parallel: plan.parallel,
            ctxSize: plan.contextSize,
            kvCacheType: plan.kvCacheType,
            contextSizedByPlan: settings.ctxSize === "auto",
            threads,
            flashAttention,
            decodeLoop,
            ...speculation != null ? {speculation} : {},
            gpuLayers: plan.gpuLayers,
            maxQueue,
            promptCache,
            chatTemplate,
            ...spec.projectorPath != null ? {projectorPath: spec.projectorPath, projectorOnGpu} : {},
            ...spec.draftModelPath != null ? {draftModelPath: spec.draftModelPath, draftGpuLayers: plan.draft?.gpuLayers ?? 0} : {},
            onGenerationDone
        });
    } catch (error) {
        // node-llama-cpp checks memory too, by its own (more cautious) estimate: a refusal, not a failure.
        if (error instanceof InsufficientMemoryError)
            throw new ModelTooLargeError(spec.names[0]!, `${error.message}. Try a smaller context (ctx_size), fewer parallel slots or a smaller quantization.`);
        throw error;
    }
}
