import assert from "node:assert/strict";
import {after, before, describe, it} from "node:test";
import {crc32} from "node:zlib";
import {nthColour, solidPng} from "../bench/solidPng.js";
import {streamChat} from "../bench/streamClient.js";
import type {ModelToLoad} from "../native/engineTypes.js";
import {readPng} from "./helpers/readPng.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/**
 * The premises of `npm run bench:peer`'s image case: the PNGs it makes at run time are valid images of one colour,
 * each run's differ from every other's, the vision fixture sees them (a new 64×64 and 1200×1200 image answer their
 * colour), and a second turn with the same image reuses the cached prompt, image included.
 */

const dataUri = (png: Uint8Array) => `data:image/png;base64,${Buffer.from(png).toString("base64")}`;
const question = (image: string) => [{role: "user", content: [{type: "image_url", image_url: {url: image}}, {type: "text", text: "What colour is this image?"}]}];

describe("bench:peer's images", () => {
    it("solidPng makes a valid 8-bit RGB PNG of one colour, every chunk's CRC right", () => {
        const png = solidPng(5, 3, [12, 200, 77]);
        const {width, height, pixels} = readPng(png);
        assert.deepEqual([width, height], [5, 3]);
        for (let at = 0; at < pixels.length; at += 3)
            assert.deepEqual([...pixels.subarray(at, at + 3)], [12, 200, 77]);
        for (let at = 8; at < png.length;) {
            const size = png.readUInt32BE(at);
            assert.equal(png.readUInt32BE(at + 8 + size), crc32(png.subarray(at + 4, at + 8 + size)), `the CRC of ${png.toString("latin1", at + 4, at + 8)}`);
            at += 12 + size;
        }
    });

    it("gives each run's images bytes of their own", () => {
        const seen = new Set(Array.from({length: 2002}, (_, index) => solidPng(4, 4, nthColour(index)).toString("base64")));
        assert.equal(seen.size, 2002);
    });

    describe("on the vision fixture", () => {
        let server: TestServer;
        before(async () => {
            const model: ModelToLoad & {names: string[]} = {
                path: await testModel("vision/gemma4-vision-script.gguf"), names: ["bench"],
                projectorPath: await testModel("vision/mmproj-gemma4-vision-script.gguf")
            };
            server = await startTestServer({models: [model], parallel: 1});
        });
        after(async () => {
            await server?.close();
        });
        const chat = (messages: object[]) => streamChat(server.url, {model: "bench", messages, max_tokens: 16, temperature: 0});

        it("answers a new image's colour, and reuses the cached prompt, image included, on the second turn", async () => {
            const image = dataUri(solidPng(64, 64, [250, 10, 10]));
            const first = await chat(question(image));
            assert.equal(first.text, "The image is red.");
            assert.ok(first.ttftMs > 0);
            const second = await chat([...question(image), {role: "assistant", content: first.text}, {role: "user", content: "And now?"}]);
            assert.equal(second.text, "The image is red.");
            // 81 image tokens between the text before and after the image.
            assert.ok((second.cachedTokens ?? 0) > 81, `cached ${second.cachedTokens} of the second turn`);
        });

        it("answers a new 1200x1200 image's colour", async () => {
            assert.equal((await chat(question(dataUri(solidPng(1200, 1200, [10, 10, 250]))))).text, "The image is blue.");
        });
    });
});
