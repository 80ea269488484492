import assert from "node:assert/strict";
import {readFile} from "node:fs/promises";
import {after, before, describe, it} from "node:test";
import OpenAI from "openai";
import type {ModelToLoad} from "../native/Engine.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

// The fixture's vision model answers for the mean colour of every image in its context (vision/README in the test
// models): llama.cpp's own llama-server gives these replies and prompt sizes for the same requests.
type Expected = {question: string, no_image: string, images: Record<string, {answer: string, image_tokens: number, n_pos: number}>};

const name = "gemma4-vision-script";
let expected: Expected;
/** llama-server's usage.prompt_tokens for one image and the question: 24 text tokens around the image's own. */
const textTokensAround = 24;

async function dataUri(image: string): Promise<string> {
    const bytes = await readFile(await testModel(`vision/images/${image}`));
    return `data:image/${image.endsWith(".jpg") ? "jpeg" : "png"};base64,${bytes.toString("base64")}`;
}

async function visionModel(): Promise<ModelToLoad & {names: string[]}> {
    return {path: await testModel(`vision/${name}.gguf`), names: [name], projectorPath: await testModel(`vision/mmproj-${name}.gguf`)};
}

type Asked = {text: string, promptTokens: number, cachedTokens: number};

async function ask(client: OpenAI, content: OpenAI.ChatCompletionContentPart[][] | string, replies: string[] = []): Promise<Asked> {
    const turns = typeof content === "string" ? [[{type: "text" as const, text: content}]] : content;
    const messages: OpenAI.ChatCompletionMessageParam[] = [];
    turns.forEach((parts, index) => {
        messages.push({role: "user", content: parts});
        if (index < turns.length - 1)
            messages.push({role: "assistant", content: replies[index] ?? ""});
    });
    const completion = await client.chat.completions.create({model: name, messages, temperature: 0, max_tokens: 16});
    return {
        text: completion.choices[0]!.message.content ?? "",
        promptTokens: completion.usage!.prompt_tokens,
        cachedTokens: completion.usage!.prompt_tokens_details?.cached_tokens ?? 0
    };
}

async function imageTurn(image: string): Promise<OpenAI.ChatCompletionContentPart[]> {
    return [{type: "image_url", image_url: {url: await dataUri(image)}}, {type: "text", text: expected.question}];
}

describe("vision on both decode loops", () => {
    const servers: [string, TestServer][] = [];

    before(async () => {
        expected = JSON.parse(await readFile(await testModel("vision/expected.json"), "utf8")) as Expected;
        servers.push(["native", await startTestServer({models: [await visionModel()], parallel: 2})]);
        servers.push(["javascript", await startTestServer({models: [await visionModel()], parallel: 2, decodeLoop: "javascript"})]);
    });
    after(async () => {
        for (const [, server] of servers)
            await server.close();
    });

    it("gives llama.cpp's replies and prompt sizes for every fixture image", async () => {
        for (const [loop, server] of servers) {
            for (const [image, {answer, image_tokens: imageTokens}] of Object.entries(expected.images)) {
                const reply = await ask(server.client, [await imageTurn(image)]);
                assert.equal(reply.text, answer, `${loop}: ${image}`);
                assert.equal(reply.promptTokens, textTokensAround + imageTokens, `${loop}: ${image}'s prompt, as llama-server counts it`);
            }
            assert.equal((await ask(server.client, "Hello!")).text, expected.no_image, loop);
        }
    });

    it("keeps an image in the slot's cache: the next turn does not evaluate it again", async () => {
        for (const [loop, server] of servers) {
            const first = await ask(server.client, [await imageTurn("green.png")]);
            assert.equal(first.text, "The image is green.", loop);
            const second = await ask(server.client, [await imageTurn("green.png"), [{type: "text", text: "And now?"}]], [first.text]);
            assert.equal(second.text, "The image is green.", `${loop}: the image is still in the context`);
            // Everything up to the end of the first turn's prompt came from the cache, the image's 81 tokens with it.
            assert.ok(second.cachedTokens >= first.promptTokens, `${loop}: ${second.cachedTokens} cached tokens of ${second.promptTokens}`);
        }
    });

    it("sees several images at once, and an image does not disturb a text reply beside it", async () => {
        for (const [loop, server] of servers) {
            const both = await ask(server.client, [[
                {type: "image_url", image_url: {url: await dataUri("red.png")}},
                {type: "image_url", image_url: {url: await dataUri("blue.png")}},
                {type: "text", text: expected.question}
            ]]);
            assert.equal(both.text, "The image is gray.", `${loop}: the mean of red and blue`);
            const alone = await ask(server.client, "Hello!");
            const [withImage, beside] = await Promise.all([ask(server.client, [await imageTurn("red-large.png")]), ask(server.client, "Hello!")]);
            assert.equal(withImage.text, "The image is red.", loop);
            assert.equal(beside.text, alone.text, `${loop}: the text reply beside the image's is what it is alone`);
        }
    });
});

