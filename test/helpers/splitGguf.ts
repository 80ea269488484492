import {mkdir, readFile, writeFile} from "node:fs/promises";
import path from "node:path";

/**
 * Splits a GGUF model into `parts` files the way llama.cpp's `gguf-split --split-max-tensors` does:
 * part 1 keeps all the metadata, every part gets `split.no`, `split.count` and `split.tensors.count`,
 * and each part holds its share of the tensors with offsets that start again at 0 in its data section.
 * The parts are named `<base>-00001-of-0000N.gguf`, which llama.cpp and node-llama-cpp load from part 1.
 */

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
const GGUF_TYPE = {u16: 2, u32: 4, i32: 5, string: 8, array: 9} as const;
/** Byte sizes of the fixed-size GGUF value types, by type id (string and array are read separately). */
const VALUE_SIZES: Record<number, number> = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8};
/** ggml tensor types: [elements per block, bytes per block], as ggml's type traits give them. */
const GGML_TYPES: Record<number, [number, number]> = {
    0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34], 9: [32, 36],
    10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210], 15: [256, 292],
    16: [256, 66], 17: [256, 74], 18: [256, 98], 19: [256, 50], 20: [32, 18], 21: [256, 110], 22: [256, 82],
    23: [256, 136], 24: [1, 1], 25: [1, 2], 26: [1, 4], 27: [1, 8], 28: [1, 8], 29: [256, 56], 30: [1, 2],
    34: [256, 54], 35: [256, 66], 39: [32, 17]
};

type TensorInfo = {name: string, dims: bigint[], type: number, offset: number, size: number};

const pad = (size: number, alignment: number) => Math.ceil(size / alignment) * alignment;

class Reader {
    offset = 0;
    constructor(readonly buffer: Buffer) {}
    u32(): number {
        this.offset += 4;
        return this.buffer.readUInt32LE(this.offset - 4);
    }
    u64(): bigint {
        this.offset += 8;
        return this.buffer.readBigUInt64LE(this.offset - 8);
    }
    string(): string {
        const length = Number(this.u64());
        this.offset += length;
        return this.buffer.toString("utf8", this.offset - length, this.offset);
    }
    skipValue(type: number): void {
        if (type === GGUF_TYPE.string)
            this.string();
        else if (type === GGUF_TYPE.array) {
            const elementType = this.u32();
            const count = Number(this.u64());
            for (let index = 0; index < count; index++)
                this.skipValue(elementType);
        } else if (VALUE_SIZES[type] != null)
            this.offset += VALUE_SIZES[type];
        else
            throw new Error(`unknown GGUF value type ${type} at byte ${this.offset}`);
    }
}

const u32 = (value: number) => {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32LE(value);
    return buffer;
};
const u64 = (value: number | bigint) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigUInt64LE(BigInt(value));
    return buffer;
};
const ggufString = (text: string) => Buffer.concat([u64(Buffer.byteLength(text)), Buffer.from(text)]);

function splitKeys(no: number, count: number, tensorCount: number): Buffer[] {
    const u16 = Buffer.alloc(2);
    u16.writeUInt16LE(no);
    const count16 = Buffer.alloc(2);
    count16.writeUInt16LE(count);
    const i32 = Buffer.alloc(4);
    i32.writeInt32LE(tensorCount);
    // gguf-split sets split.count last (it fills it in once it knows how many parts there are).
    return [
        Buffer.concat([ggufString("split.no"), u32(GGUF_TYPE.u16), u16]),
        Buffer.concat([ggufString("split.tensors.count"), u32(GGUF_TYPE.i32), i32]),
        Buffer.concat([ggufString("split.count"), u32(GGUF_TYPE.u16), count16])
    ];
}

export async function splitGguf(source: string, outputDir: string, parts: number): Promise<string[]> {
    const file = await readFile(source);
    const reader = new Reader(file);
    if (reader.u32() !== GGUF_MAGIC)
        throw new Error(`${source} is not a GGUF file`);
    const version = reader.u32();
    if (version < 2)
        throw new Error(`${source} is GGUF v${version}; only v2 and v3 are supported`);
    const tensorCount = Number(reader.u64());
    const kvCount = Number(reader.u64());
    if (!Number.isInteger(parts) || parts < 1 || parts > tensorCount)
        throw new Error(`cannot split ${tensorCount} tensors into ${parts} parts`);

    // Part 1 copies the source's key-value pairs byte for byte, less any split.* keys of its own.
    const keptKvs: Buffer[] = [];
    let alignment = DEFAULT_ALIGNMENT;
    for (let index = 0; index < kvCount; index++) {
        const start = reader.offset;
        const key = reader.string();
        const type = reader.u32();
        if (key === "general.alignment" && type === GGUF_TYPE.u32)
            alignment = file.readUInt32LE(reader.offset);
        reader.skipValue(type);
        if (!key.startsWith("split."))
            keptKvs.push(file.subarray(start, reader.offset));
    }

    const tensors: TensorInfo[] = [];
    for (let index = 0; index < tensorCount; index++) {
        const name = reader.string();
        const dims = Array.from({length: reader.u32()}, () => reader.u64());
        const type = reader.u32();
        const offset = Number(reader.u64());
        const traits = GGML_TYPES[type];
        if (traits == null)
            throw new Error(`tensor ${name} has ggml type ${type}, which splitGguf does not know the size of`);
        const elements = dims.reduce((product, dim) => product * dim, 1n);
        tensors.push({name, dims, type, offset, size: Number(elements / BigInt(traits[0])) * traits[1]});
    }
    const dataStart = pad(reader.offset, alignment);

    await mkdir(outputDir, {recursive: true});
    const base = path.basename(source).replace(/\.gguf$/i, "");
    const digits = (n: number) => String(n).padStart(5, "0");
    const paths: string[] = [];
    for (let part = 0; part < parts; part++) {
        const share = tensors.slice(Math.floor(part * tensorCount / parts), Math.floor((part + 1) * tensorCount / parts));
        // Only part 1 carries general.alignment; a reader of any other part uses the default.
        const partAlignment = part === 0 ? alignment : DEFAULT_ALIGNMENT;
        const kvs = [...part === 0 ? keptKvs : [], ...splitKeys(part, parts, tensorCount)];
        const infos: Buffer[] = [];
        const data: Buffer[] = [];
        let dataSize = 0;
        for (const tensor of share) {
            infos.push(ggufString(tensor.name), u32(tensor.dims.length), ...tensor.dims.map(u64), u32(tensor.type), u64(dataSize));
            const start = dataStart + tensor.offset;
            if (start + tensor.size > file.length)
                throw new Error(`tensor ${tensor.name} runs past the end of ${source}`);
            data.push(file.subarray(start, start + tensor.size), Buffer.alloc(pad(tensor.size, partAlignment) - tensor.size));
            dataSize += pad(tensor.size, partAlignment);
        }
        const header = Buffer.concat([u32(GGUF_MAGIC), u32(3), u64(share.length), u64(kvs.length), ...kvs, ...infos]);
        const headerPadding = Buffer.alloc(pad(header.length, partAlignment) - header.length);
        const target = path.join(outputDir, `${base}-${digits(part + 1)}-of-${digits(parts)}.gguf`);
        await writeFile(target, Buffer.concat([header, headerPadding, ...data]));
        paths.push(target);
    }
    return paths;
}
