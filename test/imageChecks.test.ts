import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {InvalidImageError} from "../native/errors.js";
import {IMAGE_PLACEHOLDER} from "../native/types.js";
import {IMAGE_LIMITS, ImageReader, checkImage, decodeBase64, imageFromDataUri, joinImageParts, readImageHeader} from "../server/images/index.js";
import {bytes, crafted, fixtureImage as fixture, le32} from "./helpers/imageBytes.js";

function assertRefused(action: () => unknown, pattern: RegExp, param = "p"): void {
    assert.throws(action, (error: unknown) => {
        assert.ok(error instanceof InvalidImageError, String(error));
        assert.match(error.message, pattern);
        assert.equal(error.param, param);
        return true;
    });
}

describe("image headers", () => {
    it("reads the format and size of the fixture's PNGs and JPEG from their bytes", async () => {
        assert.deepEqual(readImageHeader(await fixture("red.png")), {mimeType: "image/png", width: 64, height: 64});
        assert.deepEqual(readImageHeader(await fixture("magenta-wide.png")), {mimeType: "image/png", width: 128, height: 32});
        assert.deepEqual(readImageHeader(await fixture("red-large.png")), {mimeType: "image/png", width: 1200, height: 1200});
        assert.deepEqual(readImageHeader(await fixture("yellow.jpg")), {mimeType: "image/jpeg", width: 64, height: 64});
    });

    it("reads WebP (lossy, lossless, extended), GIF and BMP headers", () => {
        assert.deepEqual(readImageHeader(crafted.webpLossy(300, 200)), {mimeType: "image/webp", width: 300, height: 200});
        assert.deepEqual(readImageHeader(crafted.webpLossless(640, 480)), {mimeType: "image/webp", width: 640, height: 480});
        assert.deepEqual(readImageHeader(crafted.webpExtended(4000, 3000)), {mimeType: "image/webp", width: 4000, height: 3000});
        assert.deepEqual(readImageHeader(crafted.gif(20, 10)), {mimeType: "image/gif", width: 20, height: 10});
        assert.deepEqual(readImageHeader(crafted.bmp(33, -17)), {mimeType: "image/bmp", width: 33, height: 17});
    });

    it("says why a file cannot be read: not an image, or cut off before its size", async () => {
        const red = await fixture("red.png");
        const yellow = await fixture("yellow.jpg");
        assert.match((readImageHeader(Buffer.from("hello, world")) as {problem: string}).problem, /not a PNG, JPEG, WebP, GIF or BMP/);
        assert.match((readImageHeader(red.subarray(0, 20)) as {problem: string}).problem, /truncated PNG/);
        assert.match((readImageHeader(yellow.subarray(0, 100)) as {problem: string}).problem, /truncated JPEG/);
        assert.match((readImageHeader(crafted.webpLossy(10, 10).subarray(0, 24)) as {problem: string}).problem, /truncated WebP/);
        assert.match((readImageHeader(crafted.gif(1, 1).subarray(0, 8)) as {problem: string}).problem, /truncated GIF/);
        assert.match((readImageHeader(crafted.bmp(1, 1).subarray(0, 20)) as {problem: string}).problem, /truncated BMP/);
        assert.match((readImageHeader(bytes("RIFF", le32(4), "WEBPVP9 ", le32(0))) as {problem: string}).problem, /not VP8, VP8L or VP8X/);
    });
});

