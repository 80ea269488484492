import assert from "node:assert/strict";
import {readFile} from "node:fs/promises";
import path from "node:path";
import {describe, it} from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import {Ollama} from "ollama";
import {fixtureDataUri, fixtureImage} from "./helpers/imageBytes.js";
import {testModel, testModelsDir} from "./helpers/testModels.js";
import {useTestServer} from "./helpers/testServer.js";

/**
 * The vision fixture (`vision/`: a Gemma 4 text model and its gemma4v projector) through every API and its SDK:
 * the greedy replies equal those llama.cpp's llama-mtmd-cli and llama-server give for each image (its
 * `expected.json`), so the images reach the model through llama.cpp's own multimodal library, token for token.
 */

type Expected = {question: string, no_image: string, images: Record<string, {answer: string, image_tokens: number}>};
const expected = JSON.parse(await readFile(path.join(testModelsDir(), "vision", "expected.json"), "utf8")) as Expected;
const model = "gemma4-vision-script";
const vision = {
    path: await testModel("vision/gemma4-vision-script.gguf"),
    names: [model],
    projectorPath: await testModel("vision/mmproj-gemma4-vision-script.gguf")
};
const server = useTestServer({models: [vision], ctxSize: 4096, parallel: 2});
const anthropic = () => new Anthropic({baseURL: server.url, apiKey: "x", maxRetries: 0});
const ollama = () => new Ollama({host: server.url});
const base64 = async (name: string) => (await fixtureImage(name)).toString("base64");
const greedy = {temperature: 0, max_tokens: 16} as const;
/** `temperature` is sent though this SDK's types no longer list it. */
const greedyMessage = (request: Anthropic.MessageCreateParamsNonStreaming & {temperature: number}) => request as Anthropic.MessageCreateParamsNonStreaming;

describe("images through the openai SDK", () => {
    it("each fixture image gets llama.cpp's reply on /v1/chat/completions, counted in the prompt's usage", async () => {
        for (const [name, {answer, image_tokens: imageTokens}] of Object.entries(expected.images)) {
            const reply = await server.client.chat.completions.create({
                model, ...greedy,
                messages: [{role: "user", content: [{type: "image_url", image_url: {url: await fixtureDataUri(name), detail: "auto"}}, {type: "text", text: expected.question}]}]
            });
            assert.equal(reply.choices[0]!.message.content, answer, name);
            assert.equal(reply.choices[0]!.finish_reason, "stop", name);
            assert.ok(reply.usage!.prompt_tokens > imageTokens, `${name}: ${reply.usage!.prompt_tokens} prompt tokens`);
        }
        const text = await server.client.chat.completions.create({model, ...greedy, messages: [{role: "user", content: "Hello!"}]});
        assert.equal(text.choices[0]!.message.content, expected.no_image);
    });

    it("sees several images in one message, and an image from an earlier turn", async () => {
        const two = await server.client.chat.completions.create({
            model, ...greedy,
            messages: [{role: "user", content: [
                {type: "image_url", image_url: {url: await fixtureDataUri("red.png")}},
                {type: "image_url", image_url: {url: await fixtureDataUri("blue.png")}},
                {type: "text", text: expected.question}
            ]}]
        });
        assert.equal(two.choices[0]!.message.content, "The image is gray.");
        const later = await server.client.chat.completions.create({
            model, ...greedy,
            messages: [
                {role: "user", content: [{type: "image_url", image_url: {url: await fixtureDataUri("green.png")}}, {type: "text", text: expected.question}]},
                {role: "assistant", content: expected.images["green.png"]!.answer},
                {role: "user", content: "And now?"}
            ]
        });
        assert.equal(later.choices[0]!.message.content, "The image is green.");
    });

    it("streams the same reply", async () => {
        const stream = await server.client.chat.completions.create({
            model, ...greedy, stream: true,
            messages: [{role: "user", content: [{type: "image_url", image_url: {url: await fixtureDataUri("magenta-wide.png")}}, {type: "text", text: expected.question}]}]
        });
        let content = "";
        for await (const chunk of stream)
            content += chunk.choices[0]?.delta.content ?? "";
        assert.equal(content, expected.images["magenta-wide.png"]!.answer);
    });

    it("input_image on /v1/responses, and a stored response keeps its image for the next turn", async () => {
        const first = await server.client.responses.create({
            model, temperature: 0, max_output_tokens: 16,
            input: [{role: "user", content: [{type: "input_image", image_url: await fixtureDataUri("yellow.jpg"), detail: "auto"}, {type: "input_text", text: expected.question}]}]
        });
        assert.equal(first.output_text, expected.images["yellow.jpg"]!.answer);
        const items = await server.client.responses.inputItems.list(first.id);
        assert.ok(JSON.stringify(items.data).includes(await fixtureDataUri("yellow.jpg")), "the stored input keeps the image");
        const next = await server.client.responses.create({model, temperature: 0, max_output_tokens: 16, previous_response_id: first.id, input: "And now?"});
        assert.equal(next.output_text, "The image is yellow.");
    });
});

