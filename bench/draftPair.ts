/**
 * Writes a target model and its draft twin for speculative-decoding benchmarks: Llama-architecture GGUFs with
 * random F16 weights and a real 32,000-token tokenizer (copied from the synthetic test model).
 *
 * A real draft model agrees with its target most of the time because both learned the same text. Random weights
 * agree by construction instead: the draft is the target's first layers (the same tensors, the same embeddings
 * and output), and the target's later layers add to the residual stream only `scale` times what random layers
 * would. With a small scale the target's next token is mostly the draft's; `scale` sets how often it is not.
 *
 *     node dist/bench/draftPair.js [--out DIR] [--layers 12] [--draft-layers 1] [--width 768] [--ffn 2048]
 *                                  [--heads 12] [--scale 0.07] [--seed 7]
 */
import {mkdir, readFile, writeFile} from "node:fs/promises";
import path from "node:path";
import {parseArgs} from "node:util";
import {fileURLToPath} from "node:url";
import {testModel} from "../test/helpers/testModels.js";

export type DraftPairShape = {
    /** Layers of the target; the draft has the first `draftLayers` of them. */
    layers: number,
    draftLayers: number,
    width: number,
    ffn: number,
    heads: number,
    /** How much the target's layers past the draft's add to the residual stream (1: as much as any random layer). */
    scale: number,
    seed: number
};

export const defaultDraftPairShape: DraftPairShape = {layers: 12, draftLayers: 1, width: 768, ffn: 2048, heads: 12, scale: 0.07, seed: 7};

const GGUF_MAGIC = 0x46554747;
const ALIGNMENT = 32;
const TYPE = {u32: 4, f32: 6, string: 8, array: 9} as const;
const FIXED_SIZES: Record<number, number> = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8};
const GGML_F32 = 0;
const GGML_F16 = 1;

const u32 = (value: number) => {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32LE(value);
    return buffer;
};
const u64 = (value: number) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigUInt64LE(BigInt(value));
    return buffer;
};
const text = (value: string) => Buffer.concat([u64(Buffer.byteLength(value)), Buffer.from(value)]);
const kvString = (key: string, value: string) => Buffer.concat([text(key), u32(TYPE.string), text(value)]);
const kvU32 = (key: string, value: number) => Buffer.concat([text(key), u32(TYPE.u32), u32(value)]);
const kvF32 = (key: string, value: number) => {
    const buffer = Buffer.alloc(4);
    buffer.writeFloatLE(value);
    return Buffer.concat([text(key), u32(TYPE.f32), buffer]);
};
const pad = (size: number) => Math.ceil(size / ALIGNMENT) * ALIGNMENT;

/** The tokenizer.* key-value pairs of a GGUF, byte for byte, and the size of its vocabulary. */
async function tokenizerOf(file: string): Promise<{kvs: Buffer[], vocabulary: number}> {
    const bytes = await readFile(file);
    let at = 0;
    const read32 = () => (at += 4, bytes.readUInt32LE(at - 4));
    const read64 = () => (at += 8, Number(bytes.readBigUInt64LE(at - 8)));
    const readText = () => {
        const length = read64();
        at += length;
        return bytes.toString("utf8", at - length, at);
    };
    const skip = (type: number): void => {
        if (type === TYPE.string)
            readText();
        else if (type === TYPE.array) {
            const elementType = read32();
            const count = read64();
            if (FIXED_SIZES[elementType] != null)
                at += count * FIXED_SIZES[elementType]!;
            else
                for (let index = 0; index < count; index++)
                    skip(elementType);
        } else if (FIXED_SIZES[type] != null)
            at += FIXED_SIZES[type]!;
        else
            throw new Error(`${file}: unknown GGUF value type ${type}`);
    };
    if (read32() !== GGUF_MAGIC)
        throw new Error(`${file} is not a GGUF file`);
    read32();
    read64();
    const kvCount = read64();
    const kvs: Buffer[] = [];
    let vocabulary = 0;
    for (let index = 0; index < kvCount; index++) {
        const start = at;
        const key = readText();
        const type = read32();
        if (key === "tokenizer.ggml.tokens" && type === TYPE.array)
            vocabulary = Number(bytes.readBigUInt64LE(at + 4));
        skip(type);
        if (key.startsWith("tokenizer."))
            kvs.push(bytes.subarray(start, at));
    }
    return {kvs, vocabulary};
}

/** A small seeded generator (mulberry32) and normal samples from it (Box-Muller). */
function normals(seed: number, count: number, std: number): Float32Array {
    let state = seed >>> 0;
    const uniform = () => {
        state = (state + 0x6D2B79F5) >>> 0;
        let t = state;
        t = Math.imul(t ^ (t >>> 15), t | 1);
        t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
        return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const values = new Float32Array(count);
    for (let index = 0; index < count; index += 2) {
        const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
        const angle = 2 * Math.PI * uniform();
        values[index] = radius * Math.cos(angle) * std;
        if (index + 1 < count)
            values[index + 1] = radius * Math.sin(angle) * std;
    }
    return values;
}

function toF16(values: Float32Array): Buffer {
    const out = Buffer.alloc(values.length * 2);
    const view = new DataView(new ArrayBuffer(4));
    for (let index = 0; index < values.length; index++) {
        view.setFloat32(0, values[index]!);
        const bits = view.getUint32(0);
        const sign = (bits >>> 16) & 0x8000;
        const exponent = ((bits >>> 23) & 0xff) - 127 + 15;
        const mantissa = bits & 0x7fffff;
        let half: number;
        if (exponent <= 0)
            half = sign | (exponent < -10 ? 0 : ((mantissa | 0x800000) >>> (14 - exponent)));
        else if (exponent >= 31)
            half = sign | 0x7c00;
        else
            half = sign | (exponent << 10) | (mantissa >>> 13);
        out.writeUInt16LE(half, index * 2);
    }
    return out;
}

/** A stable seed per tensor name, so the draft's tensors are the target's. */
function seedOf(name: string, seed: number): number {
    let hash = seed ^ 0x811c9dc5;
    for (const char of name)
        hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193) >>> 0;
    return hash;
}

