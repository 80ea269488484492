/**
 * `--kv-cache-type`: the element type of the K and V cache tensors, as llama.cpp's `--cache-type-k/-v` name them.
 * Bytes per element: a quantized type stores blocks of 32 elements (`q8_0`: 32 bytes of values and a 2-byte F16 scale).
 */
export const KV_CACHE_BYTES_PER_ELEMENT = {
    f32: 4,
    f16: 2,
    bf16: 2,
    q8_0: 34 / 32,
    q5_1: 24 / 32,
    q5_0: 22 / 32,
    q4_1: 20 / 32,
    q4_0: 18 / 32,
    iq4_nl: 18 / 32
} as const;

export type KvCacheType = keyof typeof KV_CACHE_BYTES_PER_ELEMENT;

export const KV_CACHE_TYPES = Object.keys(KV_CACHE_BYTES_PER_ELEMENT) as readonly KvCacheType[];

/** llama.cpp's default, and node-llama-cpp's. */
export const DEFAULT_KV_CACHE_TYPE: KvCacheType = "f16";

/** Elements per quantization block; each head of a quantized cache must be a whole number of blocks. */
export const KV_CACHE_QUANT_BLOCK = 32;

/**
 * A quantized cache (blocks of 32 with a scale). llama.cpp can only read a quantized V cache inside its flash-attention
 * kernel, so such a context always runs with flash attention on.
 */
export function isQuantizedKvCache(type: KvCacheType): boolean {
    return type !== "f32" && type !== "f16" && type !== "bf16";
}

/** node-llama-cpp's name for the type (its `GgmlType` keys): `q8_0` is `Q8_0`. */
export function ggmlTypeName(type: KvCacheType): "F32" | "F16" | "BF16" | "Q8_0" | "Q5_1" | "Q5_0" | "Q4_1" | "Q4_0" | "IQ4_NL" {
    return type.toUpperCase() as ReturnType<typeof ggmlTypeName>;
}
