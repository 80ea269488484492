import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {chatAbilities} from "../native/chat/chatAbilities.js";
import {testModel} from "./helpers/testModels.js";
import {useTestServer} from "./helpers/testServer.js";

/** What `/api/show` and `/v1/models` say a model can do, as Ollama lists it: completion, vision, tools, thinking. */

const vision = {
    path: await testModel("vision/gemma4-vision-script.gguf"),
    names: ["gemma4-vision-script"],
    projectorPath: await testModel("vision/mmproj-gemma4-vision-script.gguf")
};
const server = useTestServer({modelFiles: ["scripted/qwen3-script.gguf", "scripted/llama3.1-script.gguf", "stories260K.gguf"], ctxSize: 1024, parallel: 1});

describe("model capabilities", () => {
    it("a chat format thinks where node-llama-cpp's wrapper for it has thought segments, and takes tools where its template does", async () => {
        const abilities = async (file: string) => chatAbilities(await testModel(file));
        assert.deepEqual(await abilities("scripted/gemma4-script.gguf"), {tools: true, thinking: true});
        assert.deepEqual(await abilities("scripted/gpt-oss-script.gguf"), {tools: true, thinking: true});
        assert.deepEqual(await abilities("scripted/qwen3-script.gguf"), {tools: true, thinking: true});
        assert.deepEqual(await abilities("scripted/llama3.1-script.gguf"), {tools: true, thinking: false});
        assert.deepEqual(await abilities("stories260K.gguf"), {tools: false, thinking: false});
        assert.deepEqual(await abilities("derived/stories260K-chatml.gguf"), {tools: false, thinking: false});
        assert.deepEqual(await chatAbilities("/nowhere/missing.gguf"), {tools: false, thinking: false});
    });

    it("/api/show and /v1/models list the same capabilities for each served model", async () => {
        const expected: Record<string, string[]> = {
            "qwen3-script": ["completion", "tools", "thinking"],
            "llama3.1-script": ["completion", "tools"],
            stories260K: ["completion"]
        };
        const listed = await (await fetch(`${server.baseURL}/models`)).json() as {data: {id: string, capabilities: string[]}[]};
        for (const [name, capabilities] of Object.entries(expected)) {
            const shown = await (await fetch(`${server.url}/api/show`, {method: "POST", body: JSON.stringify({model: name})})).json() as {capabilities: string[]};
            assert.deepEqual(shown.capabilities, capabilities, name);
            assert.deepEqual(listed.data.find((model) => model.id === name)?.capabilities, capabilities, name);
            assert.deepEqual((await server.client.models.retrieve(name) as unknown as {capabilities: string[]}).capabilities, capabilities, name);
        }
    });
});

describe("a model served with a projector", () => {
    const seeing = useTestServer({models: [vision], ctxSize: 1024, parallel: 1});

    it("says it sees, on /api/show and /v1/models", async () => {
        const capabilities = ["completion", "vision", "tools", "thinking"];
        const shown = await (await fetch(`${seeing.url}/api/show`, {method: "POST", body: JSON.stringify({model: vision.names[0]})})).json() as {capabilities: string[]};
        assert.deepEqual(shown.capabilities, capabilities);
        const listed = await (await fetch(`${seeing.baseURL}/models`)).json() as {data: {id: string, capabilities: string[]}[]};
        assert.deepEqual(listed.data.find((model) => model.id === vision.names[0])?.capabilities, capabilities);
    });
});
