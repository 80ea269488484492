import type {GgufHeader, GgufValue} from "./readGgufHeader.js";

/**
 * What memory planning needs to know about a model, taken from its GGUF header(s) alone: the sizes of
 * its weights block by block, and the dimensions that size its KV cache and compute buffers.
 */
export type ModelShape = {
    architecture: string,
    /** Repeating transformer blocks (`block_count`); with the output layer, `blockCount + 1` layers can be offloaded. */
    blockCount: number,
    embeddingLength: number,
    feedForwardLength: number,
    /** Elements one token adds to each block's KV cache (K and V widths together: KV heads × head length). */
    kvElementsPerBlock: number[],
    /**
     * Elements one token adds to the larger of each block's K and V cache tensors (llama.cpp keeps each in a tensor
     * of its own); absent in a shape made without it, where the K and V widths together stand in for it.
     */
    kvTensorElementsPerBlock?: number[],
    vocabularySize: number,
    trainedContextLength: number | undefined,
    /** Bytes of each block's weights. */
    blockBytes: number[],
    /** Token embeddings: they stay in RAM even when every layer is on the GPU. */
    inputBytes: number,
    /** The output layer and anything else outside the blocks; the first layer llama.cpp offloads to a GPU. */
    outputBytes: number,
    /** The output layer reuses the token embeddings (no `output.weight`); a GPU then needs its own copy. */
    tiedOutput: boolean
};

export class UnsupportedModelError extends Error {
    override readonly name = "UnsupportedModelError";
}

/**
 * The shape of a model from the headers of its files (one, or every part of a split model, in order) and
 * each file's size. A tensor's bytes are the distance from its data to the next tensor's, so any
 * quantization type, known today or not, is sized exactly.
 */
export function modelShapeOf(parts: readonly {header: GgufHeader, fileSizeBytes: number}[]): ModelShape {
    const first = parts[0]?.header;
    if (first == null)
        throw new UnsupportedModelError("no GGUF header was given");
    const metadata = first.metadata;
    const architecture = metadata.get("general.architecture");
    if (typeof architecture !== "string")
        throw new UnsupportedModelError("the GGUF header does not name its architecture");
    const number = (key: string): number | undefined => toNumber(metadata.get(`${architecture}.${key}`));
    const blockCount = number("block_count");
    const embeddingLength = number("embedding_length");
    if (blockCount == null || embeddingLength == null)
        throw new UnsupportedModelError(`the GGUF header of this ${architecture} model lacks its block count or embedding length`);

    const blockBytes = new Array<number>(blockCount).fill(0);
    let inputBytes = 0;
    let outputBytes = 0;
    let hasOutputWeight = false;
    for (const {header, fileSizeBytes} of parts) {
        for (const {name, bytes} of tensorBytes(header, fileSizeBytes)) {
            const block = /^blk\.(\d+)\./.exec(name)?.[1];
            if (block != null && Number(block) < blockCount)
                blockBytes[Number(block)]! += bytes;
            else if (name.startsWith("token_embd."))
                inputBytes += bytes;
            else
                outputBytes += bytes;
            hasOutputWeight ||= name === "output.weight";
        }
    }

    const headCount = perBlock(metadata.get(`${architecture}.attention.head_count`), blockCount);
    const headCountKv = perBlock(metadata.get(`${architecture}.attention.head_count_kv`), blockCount);
    /** Each block's K and V widths per token: KV heads × key length, KV heads × value length. */
    const kvWidths = blockBytes.map((_, block) => {
        const heads = headCount?.[block] ?? 0;
        if (heads === 0)
            return {key: 0, value: 0}; // a recurrent model (no attention KV cache) or a block without attention
        const kvHeads = headCountKv?.[block] ?? heads;
        const keyLength = number("attention.key_length") ?? embeddingLength / heads;
        const valueLength = number("attention.value_length") ?? embeddingLength / heads;
        return {key: kvHeads * keyLength, value: kvHeads * valueLength};
    });
    const tokens = metadata.get("tokenizer.ggml.tokens");
    const vocabularySize = number("vocab_size")
        ?? (Array.isArray(tokens) ? tokens.length : typeof tokens === "object" && "skippedArrayOf" in tokens ? tokens.skippedArrayOf : 0);

    return {
        architecture,
        blockCount,
        embeddingLength,
        feedForwardLength: Math.max(...perBlock(metadata.get(`${architecture}.feed_forward_length`), blockCount) ?? [4 * embeddingLength]),
        kvElementsPerBlock: kvWidths.map(({key, value}) => key + value),
        kvTensorElementsPerBlock: kvWidths.map(({key, value}) => Math.max(key, value)),
        vocabularySize,
        trainedContextLength: number("context_length"),
        blockBytes,
        inputBytes,
        outputBytes,
        tiedOutput: !hasOutputWeight
    };
}

/** Each tensor's size in the file: from its offset to the next tensor's (or the end of the file). */
function tensorBytes(header: GgufHeader, fileSizeBytes: number): {name: string, bytes: number}[] {
    const sorted = [...header.tensors].sort((a, b) => a.offsetBytes - b.offsetBytes);
    const dataBytes = fileSizeBytes - header.dataOffsetBytes;
    return sorted.map((tensor, index) => ({
        name: tensor.name,
        bytes: Math.max(0, (sorted[index + 1]?.offsetBytes ?? dataBytes) - tensor.offsetBytes)
    }));
}

function toNumber(value: GgufValue | undefined): number | undefined {
    if (typeof value === "number")
        return value;
    if (typeof value === "bigint")
        return Number(value);
    return undefined;
}

/** A per-block hyperparameter, which GGUF stores as one number for all blocks or as an array (one per block). */
function perBlock(value: GgufValue | undefined, blockCount: number): number[] | undefined {
    if (Array.isArray(value))
        return value.map((item) => toNumber(item) ?? 0);
    const single = toNumber(value);
    return single == null ? undefined : new Array<number>(blockCount).fill(single);
}

/** All the weights' bytes. */
export function weightBytes(shape: ModelShape): number {
    return shape.inputBytes + shape.outputBytes + shape.blockBytes.reduce((sum, bytes) => sum + bytes, 0);
}

/**
 * Another quantization of the same model, from one quantization's shape and the other's weight bytes:
 * the dimensions are the same, and every tensor's size scales with the total. The total is exact; how
 * it divides among the blocks is within a few percent (quantization mixes vary a little by tensor).
 */
export function rescaleShape(shape: ModelShape, totalWeightBytes: number): ModelShape {
    const ratio = totalWeightBytes / weightBytes(shape);
    return {
        ...shape,
        blockBytes: shape.blockBytes.map((bytes) => Math.round(bytes * ratio)),
        inputBytes: Math.round(shape.inputBytes * ratio),
        outputBytes: Math.round(shape.outputBytes * ratio)
    };
}
