import assert from "node:assert/strict";
import {execFileSync} from "node:child_process";
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {InvalidImageError} from "../native/errors.js";
import {decodeWebp, maxWebpPixels, type DecodedImage} from "../native/vision/decodeWebp.js";
import {decodeWebpInWorker} from "../native/vision/decodeWebpInWorker.js";
import {readPng} from "./helpers/readPng.js";
import {testModelsDir} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

/**
 * WebP files are made at test time from the vision fixture's PNGs by libwebp's own tools (Debian's `webp` package:
 * cwebp, img2webp, webpmux), so each kind of file is what a real encoder writes.
 */
const images = path.join(testModelsDir(), "vision", "images");
let folder = "";

function webpTool(tool: string, ...args: string[]): void {
    try {
        execFileSync(tool, args, {stdio: "pipe"});
    } catch (error) {
        throw new Error(`${tool} failed (Debian's webp package has it): ${(error as Error).message}`);
    }
}

/** Encodes a fixture image (or a file of this test's folder) with cwebp and returns the WebP file's bytes. */
function cwebp(source: string, ...options: string[]): Uint8Array {
    const output = path.join(folder, `${path.basename(source)}-${options.join("")}.webp`);
    webpTool("cwebp", ...options, path.isAbsolute(source) ? source : path.join(images, source), "-o", output);
    return readFileSync(output);
}

/** A PAM file (RGBA, which cwebp reads) of `width`×`height` pixels, each `pixel(x, y)`. */
function pam(name: string, width: number, height: number, pixel: (x: number, y: number) => number[]): string {
    const body: number[] = [];
    for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++)
            body.push(...pixel(x, y));
    const file = path.join(folder, name);
    writeFileSync(file, Buffer.concat([
        Buffer.from(`P7\nWIDTH ${width}\nHEIGHT ${height}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n`),
        Buffer.from(body)
    ]));
    return file;
}

/** The mean colour of a rectangle of an image (the whole image by default). */
function meanColour(image: DecodedImage, x0 = 0, y0 = 0, x1 = image.width, y1 = image.height): number[] {
    const sum = [0, 0, 0];
    for (let y = y0; y < y1; y++)
        for (let x = x0; x < x1; x++)
            for (let channel = 0; channel < 3; channel++)
                sum[channel]! += image.pixels[(y * image.width + x) * 3 + channel]!;
    return sum.map((total) => total / ((x1 - x0) * (y1 - y0)));
}

function assertColourNear(actual: number[], expected: number[], tolerance: number, what: string): void {
    assert.ok(actual.every((value, channel) => Math.abs(value - expected[channel]!) <= tolerance),
        `${what}: mean colour ${actual.map((value) => value.toFixed(1)).join(",")}, expected ${expected.join(",")} ±${tolerance}`);
}

/** Whether a WebP file holds a chunk (to be sure the encoder wrote the kind of file a test means). */
const hasChunk = (file: Uint8Array, fourCC: string) => Buffer.from(file).includes(fourCC, 12, "latin1");

const fixtures = ["red.png", "green.png", "blue.png", "checker.png", "magenta-wide.png", "red-large.png"];

