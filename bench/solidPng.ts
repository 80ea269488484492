import {deflateSync} from "node:zlib";

/**
 * Solid-colour PNGs made at run time, so that every image a benchmark sends is one the server has not seen
 * (servers cache by the image's bytes or hash), while its size, and so its number of image tokens, stays fixed.
 */

const crcTable = Array.from({length: 256}, (_, byte) => {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++)
        crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
    return crc >>> 0;
});

function crc32(data: Uint8Array): number {
    let crc = 0xffffffff;
    for (const byte of data)
        crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type: string, payload: Uint8Array): Buffer {
    const body = Buffer.concat([Buffer.from(type, "latin1"), payload]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(payload.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
}

/** A `width`×`height` 8-bit RGB PNG of one colour. */
export function solidPng(width: number, height: number, [red, green, blue]: readonly [number, number, number]): Buffer {
    const header = Buffer.alloc(13);
    header.writeUInt32BE(width, 0);
    header.writeUInt32BE(height, 4);
    header.set([8, 2, 0, 0, 0], 8);
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++)
        row.set([red, green, blue], 1 + x * 3);
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        chunk("IHDR", header),
        chunk("IDAT", deflateSync(Buffer.concat(Array.from({length: height}, () => row)))),
        chunk("IEND", new Uint8Array(0))
    ]);
}

/**
 * The `index`th of a sequence of colours, each different from every other for the first 2^24 indices: an odd
 * multiplier is a bijection modulo 2^24, and it scatters neighbouring indices across the colours.
 */
export function nthColour(index: number): [number, number, number] {
    const colour = Number((BigInt(index) * 0x9e3779n + 0x5a17c3n) % 0x1000000n);
    return [colour >> 16, (colour >> 8) & 0xff, colour & 0xff];
}