type Tensor = {name: string, dims: number[], type: number, data: Buffer};

function tensorsOf(shape: DraftPairShape, layers: number, vocabulary: number): Tensor[] {
    const {width, ffn, seed} = shape;
    const std = 0.02;
    const random = (name: string, dims: number[], factor = 1): Tensor => {
        const values = normals(seedOf(name, seed), dims.reduce((a, b) => a * b, 1), std * factor);
        return {name, dims, type: GGML_F16, data: toF16(values)};
    };
    const ones = (name: string): Tensor => ({name, dims: [width], type: GGML_F32, data: Buffer.from(new Float32Array(width).fill(1).buffer)});
    const tensors: Tensor[] = [random("token_embd.weight", [width, vocabulary]), ones("output_norm.weight")];
    for (let layer = 0; layer < layers; layer++) {
        const block = `blk.${layer}`;
        const residual = layer < shape.draftLayers ? 1 : shape.scale;
        tensors.push(
            ones(`${block}.attn_norm.weight`), random(`${block}.attn_q.weight`, [width, width]), random(`${block}.attn_k.weight`, [width, width]),
            random(`${block}.attn_v.weight`, [width, width]), random(`${block}.attn_output.weight`, [width, width], residual),
            ones(`${block}.ffn_norm.weight`), random(`${block}.ffn_gate.weight`, [width, ffn]), random(`${block}.ffn_up.weight`, [width, ffn]),
            random(`${block}.ffn_down.weight`, [ffn, width], residual)
        );
    }
    return tensors;
}

async function writeModel(file: string, name: string, shape: DraftPairShape, layers: number, tokenizer: Buffer[], vocabulary: number): Promise<void> {
    const kvs = [
        kvString("general.architecture", "llama"), kvString("general.name", name),
        kvString("general.description", `Random weights for speculative-decoding benchmarks (Hearth bench/draftPair.ts, ${JSON.stringify(shape)}).`),
        kvU32("general.file_type", 1),
        kvU32("llama.context_length", 4096), kvU32("llama.embedding_length", shape.width), kvU32("llama.block_count", layers),
        kvU32("llama.feed_forward_length", shape.ffn), kvU32("llama.attention.head_count", shape.heads),
        kvU32("llama.attention.head_count_kv", shape.heads), kvU32("llama.rope.dimension_count", shape.width / shape.heads),
        kvF32("llama.attention.layer_norm_rms_epsilon", 1e-5), kvF32("llama.rope.freq_base", 10000),
        ...tokenizer
    ];
    const tensors = tensorsOf(shape, layers, vocabulary);
    const infos: Buffer[] = [];
    const data: Buffer[] = [];
    let offset = 0;
    for (const tensor of tensors) {
        infos.push(text(tensor.name), u32(tensor.dims.length), ...tensor.dims.map(u64), u32(tensor.type), u64(offset));
        data.push(tensor.data, Buffer.alloc(pad(tensor.data.length) - tensor.data.length));
        offset += pad(tensor.data.length);
    }
    const header = Buffer.concat([u32(GGUF_MAGIC), u32(3), u64(tensors.length), u64(kvs.length), ...kvs, ...infos]);
    await writeFile(file, Buffer.concat([header, Buffer.alloc(pad(header.length) - header.length), ...data]));
}

/** Writes `target.gguf` and `draft.gguf` into `outDir`; returns their paths. */
export async function writeDraftPair(outDir: string, shape: DraftPairShape = defaultDraftPairShape): Promise<{target: string, draft: string}> {
    if (shape.width % shape.heads !== 0 || shape.draftLayers < 1 || shape.draftLayers >= shape.layers)
        throw new Error("the width must be a multiple of the heads, and the draft must have fewer layers than the target (at least one)");
    const {kvs: tokenizer, vocabulary} = await tokenizerOf(await testModel("synthetic/synthetic-llama-23M-F16.gguf"));
    await mkdir(outDir, {recursive: true});
    const target = path.join(outDir, "target.gguf");
    const draft = path.join(outDir, "draft.gguf");
    await writeModel(target, "draft-pair-target", shape, shape.layers, tokenizer, vocabulary);
    await writeModel(draft, "draft-pair-draft", shape, shape.draftLayers, tokenizer, vocabulary);
    return {target, draft};
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
    const {values} = parseArgs({options: {
        out: {type: "string", default: "bench/results/draft-pair"},
        layers: {type: "string"}, "draft-layers": {type: "string"}, width: {type: "string"}, ffn: {type: "string"},
        heads: {type: "string"}, scale: {type: "string"}, seed: {type: "string"}
    }});
    const number = (value: string | undefined, fallback: number) => value == null ? fallback : Number(value);
    const shape: DraftPairShape = {
        layers: number(values.layers, defaultDraftPairShape.layers), draftLayers: number(values["draft-layers"], defaultDraftPairShape.draftLayers),
        width: number(values.width, defaultDraftPairShape.width), ffn: number(values.ffn, defaultDraftPairShape.ffn),
        heads: number(values.heads, defaultDraftPairShape.heads), scale: number(values.scale, defaultDraftPairShape.scale),
        seed: number(values.seed, defaultDraftPairShape.seed)
    };
    const {target, draft} = await writeDraftPair(values.out!, shape);
    console.log(`${target}\n${draft}`);
}
