import type {LlamaModel} from "node-llama-cpp";

/** `--flash-attn`: `auto` lets Hearth choose per model, `on` and `off` force it. */
export type FlashAttentionSetting = "auto" | "on" | "off";

/**
 * Below this many dimensions per attention head, llama.cpp's CPU flash-attention kernel costs more than
 * it saves: it works one head at a time, and with tiny heads that overhead dominates. Measured with
 * llama-batched-bench on a 2-core x86-64 VM: stories260K (8-dim heads) decodes about 2.2x faster without
 * it, a 4-dim model is even at short contexts and 15% faster without it at 1,000 tokens, while a 64-dim
 * model is even or faster with it. See docs/benchmarks.md.
 */
const smallestCpuFlashAttentionHead = 32;

/**
 * What a context is created with: a forced setting as given; for `auto`, off for models with tiny heads
 * whose attention runs on the CPU, else llama.cpp's own choice (on where the backend supports it).
 */
export function flashAttentionFor(setting: FlashAttentionSetting, model: LlamaModel): boolean | "auto" {
    if (setting !== "auto")
        return setting === "on";
    const attentionOnCpu = model.llama.gpu === false || model.gpuLayers === 0;
    const headSize = attentionHeadSize(model);
    return attentionOnCpu && headSize != null && headSize < smallestCpuFlashAttentionHead ? false : "auto";
}

/** Dimensions of one attention head (keys), from the GGUF metadata. */
export function attentionHeadSize(model: LlamaModel): number | undefined {
    const architecture = model.fileInfo.architectureMetadata as {embedding_length?: number, attention?: {head_count?: number | number[], key_length?: number}};
    if (architecture.attention?.key_length != null)
        return architecture.attention.key_length;
    const heads = architecture.attention?.head_count;
    const headCount = Array.isArray(heads) ? Math.max(...heads) : heads;
    return architecture.embedding_length != null && headCount != null && headCount > 0 ? architecture.embedding_length / headCount : undefined;
}
