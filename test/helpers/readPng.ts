import {inflateSync} from "node:zlib";

/**
 * The RGB pixels of a non-interlaced 8-bit RGB or palette PNG (what the vision fixture's images are), to compare
 * decoded images with their source.
 */
export function readPng(file: Uint8Array): {width: number, height: number, pixels: Uint8Array} {
    const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
    let width = 0, height = 0, bitDepth = 0, colourType = 0;
    let palette: Buffer = Buffer.alloc(0);
    const compressed: Buffer[] = [];
    for (let at = 8; at < bytes.length;) {
        const size = bytes.readUInt32BE(at);
        const type = bytes.toString("latin1", at + 4, at + 8);
        const data = bytes.subarray(at + 8, at + 8 + size);
        if (type === "IHDR") {
            [width, height, bitDepth, colourType] = [data.readUInt32BE(0), data.readUInt32BE(4), data[8]!, data[9]!];
            if (data[12] !== 0 || !(colourType === 2 && bitDepth === 8 || colourType === 3))
                throw new Error(`readPng reads 8-bit RGB and palette PNGs, not colour type ${colourType} at ${bitDepth} bits, interlace ${data[12]}`);
        } else if (type === "PLTE")
            palette = data;
        else if (type === "IDAT")
            compressed.push(data);
        at += 12 + size;
    }
    const raw = inflateSync(Buffer.concat(compressed));
    const bitsPerPixel = colourType === 2 ? 24 : bitDepth;
    const stride = Math.ceil(width * bitsPerPixel / 8);
    const distance = Math.max(1, bitsPerPixel / 8);
    const rows: Buffer[] = [];
    let previous = Buffer.alloc(stride);
    for (let y = 0; y < height; y++) {
        const filter = raw[y * (stride + 1)]!;
        const row = Buffer.from(raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1)));
        for (let x = 0; x < stride; x++) {
            const left = x >= distance ? row[x - distance]! : 0;
            const up = previous[x]!;
            const upLeft = x >= distance ? previous[x - distance]! : 0;
            const predictor = [0, left, up, (left + up) >> 1, paeth(left, up, upLeft)][filter];
            if (predictor == null)
                throw new Error(`readPng: unknown filter ${filter}`);
            row[x] = (row[x]! + predictor) & 0xff;
        }
        rows.push(row);
        previous = row;
    }
    const pixels = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++) {
            const row = rows[y]!;
            if (colourType === 2)
                pixels.set(row.subarray(x * 3, x * 3 + 3), (y * width + x) * 3);
            else {
                const bit = x * bitDepth;
                const index = (row[bit >> 3]! >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
                pixels.set(palette.subarray(index * 3, index * 3 + 3), (y * width + x) * 3);
            }
        }
    return {width, height, pixels};
}

function paeth(left: number, up: number, upLeft: number): number {
    const estimate = left + up - upLeft;
    const [toLeft, toUp, toUpLeft] = [Math.abs(estimate - left), Math.abs(estimate - up), Math.abs(estimate - upLeft)];
    return toLeft <= toUp && toLeft <= toUpLeft ? left : toUp <= toUpLeft ? up : upLeft;
}
