import {open} from "node:fs/promises";

/**
 * A GGUF header (v2 and v3): its metadata and the shapes and types of its tensors, read with one large
 * read. Arrays of more than 16 items (the vocabulary, its scores and merges) are stepped over, not kept,
 * which makes this many times faster than a general reader on a large vocabulary.
 */
export type GgufHeader = {
    version: number,
    metadata: Map<string, GgufValue>,
    /** Each tensor's shape, type, and where its data starts, counted from {@link GgufHeader.dataOffsetBytes}. */
    tensors: {name: string, dimensions: number[], type: number, offsetBytes: number}[],
    /** Where tensor data starts in the file: the header's end, aligned to `general.alignment`. */
    dataOffsetBytes: number
};
export type GgufValue = number | bigint | boolean | string | GgufValue[] | {skippedArrayOf: number};

const GGUF_MAGIC = 0x46554747; // "GGUF", little-endian
const FIXED_SIZES: Record<number, number> = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8};
const STRING = 8;
const ARRAY = 9;

export class GgufFormatError extends Error {
    override readonly name = "GgufFormatError";
}

class NeedMoreBytes extends Error {}

/** Bytes read first: enough for most headers (a 32k vocabulary takes about 1 MB); more is read when needed. */
export const GGUF_HEADER_FIRST_READ_BYTES = 2 << 20;

/** Reads a header from the start of a file that is in `buffer`; throws {@link NeedMoreBytes} past its end. */
class Parser {
    position = 0;

    constructor(readonly buffer: Buffer, readonly isWholeFile: boolean) {}

    need(bytes: number): number {
        const at = this.position;
        if (at + bytes > this.buffer.length) {
            if (this.isWholeFile)
                throw new GgufFormatError("the file ends inside its header");
            throw new NeedMoreBytes();
        }
        this.position += bytes;
        return at;
    }

    u32(): number {
        return this.buffer.readUInt32LE(this.need(4));
    }

    u64(): number {
        const value = this.buffer.readBigUInt64LE(this.need(8));
        if (value > BigInt(Number.MAX_SAFE_INTEGER))
            throw new GgufFormatError("a count in the header is impossibly large");
        return Number(value);
    }

    string(): string {
        const length = this.u64();
        const at = this.need(length);
        return this.buffer.toString("utf8", at, at + length);
    }

    scalar(type: number): GgufValue {
        const size = FIXED_SIZES[type];
        if (size == null)
            throw new GgufFormatError(`unknown metadata type ${type}`);
        const at = this.need(size);
        const b = this.buffer;
        switch (type) {
            case 0: return b.readUInt8(at);
            case 1: return b.readInt8(at);
            case 2: return b.readUInt16LE(at);
            case 3: return b.readInt16LE(at);
            case 4: return b.readUInt32LE(at);
            case 5: return b.readInt32LE(at);
            case 6: return b.readFloatLE(at);
            case 7: return b.readUInt8(at) !== 0;
            case 10: return b.readBigUInt64LE(at);
            case 11: return b.readBigInt64LE(at);
            default: return b.readDoubleLE(at);
        }
    }

    value(type: number, maxArrayItems: number): GgufValue {
        if (type === STRING)
            return this.string();
        if (type !== ARRAY)
            return this.scalar(type);
        const itemType = this.u32();
        const count = this.u64();
        if (count <= maxArrayItems) {
            const items: GgufValue[] = [];
            for (let index = 0; index < count; index++)
                items.push(this.value(itemType, maxArrayItems));
            return items;
        }
        const size = FIXED_SIZES[itemType];
        if (size != null)
            this.need(size * count);
        else
            for (let index = 0; index < count; index++)
                this.value(itemType, 0);
        return {skippedArrayOf: count};
    }