describe("checkImage", () => {
    it("passes an image as its bytes with the type its bytes are, whatever the client left out", async () => {
        const red = await fixture("red.png");
        const image = checkImage(red, {param: "p"});
        assert.equal(image.mimeType, "image/png");
        assert.equal(image.data, red);
        assert.equal(checkImage(await fixture("yellow.jpg"), {param: "p", declared: "image/jpg"}).mimeType, "image/jpeg");
        assert.equal(checkImage(crafted.gif(5, 5), {param: "p", declared: "application/octet-stream"}).mimeType, "image/gif");
    });

    it("refuses empty, zero-sized, enormous, extreme and oversized images", async () => {
        assertRefused(() => checkImage(new Uint8Array(), {param: "p"}), /empty image/);
        assertRefused(() => checkImage(crafted.png(0, 64), {param: "p"}), /0×64 pixels, which has nothing to see/);
        assertRefused(() => checkImage(crafted.gif(64, 0), {param: "p"}), /64×0/);
        assertRefused(() => checkImage(crafted.png(100_000, 100_000), {param: "p"}), /100000×100000 pixels \(10000 megapixels\); an image may have at most 50 megapixels/);
        assertRefused(() => checkImage(crafted.webpExtended(16_000_000, 4), {param: "p"}), /megapixels/);
        assertRefused(() => checkImage(crafted.bmp(10_000, 10), {param: "p"}), /long side may be at most 200 times/);
        const huge = new Uint8Array(IMAGE_LIMITS.maxBytes + 1);
        huge.set(await fixture("red.png"));
        assertRefused(() => checkImage(huge, {param: "p"}), /an image may be at most 20 MiB/);
    });

    it("refuses a declared type that the bytes are not, saying both, and types that are not images", async () => {
        const red = await fixture("red.png");
        assertRefused(() => checkImage(red, {param: "messages[0].content[1]", declared: "image/jpeg"}),
            /^messages\[0\]\.content\[1\] is declared as image\/jpeg, but its bytes are a PNG image \(image\/png\)$/, "messages[0].content[1]");
        const yellow = await fixture("yellow.jpg");
        assertRefused(() => checkImage(yellow, {param: "p", declared: "image/webp"}), /declared as image\/webp, but its bytes are a JPEG/);
        assertRefused(() => checkImage(red, {param: "p", declared: "image/tiff"}), /"image\/tiff", which is not an image type this server reads/);
        assertRefused(() => checkImage(red, {param: "p", declared: "text/plain"}), /not an image type/);
    });

    it("refuses bytes that are no image it knows", () => {
        assertRefused(() => checkImage(Buffer.from("<svg xmlns='http://www.w3.org/2000/svg'/>"), {param: "p"}), /cannot be read as an image: it is not a PNG, JPEG, WebP, GIF or BMP file/);
    });
});

describe("base64 and data URIs", () => {
    it("decodes standard and URL-safe base64, with line breaks, and refuses garbage", async () => {
        const red = await fixture("red.png");
        assert.deepEqual(Buffer.from(decodeBase64(red.toString("base64"), "p")), red);
        assert.deepEqual(Buffer.from(decodeBase64(red.toString("base64url"), "p")), red);
        assert.deepEqual(Buffer.from(decodeBase64(red.toString("base64").replace(/(.{20})/g, "$1\n"), "p")), red);
        assertRefused(() => decodeBase64("not base64 at all!", "p"), /not valid base64/);
        assertRefused(() => decodeBase64("AAAAA", "p"), /not valid base64/);
        assertRefused(() => decodeBase64("", "p"), /empty image/);
        assertRefused(() => decodeBase64("A".repeat(Math.ceil(IMAGE_LIMITS.maxBytes * 4 / 3) + 8), "p"), /at most 20 MiB/);
    });

    it("reads data URIs, checks their type against their bytes, and wants base64", async () => {
        const red = await fixture("red.png");
        const uri = `data:image/png;base64,${red.toString("base64")}`;
        assert.deepEqual(Buffer.from(imageFromDataUri(uri, "p").data), red);
        assert.equal(imageFromDataUri(`data:;base64,${red.toString("base64")}`, "p").mimeType, "image/png");
        assertRefused(() => imageFromDataUri(`data:image/gif;base64,${red.toString("base64")}`, "p"), /declared as image\/gif, but its bytes are a PNG/);
        assertRefused(() => imageFromDataUri("data:image/svg+xml,<svg/>", "p"), /without ;base64/);
        assertRefused(() => imageFromDataUri("data:image/png;base64", "p"), /not a data URI/);
    });

    it("refuses remote URLs unless the server allows them, and other schemes always", async () => {
        const reader = new ImageReader();
        await assert.rejects(reader.fromUrl("https://example.com/cat.png", "p"),
            /remote image URLs are not fetched \(https:\/\/example\.com\/cat\.png\): Hearth does not reach the network for a request; send the image as a data URI or base64, or start the server with --allow-remote-images/);
        await assert.rejects(reader.fromUrl("file:///etc/passwd", "p"), /neither a data URI nor an http\(s\) URL/);
        await assert.rejects(new ImageReader({allowRemote: true}).fromUrl("ftp://example.com/cat.png", "p"), /neither a data URI nor an http\(s\) URL/);
    });
});

describe("joinImageParts", () => {
    it("places one placeholder where each image was, in order, and drops the client's own placeholders", async () => {
        const red = checkImage(await fixture("red.png"), {param: "p"});
        const blue = checkImage(await fixture("blue.png"), {param: "p"});
        const joined = joinImageParts([{text: `Compare${IMAGE_PLACEHOLDER} `}, {image: red}, {text: "with"}, {text: "this:"}, {image: blue}], "\n\n");
        assert.equal(joined.content, `Compare ${IMAGE_PLACEHOLDER}with\n\nthis:${IMAGE_PLACEHOLDER}`);
        assert.deepEqual(joined.images, [red, blue]);
        assert.deepEqual(joinImageParts([{text: `a${IMAGE_PLACEHOLDER}b`}]), {content: "ab"});
    });
});
