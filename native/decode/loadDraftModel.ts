import {basename} from "node:path";
import type {Llama, LlamaContext, LlamaModel} from "node-llama-cpp";
import {flashAttentionFor} from "../flashAttention.js";
import type {FlashAttentionSetting} from "../flashAttention.js";
import type {NativeDecodeLoop} from "./NativeDecodeLoop.js";

/** A draft model (`--draft-model`) drafting for a model's native decode loop: its weights, and its context with the model's slots. */
export type LoadedDraftModel = {
    /** Its file name without `.gguf`, as `/api/ps` shows it. */
    name: string,
    model: LlamaModel,
    context: LlamaContext,
    /** After the loop that drafts with it has closed. */
    dispose(): Promise<void>
};

/**
 * Loads a draft model with `gpuLayers` of its layers on the GPU (the plan puts it all there or all on the CPU), gives it
 * a context of the model's context size, slots and batch size (each slot's sequence mirrors the model's), and hands it to
 * the loop, which checks that its vocabulary is the model's.
 */
export async function loadDraftModel(llama: Llama, loop: NativeDecodeLoop, options: {
    path: string, gpuLayers: number, ctxSize: number, parallel: number, batchSize: number, threads: number, flashAttention: FlashAttentionSetting,
    minProbability?: number
}): Promise<LoadedDraftModel> {
    const model = await llama.loadModel({modelPath: options.path, gpuLayers: options.gpuLayers});
    try {
        const context = await model.createContext({
            contextSize: options.ctxSize,
            sequences: options.parallel,
            threads: options.threads,
            flashAttention: flashAttentionFor(options.flashAttention, model),
            batchSize: options.batchSize,
            // Hearth's plan counted it (native/planOffload.ts, planWithDraft).
            ignoreMemorySafetyChecks: true
        });
        loop.setDraftModel(model, context, options.minProbability);
        return {
            name: basename(options.path).replace(/\.gguf$/i, ""),
            model,
            context,
            dispose: async () => {
                await context.dispose();
                await model.dispose();
            }
        };
    } catch (error) {
        await model.dispose();
        throw error;
    }
}