describe("vision and the RAM prompt cache", () => {
    it("restores a conversation with an image after another took the only slot, image and all, on both decode loops", async () => {
        expected ??= JSON.parse(await readFile(await testModel("vision/expected.json"), "utf8")) as Expected;
        for (const decodeLoop of ["auto", "javascript"] as const) {
            const server = await startTestServer({models: [await visionModel()], parallel: 1, decodeLoop});
            try {
                const first = await ask(server.client, [await imageTurn("green.png")]);
                assert.equal((await ask(server.client, "Hello!")).text, expected.no_image, decodeLoop);
                const second = await ask(server.client, [await imageTurn("green.png"), [{type: "text", text: "And now?"}]], [first.text]);
                assert.equal(second.text, "The image is green.", `${decodeLoop}: the image came back with the conversation`);
                assert.ok(second.cachedTokens >= first.promptTokens, `${decodeLoop}: ${second.cachedTokens} cached tokens of ${second.promptTokens}`);
                assert.equal(server.engine.promptCache.stats.hits, 1, decodeLoop);
            } finally {
                await server.close();
            }
        }
    });
});

// The projector on Mesa's software Vulkan device and the text model on the CPU. ggml's Vulkan backend also offloads a
// CPU layer's large matrix products (a batch of 32 tokens or more) to the device; on Debian 12's lavapipe (Mesa 22.3)
// that context's reused descriptor sets keep bindings to buffers ggml has since freed, and that lavapipe reads every
// binding of a set it binds, so the process crashes after an image or two (README, Images). GGML_OP_OFFLOAD_MIN_BATCH
// keeps the text model's work on the CPU, as --gpu-layers 0 means, so only the projector uses the device.
describe("vision on a GPU backend (lavapipe)", () => {
    it("encodes images on the Vulkan device and gives the CPU's replies", async () => {
        const model = await visionModel();
        // Mesa's software Vulkan device, which ggml shows only with GGML_VK_VISIBLE_DEVICES set.
        const server = spawnHearth(["serve", "--model", model.path, "--mmproj", model.projectorPath!, "--port", "0", "--threads", "1", "--parallel", "1",
            "--gpu", "vulkan", "--gpu-layers", "0"], {GGML_VK_VISIBLE_DEVICES: "0", GGML_OP_OFFLOAD_MIN_BATCH: "1000000000"});
        try {
            const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
            await server.waitForOutput(/Ready/);
            const info = await fetch(`${url}/api/server`).then((response) => response.json()) as {backend: {selected: string, decode_loop: string}};
            assert.equal(info.backend.selected, "vulkan", "Vulkan must be usable here (Debian: mesa-vulkan-drivers libvulkan1)");
            assert.equal(info.backend.decode_loop, "native");
            const estimate = await fetch(`${url}/api/estimate?model=${name}&gpu_layers=0`).then((response) => response.json()) as {projector_on_gpu: boolean};
            assert.equal(estimate.projector_on_gpu, true, "the plan puts the projector on the device");
            expected ??= JSON.parse(await readFile(await testModel("vision/expected.json"), "utf8")) as Expected;
            const client = new OpenAI({baseURL: `${url}/v1`, apiKey: "unused"});
            for (const [image, {answer, image_tokens: imageTokens}] of Object.entries(expected.images)) {
                const reply = await ask(client, [await imageTurn(image)]);
                assert.equal(reply.text, answer, image);
                assert.equal(reply.promptTokens, textTokensAround + imageTokens, `${image}'s prompt, as llama-server counts it`);
            }
        } finally {
            if (server.child.exitCode == null && server.child.signalCode == null) {
                server.child.kill("SIGTERM");
                await server.exited;
            }
        }
    });
});
