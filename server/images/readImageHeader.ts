import type {ImageMimeType} from "../../native/types.js";

/** What an image file's header says, read without decoding its pixels; or why it cannot be read. */
export type ImageHeader = {mimeType: ImageMimeType, width: number, height: number};
export type UnreadableImage = {problem: string};

const ascii = (bytes: Uint8Array, start: number, length: number) => String.fromCharCode(...bytes.subarray(start, start + length));

/**
 * The format (from the bytes, whatever the client called them) and the size of a PNG, JPEG, WebP (lossy, lossless
 * or extended), GIF or BMP file. Only the header is read, so a file whose pixels are corrupt passes here and
 * fails in the engine; a file too short for its own header is truncated.
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader | UnreadableImage {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const truncated = (format: string) => ({problem: `it is a truncated ${format} file (${bytes.length} bytes, too short for its own header)`});
    if (bytes.length >= 8 && view.getUint32(0) === 0x89504e47 && view.getUint32(4) === 0x0d0a1a0a) {
        if (bytes.length < 24)
            return truncated("PNG");
        if (ascii(bytes, 12, 4) !== "IHDR")
            return {problem: "it is a PNG file whose first chunk is not its header (IHDR)"};
        return {mimeType: "image/png", width: view.getUint32(16), height: view.getUint32(20)};
    }
    if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff)
        return jpegHeader(bytes, view);
    if (bytes.length >= 6 && (ascii(bytes, 0, 6) === "GIF87a" || ascii(bytes, 0, 6) === "GIF89a")) {
        if (bytes.length < 10)
            return truncated("GIF");
        return {mimeType: "image/gif", width: view.getUint16(6, true), height: view.getUint16(8, true)};
    }
    if (bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d)
        return bmpHeader(bytes, view);
    if (bytes.length >= 12 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP")
        return webpHeader(bytes, view);
    return {problem: "it is not a PNG, JPEG, WebP, GIF or BMP file"};
}

/** A JPEG's size is in its start-of-frame segment, after any number of others (APPn, quantisation tables…). */
function jpegHeader(bytes: Uint8Array, view: DataView): ImageHeader | UnreadableImage {
    let offset = 2;
    while (offset + 4 <= bytes.length) {
        if (bytes[offset] !== 0xff)
            return {problem: "it is a JPEG file whose segments are malformed"};
        const marker = bytes[offset + 1]!;
        // Fill bytes, and markers that stand alone without a length.
        if (marker === 0xff) {
            offset += 1;
            continue;
        }
        if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
            offset += 2;
            continue;
        }
        if (marker === 0xd9 || marker === 0xda)
            return {problem: "it is a JPEG file without a frame header (SOF) before its image data"};
        const length = view.getUint16(offset + 2);
        if (length < 2)
            return {problem: "it is a JPEG file whose segments are malformed"};
        const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
        if (isFrame) {
            if (offset + 9 > bytes.length)
                break;
            return {mimeType: "image/jpeg", height: view.getUint16(offset + 5), width: view.getUint16(offset + 7)};
        }
        offset += 2 + length;
    }
    return {problem: `it is a truncated JPEG file (${bytes.length} bytes, cut off before its frame header)`};
}

function bmpHeader(bytes: Uint8Array, view: DataView): ImageHeader | UnreadableImage {
    if (bytes.length < 18)
        return {problem: `it is a truncated BMP file (${bytes.length} bytes, too short for its own header)`};
    const infoSize = view.getUint32(14, true);
    // OS/2's 12-byte header has 16-bit sizes; every later one (40, 52, 56, 64, 108, 124 bytes) signed 32-bit ones.
    if (infoSize === 12) {
        if (bytes.length < 22)
            return {problem: `it is a truncated BMP file (${bytes.length} bytes, too short for its own header)`};
        return {mimeType: "image/bmp", width: view.getUint16(18, true), height: view.getUint16(20, true)};
    }
    if (infoSize < 40)
        return {problem: `it is a BMP file with an unknown header of ${infoSize} bytes`};
    if (bytes.length < 26)
        return {problem: `it is a truncated BMP file (${bytes.length} bytes, too short for its own header)`};
    // A negative height is a top-down bitmap.
    return {mimeType: "image/bmp", width: Math.abs(view.getInt32(18, true)), height: Math.abs(view.getInt32(22, true))};
}

/** WebP's first chunk says which kind it is: lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`, which has the canvas size). */
function webpHeader(bytes: Uint8Array, view: DataView): ImageHeader | UnreadableImage {
    const truncated = {problem: `it is a truncated WebP file (${bytes.length} bytes, too short for its own header)`};
    if (bytes.length < 16)
        return truncated;
    const chunk = ascii(bytes, 12, 4);
    const uint24 = (offset: number) => bytes[offset]! | (bytes[offset + 1]! << 8) | (bytes[offset + 2]! << 16);
    switch (chunk) {
        case "VP8 ":
            if (bytes.length < 30)
                return truncated;
            if (bytes[23] !== 0x9d || bytes[24] !== 0x01 || bytes[25] !== 0x2a)
                return {problem: "it is a WebP file whose lossy frame has no start code"};
            return {mimeType: "image/webp", width: view.getUint16(26, true) & 0x3fff, height: view.getUint16(28, true) & 0x3fff};
        case "VP8L": {
            if (bytes.length < 25)
                return truncated;
            if (bytes[20] !== 0x2f)
                return {problem: "it is a WebP file whose lossless stream has no signature"};
            const bits = view.getUint32(21, true);
            return {mimeType: "image/webp", width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1};
        }
        case "VP8X":
            if (bytes.length < 30)
                return truncated;
            return {mimeType: "image/webp", width: uint24(24) + 1, height: uint24(27) + 1};
        default:
            return {problem: `it is a WebP file whose first chunk "${chunk.replace(/[^\x20-\x7e]/g, "?")}" is not VP8, VP8L or VP8X`};
    }
}
