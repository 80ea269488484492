import {readFile} from "node:fs/promises";
import path from "node:path";
import {testModelsDir} from "./testModels.js";

/** An image of the vision fixture (`vision/images/`), as its file's bytes. */
export function fixtureImage(name: string): Promise<Buffer> {
    return readFile(path.join(testModelsDir(), "vision", "images", name));
}

/** A fixture image as a data URI. */
export async function fixtureDataUri(name: string): Promise<string> {
    return `data:${name.endsWith(".jpg") ? "image/jpeg" : "image/png"};base64,${(await fixtureImage(name)).toString("base64")}`;
}

/** Header bytes as the formats lay them out; only the header, no pixels (the check never decodes). */
const le16 = (value: number) => [value & 0xff, (value >> 8) & 0xff];
const le24 = (value: number) => [value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff];
export const le32 = (value: number) => [value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, (value >>> 24) & 0xff];
const be32 = (value: number) => [(value >>> 24) & 0xff, (value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff];
export const bytes = (...parts: (string | number[])[]) => new Uint8Array(parts.flatMap((part) => typeof part === "string" ? [...Buffer.from(part, "latin1")] : part));
const riff = (chunk: string, payload: number[]) => bytes("RIFF", le32(4 + 8 + payload.length), "WEBP", chunk, le32(payload.length), payload);

/** Headers laid out as each format has them, of any size, without pixels: the edge reads only headers. */
export const crafted = {
    gif: (width: number, height: number) => bytes("GIF89a", le16(width), le16(height), [0xf0, 0, 0], [0x3b]),
    bmp: (width: number, height: number) => bytes("BM", le32(54), [0, 0, 0, 0], le32(54), le32(40), le32(width), le32(height), le16(1), le16(24), new Array<number>(24).fill(0)),
    webpLossy: (width: number, height: number) => riff("VP8 ", [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, ...le16(width), ...le16(height), 0, 0]),
    webpLossless: (width: number, height: number) => riff("VP8L", [0x2f, ...le32((width - 1) | ((height - 1) << 14)), 0]),
    webpExtended: (width: number, height: number) => riff("VP8X", [0, 0, 0, 0, ...le24(width - 1), ...le24(height - 1)]),
    png: (width: number, height: number) => bytes([0x89], "PNG\r\n\x1a\n", be32(13), "IHDR", be32(width), be32(height), [8, 2, 0, 0, 0], [0, 0, 0, 0])
};