describe("WebP decoding", () => {
    before(() => {
        folder = mkdtempSync(path.join(os.tmpdir(), "hearth-webp-"));
    });
    after(() => rmSync(folder, {recursive: true, force: true}));

    it("decodes lossless (VP8L) files to exactly the source PNG's pixels", () => {
        for (const name of fixtures) {
            const webp = cwebp(name, "-lossless", "-exact");
            assert.ok(hasChunk(webp, "VP8L"), name);
            const decoded = decodeWebp(webp);
            const source = readPng(readFileSync(path.join(images, name)));
            assert.deepEqual([decoded.width, decoded.height], [source.width, source.height], name);
            assert.equal(decoded.pixels.length, source.width * source.height * 3, name);
            assert.ok(Buffer.from(decoded.pixels).equals(Buffer.from(source.pixels)), `${name}: the pixels differ from the PNG's`);
        }
    });

    it("decodes lossy (VP8) files to the source PNG's size and mean colour", () => {
        for (const name of fixtures) {
            const webp = cwebp(name, "-q", "90");
            assert.ok(hasChunk(webp, "VP8 "), name);
            const decoded = decodeWebp(webp);
            const source = readPng(readFileSync(path.join(images, name)));
            assert.deepEqual([decoded.width, decoded.height], [source.width, source.height], name);
            assertColourNear(meanColour(decoded), meanColour(source), 4, name);
        }
    });

    it("drops alpha without compositing, as stb_image does for three channels (VP8L and VP8X with ALPH)", () => {
        // Left half opaque red, right half fully transparent blue: the transparent pixels keep their own colour.
        const source = pam("alpha.pam", 64, 64, (x) => x < 32 ? [255, 0, 0, 255] : [0, 0, 255, 0]);
        const lossless = decodeWebp(cwebp(source, "-lossless", "-exact"));
        assert.deepEqual([lossless.width, lossless.height], [64, 64]);
        assert.deepEqual(meanColour(lossless, 0, 0, 32, 64), [255, 0, 0]);
        assert.deepEqual(meanColour(lossless, 32, 0, 64, 64), [0, 0, 255]);

        const file = cwebp(source, "-q", "90", "-exact");
        assert.ok(hasChunk(file, "VP8X") && hasChunk(file, "ALPH"), "cwebp wrote an extended lossy file with alpha");
        const lossy = decodeWebp(file);
        assert.deepEqual([lossy.width, lossy.height], [64, 64]);
        assertColourNear(meanColour(lossy, 0, 0, 28, 64), [255, 0, 0], 6, "opaque half");
        assertColourNear(meanColour(lossy, 36, 0, 64, 64), [0, 0, 255], 6, "transparent half");
    });

    it("decodes an animation's first frame on its canvas (VP8X with ANIM and ANMF)", () => {
        const animation = path.join(folder, "red-then-blue.webp");
        webpTool("img2webp", "-lossless", path.join(images, "red.png"), "-d", "100", path.join(images, "blue.png"), "-o", animation);
        const decoded = decodeWebp(readFileSync(animation));
        assert.deepEqual([decoded.width, decoded.height], [64, 64]);
        assert.deepEqual(meanColour(decoded), [255, 0, 0]);

        // A first frame smaller than the canvas lies at its offset on a transparent (black) canvas; with alpha, a
        // blended frame leaves the canvas where it is fully transparent, and an unblended one keeps its own colour.
        writeFileSync(path.join(folder, "red.webp"), cwebp("red.png", "-lossless"));
        writeFileSync(path.join(folder, "magenta.webp"), cwebp("magenta-wide.png", "-lossless"));
        const halfTransparent = pam("half.pam", 32, 16, (x) => x < 16 ? [0, 255, 0, 255] : [0, 0, 255, 0]);
        writeFileSync(path.join(folder, "half.webp"), cwebp(halfTransparent, "-q", "90", "-exact"));
        const frames = (first: string, at: string) => {
            const output = path.join(folder, `${first}${at}.webp`);
            webpTool("webpmux", "-frame", path.join(folder, first), at, "-frame", path.join(folder, "magenta.webp"), "+100+0+0",
                "-loop", "0", "-bgcolor", "255,255,255,255", "-o", output);
            return readFileSync(output);
        };
        const offset = decodeWebp(frames("red.webp", "+100+16+8"));
        assert.deepEqual([offset.width, offset.height], [128, 72]);
        assert.deepEqual(meanColour(offset, 16, 8, 80, 72), [255, 0, 0]);
        assert.deepEqual(meanColour(offset, 0, 0, 128, 8), [0, 0, 0]);
        assert.deepEqual(meanColour(offset, 80, 0, 128, 72), [0, 0, 0]);

        const blended = frames("half.webp", "+100+2+4+0+b");
        assert.ok(hasChunk(blended, "ALPH"), "the frame is lossy with alpha");
        const blendedImage = decodeWebp(blended);
        assert.deepEqual([blendedImage.width, blendedImage.height], [128, 32]);
        assertColourNear(meanColour(blendedImage, 2, 4, 14, 20), [0, 255, 0], 6, "opaque part");
        assert.deepEqual(meanColour(blendedImage, 18, 4, 34, 20), [0, 0, 0]);
        assert.deepEqual(meanColour(blendedImage, 34, 0, 128, 32), [0, 0, 0]);
        const unblended = decodeWebp(frames("half.webp", "+100+2+4+0-b"));
        assertColourNear(meanColour(unblended, 20, 4, 34, 20), [0, 0, 255], 6, "unblended transparent part");
    });

    it("refuses files that are not WebP, truncated or corrupt with InvalidImageError", () => {
        const lossy = cwebp("checker.png", "-q", "90");
        const lossless = cwebp("checker.png", "-lossless");
        const refusals: [string, Uint8Array, RegExp][] = [
            ["empty", new Uint8Array(0), /not a WebP file/],
            ["a PNG", readFileSync(path.join(images, "red.png")), /not a WebP file/],
            ["truncated", lossy.subarray(0, lossy.length >> 1), /truncated/],
            ["header only", lossless.subarray(0, 12), /truncated/],
            ["lossy data cut short", withBitstreamCut(lossy), /corrupt/],
            ["lossless data cut short", withBitstreamCut(lossless), /corrupt/],
            ["a lossy frame tag that is not VP8's", withByte(lossy, 20 + 3, 0), /corrupt VP8/],
            ["a lossless signature that is not VP8L's", withByte(lossless, 20, 0), /corrupt VP8L/]
        ];
        for (const [what, file, message] of refusals)
            assert.throws(() => decodeWebp(file), (error: unknown) => error instanceof InvalidImageError && message.test(error.message), what);
    });

    it("never fails otherwise on any truncation or any flipped byte of real files", () => {
        const source = pam("small.pam", 16, 8, (x, y) => [x * 16, y * 32, 128, x < 8 ? 255 : 100]);
        for (const file of [cwebp(source, "-q", "90"), cwebp(source, "-lossless")]) {
            const variants = [
                ...Array.from({length: file.length}, (_, length) => file.subarray(0, length)),
                ...Array.from({length: file.length}, (_, at) => withByte(file, at, file[at]! ^ 0xff))
            ];
            for (const variant of variants) {
                try {
                    const decoded = decodeWebp(variant);
                    assert.equal(decoded.pixels.length, decoded.width * decoded.height * 3);
                } catch (error) {
                    assert.ok(error instanceof InvalidImageError, `${(error as Error).name}: ${(error as Error).message}`);
                }
            }
        }
    });

    it("refuses an image over the pixel limit from its header, before decoding", () => {
        // A lossless header claiming 16384×16384 pixels, with no pixel data after it.
        const header = Buffer.alloc(5);
        header[0] = 0x2f;
        header.writeUInt32LE((16383 | (16383 << 14)) >>> 0, 1);
        const file = riff(["VP8L", header]);
        assert.ok(16384 * 16384 > maxWebpPixels);
        assert.throws(() => decodeWebp(file), (error: unknown) => error instanceof InvalidImageError && /16384×16384 pixels \(268\.4 megapixels\)/.test(error.message));

        // An animation's canvas counts, whatever its first frame's size.
        const vp8x = Buffer.alloc(10);
        vp8x[0] = 0x02;
        vp8x.writeUIntLE(9999, 4, 3);
        vp8x.writeUIntLE(9999, 7, 3);
        assert.throws(() => decodeWebp(riff(["VP8X", vp8x])), (error: unknown) => error instanceof InvalidImageError && /10000×10000 pixels/.test(error.message));
    });
});