    header(): GgufHeader {
        if (this.u32() !== GGUF_MAGIC)
            throw new GgufFormatError("it does not start with the GGUF magic bytes");
        const version = this.u32();
        if (version !== 2 && version !== 3)
            throw new GgufFormatError(`GGUF version ${version} is not supported (2 and 3 are)`);
        const tensorCount = this.u64();
        const kvCount = this.u64();
        const metadata = new Map<string, GgufValue>();
        for (let index = 0; index < kvCount; index++) {
            const key = this.string();
            metadata.set(key, this.value(this.u32(), 16));
        }
        const tensors: GgufHeader["tensors"] = [];
        for (let index = 0; index < tensorCount; index++) {
            const name = this.string();
            const dimensionCount = this.u32();
            if (dimensionCount > 8)
                throw new GgufFormatError(`tensor ${name} has ${dimensionCount} dimensions`);
            const dimensions: number[] = [];
            for (let dimension = 0; dimension < dimensionCount; dimension++)
                dimensions.push(this.u64());
            const type = this.u32();
            tensors.push({name, dimensions, type, offsetBytes: this.u64()});
        }
        const alignment = Number(metadata.get("general.alignment") ?? 32) || 32;
        return {version, metadata, tensors, dataOffsetBytes: Math.ceil(this.position / alignment) * alignment};
    }
}

/**
 * Parses a header from the first bytes of a file; undefined when the header goes on past `bytes` (read more
 * and call again). `isWholeFile` says `bytes` is the whole file, so running out of it is an error instead.
 */
export function parseGgufHeader(bytes: Buffer, isWholeFile: boolean): GgufHeader | undefined {
    try {
        return new Parser(bytes, isWholeFile).header();
    } catch (error) {
        if (error instanceof NeedMoreBytes)
            return undefined;
        throw error;
    }
}

/** `[elements per block, bytes per block]` of the ggml tensor types whose layout is certain; others get the offset check only. */
const BLOCK_LAYOUT: Record<number, [number, number]> = {
    0: [1, 4], 1: [1, 2], 2: [32, 18], 3: [32, 20], 6: [32, 22], 7: [32, 24], 8: [32, 34],
    10: [256, 84], 11: [256, 110], 12: [256, 144], 13: [256, 176], 14: [256, 210],
    24: [1, 1], 25: [1, 2], 26: [1, 4], 27: [1, 8], 28: [1, 8], 30: [1, 2]
};

/**
 * Checks that every tensor's data lies inside the file, so a truncated download or a hostile header is
 * refused here with a clear error rather than handed to the native loader.
 */
export function checkTensorBounds(header: GgufHeader, fileSizeBytes: number): void {
    if (header.tensors.length > 0 && header.dataOffsetBytes > fileSizeBytes)
        throw new GgufFormatError(`its header says tensor data starts at byte ${header.dataOffsetBytes}, past the end of the ${fileSizeBytes}-byte file: it is truncated`);
    for (const tensor of header.tensors) {
        const start = header.dataOffsetBytes + tensor.offsetBytes;
        const layout = BLOCK_LAYOUT[tensor.type];
        const elements = tensor.dimensions.reduce((product, dimension) => product * dimension, 1);
        const bytes = layout != null ? Math.ceil(elements / layout[0]) * layout[1] : 1;
        if (!Number.isSafeInteger(start) || start + bytes > fileSizeBytes)
            throw new GgufFormatError(`tensor ${tensor.name} ends past the end of the ${fileSizeBytes}-byte file: it is truncated or damaged`);
    }
}

/** Reads the start of a local file and parses it (reading more if the header is longer), and checks its tensors lie inside it. */
export async function readGgufHeader(path: string): Promise<GgufHeader> {
    const file = await open(path, "r");
    try {
        const fileSize = (await file.stat()).size;
        for (let length = Math.min(GGUF_HEADER_FIRST_READ_BYTES, fileSize); ; length = Math.min(length * 4, fileSize)) {
            const buffer = Buffer.allocUnsafe(length);
            const {bytesRead} = await file.read(buffer, 0, length, 0);
            const header = parseGgufHeader(buffer.subarray(0, bytesRead), bytesRead >= fileSize);
            if (header != null) {
                checkTensorBounds(header, fileSize);
                return header;
            }
        }
    } finally {
        await file.close();
    }
}