describe("images through the Anthropic SDK", () => {
    it("a base64 image block gets llama.cpp's reply, and a screenshot in a tool result is seen too", async () => {
        for (const name of ["red.png", "checker.png", "yellow.jpg"]) {
            const message = await anthropic().messages.create(greedyMessage({
                model, max_tokens: 16, temperature: 0,
                messages: [{role: "user", content: [
                    {type: "image", source: {type: "base64", media_type: name.endsWith(".jpg") ? "image/jpeg" : "image/png", data: await base64(name)}},
                    {type: "text", text: expected.question}
                ]}]
            }));
            const text = message.content.flatMap((block) => block.type === "text" ? [block.text] : []).join("");
            assert.equal(text, expected.images[name]!.answer, name);
        }
        // count_tokens counts the image's tokens as the reply's usage does.
        const messages: Anthropic.MessageParam[] = [{role: "user", content: [
            {type: "image", source: {type: "base64", media_type: "image/png", data: await base64("magenta-wide.png")}},
            {type: "text", text: expected.question}
        ]}];
        const counted = await anthropic().messages.countTokens({model, messages});
        const replied = await anthropic().messages.create(greedyMessage({model, max_tokens: 16, temperature: 0, messages}));
        assert.equal(counted.input_tokens, replied.usage.input_tokens + (replied.usage.cache_read_input_tokens ?? 0));
        assert.ok(counted.input_tokens > expected.images["magenta-wide.png"]!.image_tokens, "the image's 85 tokens are counted");
        const fromTool = await anthropic().messages.create(greedyMessage({
            model, max_tokens: 16, temperature: 0, tools: [{name: "screenshot", input_schema: {type: "object"}}],
            messages: [
                {role: "user", content: "Take a screenshot"},
                {role: "assistant", content: [{type: "tool_use", id: "toolu_1", name: "screenshot", input: {}}]},
                {role: "user", content: [{type: "tool_result", tool_use_id: "toolu_1", content: [{type: "image", source: {type: "base64", media_type: "image/png", data: await base64("blue.png")}}]}]}
            ]
        }));
        assert.equal(fromTool.content.flatMap((block) => block.type === "text" ? [block.text] : []).join(""), "The image is blue.");
    });
});

describe("images through the ollama client", () => {
    it("images on /api/chat and /api/generate get llama.cpp's replies", async () => {
        const chat = await ollama().chat({model, messages: [{role: "user", content: expected.question, images: [await base64("green.png")]}], options: {temperature: 0, num_predict: 16}});
        assert.equal(chat.message.content, expected.images["green.png"]!.answer);
        const generated = await ollama().generate({model, prompt: expected.question, images: [await fixtureImage("red-large.png")], options: {temperature: 0, num_predict: 16}});
        assert.equal(generated.response, expected.images["red-large.png"]!.answer);
        const text = await ollama().generate({model, prompt: "Hello!", options: {temperature: 0, num_predict: 16}});
        assert.equal(text.response, expected.no_image);
    });
});