/** A large lossy WebP file of `width`×`height` pixels (a gradient), made quickly: long to decode, quick to encode. */
function largeWebp(width: number, height: number): Uint8Array {
    const pixels = Buffer.alloc(width * height * 3);
    for (let at = 0, pixel = 0; at < pixels.length; at += 3, pixel++) {
        pixels[at] = pixel % 251;
        pixels[at + 1] = Math.floor(pixel / width) % 253;
        pixels[at + 2] = 128;
    }
    const source = path.join(folder, `large-${width}x${height}.ppm`);
    writeFileSync(source, Buffer.concat([Buffer.from(`P6\n${width} ${height}\n255\n`), pixels]));
    return cwebp(source, "-quiet", "-q", "50", "-m", "0");
}

/** How long, at most, the event loop was held up while `work` ran: the longest gap between ticks of a 1 ms timer. */
async function longestStall<T>(work: () => Promise<T>): Promise<{result: T, stallMs: number}> {
    let stallMs = 0;
    let last = performance.now();
    const timer = setInterval(() => {
        const now = performance.now();
        stallMs = Math.max(stallMs, now - last);
        last = now;
    }, 1);
    try {
        const result = await work();
        return {result, stallMs: Math.max(stallMs, performance.now() - last)};
    } finally {
        clearInterval(timer);
    }
}

describe("WebP decoding on a thread of its own", () => {
    before(() => {
        folder = mkdtempSync(path.join(os.tmpdir(), "hearth-webp-thread-"));
    });
    after(() => rmSync(folder, {recursive: true, force: true}));

    it("gives the same pixels and the same InvalidImageError, and leaves the event loop free meanwhile", async () => {
        const lossless = cwebp("checker.png", "-lossless", "-exact");
        const image = await decodeWebpInWorker(lossless);
        assert.deepEqual([image.width, image.height], [64, 64]);
        assert.ok(Buffer.from(image.pixels).equals(Buffer.from(decodeWebp(lossless).pixels)));
        const lossy = cwebp("checker.png", "-q", "90");
        for (const [what, file] of [["truncated", lossy.subarray(0, lossy.length >> 1)], ["cut short", withBitstreamCut(lossy)], ["a PNG", readFileSync(path.join(images, "red.png"))]] as const) {
            const message = (() => {
                try {
                    decodeWebp(file);
                } catch (error) {
                    return (error as Error).message;
                }
                throw new Error(`${what} decoded`);
            })();
            await assert.rejects(decodeWebpInWorker(file), (error: unknown) => error instanceof InvalidImageError && error.message === message, what);
        }
        assert.ok(Buffer.from(lossless).equals(cwebp("checker.png", "-lossless", "-exact")), "the caller's bytes are left as they were");

        const large = largeWebp(4000, 3000);
        const onTheLoop = await longestStall(async () => decodeWebp(large));
        const onItsThread = await longestStall(() => decodeWebpInWorker(large));
        assert.ok(Buffer.from(onItsThread.result.pixels).equals(Buffer.from(onTheLoop.result.pixels)), "the same pixels");
        assert.ok(onTheLoop.stallMs > 200, `decoding 12 megapixels on the event loop holds it up (${onTheLoop.stallMs.toFixed(0)} ms)`);
        assert.ok(onItsThread.stallMs < onTheLoop.stallMs / 4,
            `on its thread the event loop is held up ${onItsThread.stallMs.toFixed(0)} ms at most, against ${onTheLoop.stallMs.toFixed(0)} ms`);
    });
});

