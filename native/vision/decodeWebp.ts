import {readFileSync} from "node:fs";
import {createRequire} from "node:module";
import {InvalidImageError} from "../errors.js";

/** A decoded image: RGB pixels, row by row, three bytes each. */
export type DecodedImage = {width: number, height: number, pixels: Uint8Array};

/**
 * The most pixels a WebP image may have: it is refused from its header, before libwebp allocates anything (the same
 * bound the edge puts on every image: 50 megapixels, 200 MB of RGBA while decoding).
 */
export const maxWebpPixels = 50_000_000;

/**
 * Decodes a WebP file to RGB pixels (libmtmd's own reader, stb_image, has no WebP): lossy (VP8), lossless (VP8L) and
 * extended (VP8X) files, with alpha, and the first frame of an animation. Alpha is dropped as stb_image drops it when
 * libmtmd asks for three channels: the colour each pixel carries, not composited on any background. Throws
 * InvalidImageError for a file that is not a WebP image, truncated, corrupt or over `maxWebpPixels`.
 */
export function decodeWebp(data: Uint8Array): DecodedImage {
    const still = readWebp(data);
    const pixels = new Uint8Array(still.canvasWidth * still.canvasHeight * 3);
    const rgba = decodeRgba(still.file, still.width, still.height);
    for (let row = 0; row < still.height; row++) {
        let from = row * still.width * 4;
        let to = ((still.y + row) * still.canvasWidth + still.x) * 3;
        for (let column = 0; column < still.width; column++, from += 4, to += 3) {
            // An animation's frame is blended onto a transparent canvas (libwebp's WebPAnimDecoder), which keeps the
            // canvas's transparent black where the frame is fully transparent.
            if (still.blend && rgba[from + 3] === 0)
                continue;
            pixels[to] = rgba[from]!;
            pixels[to + 1] = rgba[from + 1]!;
            pixels[to + 2] = rgba[from + 2]!;
        }
    }
    return {width: still.canvasWidth, height: still.canvasHeight, pixels};
}

/**
 * What libwebp decodes (a still WebP file: the whole file, or an animation's first frame made into one) and where it
 * lies on the image's canvas.
 */
type Still = {
    file: Uint8Array, width: number, height: number,
    canvasWidth: number, canvasHeight: number, x: number, y: number, blend: boolean
};

type Chunk = {fourCC: string, payload: Uint8Array};

function invalid(reason: string): InvalidImageError {
    return new InvalidImageError(`The WebP image ${reason}`);
}

const u16 = (bytes: Uint8Array, at: number) => bytes[at]! | (bytes[at + 1]! << 8);
const u24 = (bytes: Uint8Array, at: number) => u16(bytes, at) | (bytes[at + 2]! << 16);
const u32 = (bytes: Uint8Array, at: number) => (u24(bytes, at) + bytes[at + 3]! * 0x1000000);
const fourCCAt = (bytes: Uint8Array, at: number) => String.fromCharCode(...bytes.subarray(at, at + 4));

/** The chunks of a RIFF payload (or of an animation frame's data), each checked to lie within it. */
function chunksOf(bytes: Uint8Array): Chunk[] {
    const chunks: Chunk[] = [];
    for (let at = 0; at + 8 <= bytes.length;) {
        const size = u32(bytes, at + 4);
        if (at + 8 + size > bytes.length)
            throw invalid(`is truncated: its ${fourCCAt(bytes, at)} chunk needs ${size} bytes and ${bytes.length - at - 8} remain`);
        chunks.push({fourCC: fourCCAt(bytes, at), payload: bytes.subarray(at + 8, at + 8 + size)});
        at += 8 + size + (size & 1);
    }
    return chunks;
}

/** The size a VP8 (lossy) or VP8L (lossless) bitstream's own header gives. */
function bitstreamSize(chunk: Chunk): {width: number, height: number} {
    const bytes = chunk.payload;
    if (chunk.fourCC === "VP8 ") {
        if (bytes.length < 10 || bytes[3] !== 0x9d || bytes[4] !== 0x01 || bytes[5] !== 0x2a)
            throw invalid("has a corrupt VP8 (lossy) header");
        return {width: u16(bytes, 6) & 0x3fff, height: u16(bytes, 8) & 0x3fff};
    }
    if (bytes.length < 5 || bytes[0] !== 0x2f)
        throw invalid("has a corrupt VP8L (lossless) header");
    const bits = u32(bytes, 1);
    return {width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1};
}

function checkSize(width: number, height: number): void {
    if (width === 0 || height === 0)
        throw invalid(`is ${width}×${height} pixels, which has nothing to see`);
    if (width * height > maxWebpPixels)
        throw invalid(`is ${width}×${height} pixels (${(width * height / 1e6).toFixed(1)} megapixels); ` +
            `an image may have at most ${maxWebpPixels / 1e6} megapixels`);
}