describe("WebP images on the server", () => {
    let server: TestServer;
    const model = "gemma4-vision-script";
    const ask = (webp: Uint8Array) => fetch(`${server.baseURL}/chat/completions`, {
        method: "POST", headers: {"content-type": "application/json"},
        body: JSON.stringify({model, max_tokens: 16, temperature: 0, messages: [{role: "user", content: [
            {type: "image_url", image_url: {url: `data:image/webp;base64,${Buffer.from(webp).toString("base64")}`}},
            {type: "text", text: "What colour is this image?"}
        ]}]})
    });
    before(async () => {
        folder = mkdtempSync(path.join(os.tmpdir(), "hearth-webp-server-"));
        server = await startTestServer({modelFiles: [`vision/${model}.gguf`], ctxSize: 4096, parallel: 2});
    });
    after(async () => {
        await server?.close();
        rmSync(folder, {recursive: true, force: true});
    });

    it("sees a WebP image as its PNG, refuses a corrupt one with a 400, and answers /health while a large one is decoded", async () => {
        const red = await ask(cwebp("red.png", "-lossless"));
        assert.equal(red.status, 200);
        assert.equal(((await red.json()) as {choices: {message: {content: string}}[]}).choices[0]!.message.content, "The image is red.");

        const corrupt = await ask(withBitstreamCut(cwebp("checker.png", "-q", "90")));
        assert.equal(corrupt.status, 400);
        const refusal = (await corrupt.json()) as {error: {code: string, message: string}};
        assert.equal(refusal.error.code, "invalid_image");
        assert.match(refusal.error.message, /corrupt: libwebp could not decode it/);

        const large = largeWebp(4000, 3000);
        const onTheLoop = await longestStall(async () => decodeWebp(large));
        let answered = false;
        const asked = ask(large).then(async (response) => {
            answered = true;
            return response;
        });
        const healthMs: number[] = [];
        while (!answered) {
            const start = performance.now();
            assert.equal((await fetch(`${server.url}/health`)).status, 200);
            healthMs.push(performance.now() - start);
            await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal((await asked).status, 200);
        assert.ok(healthMs.length > 3, `/health was asked ${healthMs.length} times while the image was decoded and seen`);
        assert.ok(Math.max(...healthMs) < onTheLoop.stallMs / 3,
            `/health answered within ${Math.max(...healthMs).toFixed(0)} ms, against ${onTheLoop.stallMs.toFixed(0)} ms to decode the image on the event loop`);
    });
});

function withByte(file: Uint8Array, at: number, value: number): Uint8Array {
    const copy = Uint8Array.from(file);
    copy[at] = value;
    return copy;
}

/** A simple file with its one bitstream chunk cut to half, its sizes made consistent: the container is sound. */
function withBitstreamCut(file: Uint8Array): Uint8Array {
    const bytes = Buffer.from(file);
    const fourCC = bytes.toString("latin1", 12, 16);
    const payload = bytes.subarray(20, 20 + bytes.readUInt32LE(16));
    return riff([fourCC, payload.subarray(0, payload.length >> 1)]);
}

function riff(...chunks: [string, Uint8Array][]): Uint8Array {
    const body = Buffer.concat(chunks.flatMap(([fourCC, payload]) => {
        const size = Buffer.alloc(4);
        size.writeUInt32LE(payload.length);
        return [Buffer.from(fourCC, "latin1"), size, payload, Buffer.alloc(payload.length & 1)];
    }));
    const size = Buffer.alloc(4);
    size.writeUInt32LE(body.length + 4);
    return Buffer.concat([Buffer.from("RIFF"), size, Buffer.from("WEBP"), body]);
}