/** Reads the container: the image's size (checked before anything is decoded) and the still file libwebp decodes. */
function readWebp(data: Uint8Array): Still {
    if (data.length < 12 || fourCCAt(data, 0) !== "RIFF" || fourCCAt(data, 8) !== "WEBP")
        throw invalid("is not a WebP file (no RIFF WEBP header)");
    const riffEnd = 8 + u32(data, 4);
    if (riffEnd > data.length)
        throw invalid(`is truncated: its header says ${riffEnd} bytes and it has ${data.length}`);
    const chunks = chunksOf(data.subarray(12, riffEnd));
    const first = chunks[0];
    if (first == null)
        throw invalid("has no image data");
    if (first.fourCC === "VP8 " || first.fourCC === "VP8L") {
        const {width, height} = bitstreamSize(first);
        checkSize(width, height);
        return {file: data, width, height, canvasWidth: width, canvasHeight: height, x: 0, y: 0, blend: false};
    }
    if (first.fourCC !== "VP8X" || first.payload.length < 10)
        throw invalid(`starts with an unknown ${JSON.stringify(first.fourCC)} chunk`);
    const animated = (first.payload[0]! & 0x02) !== 0;
    const canvasWidth = u24(first.payload, 4) + 1;
    const canvasHeight = u24(first.payload, 7) + 1;
    checkSize(canvasWidth, canvasHeight);
    if (!animated)
        return {file: data, width: canvasWidth, height: canvasHeight, canvasWidth, canvasHeight, x: 0, y: 0, blend: false};

    const frame = chunks.find((chunk) => chunk.fourCC === "ANMF");
    if (frame == null || frame.payload.length < 16)
        throw invalid("is an animation with no frames");
    const header = frame.payload;
    const x = u24(header, 0) * 2;
    const y = u24(header, 3) * 2;
    const width = u24(header, 6) + 1;
    const height = u24(header, 9) + 1;
    if (x + width > canvasWidth || y + height > canvasHeight)
        throw invalid(`has a first frame (${width}×${height} at ${x},${y}) outside its ${canvasWidth}×${canvasHeight} canvas`);
    const parts = chunksOf(header.subarray(16));
    const bitstream = parts.find((chunk) => chunk.fourCC === "VP8 " || chunk.fourCC === "VP8L");
    if (bitstream == null)
        throw invalid("has a first frame with no image data");
    const alpha = bitstream.fourCC === "VP8 " ? parts.find((chunk) => chunk.fourCC === "ALPH") : undefined;
    return {
        file: stillFile(width, height, alpha == null ? [bitstream] : [alpha, bitstream]),
        width, height, canvasWidth, canvasHeight, x, y,
        blend: (header[15]! & 0x02) === 0
    };
}

/** An extended (VP8X) still WebP file of the given chunks: how libwebp's still decoder takes an animation's frame. */
function stillFile(width: number, height: number, chunks: Chunk[]): Uint8Array {
    const vp8x = new Uint8Array(10);
    vp8x[0] = chunks.some((chunk) => chunk.fourCC === "ALPH") ? 0x10 : 0;
    vp8x.set([(width - 1) & 0xff, ((width - 1) >> 8) & 0xff, (width - 1) >> 16], 4);
    vp8x.set([(height - 1) & 0xff, ((height - 1) >> 8) & 0xff, (height - 1) >> 16], 7);
    const all = [{fourCC: "VP8X", payload: vp8x}, ...chunks];
    const size = 12 + all.reduce((sum, chunk) => sum + 8 + chunk.payload.length + (chunk.payload.length & 1), 0);
    const file = new Uint8Array(size);
    const view = new DataView(file.buffer);
    file.set(Buffer.from("RIFF"), 0);
    view.setUint32(4, size - 8, true);
    file.set(Buffer.from("WEBP"), 8);
    let at = 12;
    for (const chunk of all) {
        file.set(Buffer.from(chunk.fourCC, "latin1"), at);
        view.setUint32(at + 4, chunk.payload.length, true);
        file.set(chunk.payload, at + 8);
        at += 8 + chunk.payload.length + (chunk.payload.length & 1);
    }
    return file;
}

type LibWebp = {
    memory: {buffer: ArrayBuffer},
    malloc(size: number): number,
    free(pointer: number): void,
    WebPDecodeRGBA(data: number, size: number, width: number, height: number): number
};

/** Node's WebAssembly API, which TypeScript declares only with the DOM library. */
type WebAssemblyApi = {
    Module: new (bytes: Uint8Array) => object,
    Instance: new (module: object, imports: Record<string, Record<string, () => never>>) => {exports: object}
};
const {Module: WasmModule, Instance: WasmInstance} = (globalThis as unknown as {WebAssembly: WebAssemblyApi}).WebAssembly;

let libwebp: object | undefined;

/**
 * Decodes a still WebP file to RGBA with libwebp (built to WebAssembly, shipped by @cwasm/webp). Each image gets a new
 * instance: its memory is dropped with it (a WebAssembly memory never shrinks), and a crafted file that corrupts the
 * decoder's heap cannot touch the next image.
 */
function decodeRgba(file: Uint8Array, width: number, height: number): Uint8Array {
    libwebp ??= new WasmModule(readFileSync(createRequire(import.meta.url).resolve("@cwasm/webp/webp.wasm")));
    const unavailable = () => {
        throw new Error("no system calls");
    };
    let decoded: Uint8Array | undefined;
    try {
        const webp = new WasmInstance(libwebp, {wasi_snapshot_preview1: {fd_close: unavailable, fd_seek: unavailable, fd_write: unavailable}})
            .exports as unknown as LibWebp;
        const input = webp.malloc(file.length);
        const size = webp.malloc(8);
        if (input === 0 || size === 0)
            throw new Error("out of memory");
        new Uint8Array(webp.memory.buffer).set(file, input);
        const output = webp.WebPDecodeRGBA(input, file.length, size, size + 4);
        const [decodedWidth, decodedHeight] = new Uint32Array(webp.memory.buffer, size, 2);
        if (output !== 0 && decodedWidth === width && decodedHeight === height)
            decoded = new Uint8Array(webp.memory.buffer, output, width * height * 4);
    } catch {
        // A trap (an access outside the decoder's memory) or an allocation that failed: the file is corrupt or hostile.
    }
    if (decoded == null)
        throw invalid("is corrupt: libwebp could not decode it");
    return decoded;
}
