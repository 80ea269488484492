import assert from "node:assert/strict";
import {mkdtemp, readdir, rm, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {getLlama, readGgufFileInfo} from "node-llama-cpp";
import type {LlamaModel} from "node-llama-cpp";
import {startFakeHub} from "./helpers/fakeHub.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {splitGguf} from "./helpers/splitGguf.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

const REPO = "ggml-org/stories-split-GGUF";
const NAME = `hf.co/${REPO}:Q8_0`;
const ignoreKeys = ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"];

async function greedy(model: LlamaModel, prompt: string, maxTokens: number): Promise<string> {
    const context = await model.createContext({contextSize: 256, threads: 1});
    try {
        const tokens = [];
        for await (const token of context.getSequence().evaluate([model.tokens.bos!, ...model.tokenize(prompt)], {temperature: 0})) {
            tokens.push(token);
            if (tokens.length >= maxTokens)
                break;
        }
        return model.detokenize(tokens);
    } finally {
        await context.dispose();
    }
}

describe("split GGUF models", () => {
    let dir: string;
    before(async () => {
        dir = await mkdtemp(path.join(os.tmpdir(), "hearth-split-"));
    });
    after(async () => {
        await rm(dir, {recursive: true, force: true});
    });

    it("splits a model the way gguf-split does, and node-llama-cpp reads and runs it from part 1", async () => {
        const source = await testModel("stories260K.gguf");
        const parts = await splitGguf(source, path.join(dir, "f32"), 3);
        assert.deepEqual(parts.map((part) => path.basename(part)),
            ["stories260K-00001-of-00003.gguf", "stories260K-00002-of-00003.gguf", "stories260K-00003-of-00003.gguf"]);

        const original = await readGgufFileInfo(source, {ignoreKeys});
        const split = await readGgufFileInfo(parts[0]!, {ignoreKeys});
        assert.equal(split.splicedParts, 3);
        const {split: splitKeys, ...metadata} = split.metadata as unknown as Record<string, unknown>;
        assert.deepEqual(splitKeys, {no: 0, count: 3, tensors: {count: 48}});
        assert.deepEqual(metadata, original.metadata);
        const shape = (tensors: typeof original.tensorInfo) => tensors?.map(({name, dimensions, ggmlType}) => ({name, dimensions, ggmlType}));
        assert.deepEqual(shape(split.fullTensorInfo), shape(original.tensorInfo));
        assert.ok(split.tensorInfo!.length < 48);
        const last = await readGgufFileInfo(parts[2]!, {spliceSplitFiles: false});
        assert.deepEqual(last.metadata as unknown, {split: {no: 2, count: 3, tensors: {count: 48}}});
        assert.equal(last.tensorInfo![0]!.offset, 0);

        const llama = await getLlama({gpu: false, build: "never"});
        try {
            const model = await llama.loadModel({modelPath: parts[0]!});
            try {
                const text = await greedy(model, "Once upon a time", 12);
                assert.match(text, /Lily/);
                const unsplit = await llama.loadModel({modelPath: source});
                try {
                    assert.equal(await greedy(unsplit, "Once upon a time", 12), text);
                } finally {
                    await unsplit.dispose();
                }
            } finally {
                await model.dispose();
            }
        } finally {
            await llama.dispose();
        }
    });

    describe("pulled from the Hub as one model", () => {
        let hub: FakeHub;
        let server: TestServer;
        let parts: string[];

        before(async () => {
            parts = await splitGguf(await testModel("derived/stories260K-Q8_0.gguf"), path.join(dir, "q8"), 3);
            hub = await startFakeHub([{
                id: REPO,
                files: [
                    ...parts.map((part) => ({path: path.basename(part), source: part})),
                    {path: "README.md", source: Buffer.from("# stories260K, split in 3\n")}
                ]
            }]);
            server = await startTestServer({models: [], home: path.join(dir, "home"), hub: {endpoint: hub.url, token: undefined}});
        });
        after(async () => {
            await server?.close();
            await hub?.close();
        });

        it("lists the parts as one quantization with their total size", async () => {
            const sizes = await Promise.all(parts.map(async (part) => (await stat(part)).size));
            const response = await fetch(`${server.url}/api/hub/files?repo=${REPO}`);
            assert.equal(response.status, 200);
            const listing = await response.json() as {quantizations: {name: string, quantization: string, size: number, files: {path: string, size: number}[], fit: {fits: boolean, layers_total: number}}[]};
            assert.equal(listing.quantizations.length, 1);
            const [entry] = listing.quantizations;
            assert.equal(entry!.name, NAME);
            assert.equal(entry!.quantization, "Q8_0");
            assert.deepEqual(entry!.files.map((file) => file.path), parts.map((part) => path.basename(part)));
            assert.deepEqual(entry!.files.map((file) => file.size), sizes);
            assert.equal(entry!.size, sizes.reduce((sum, size) => sum + size, 0));
            // Its fit comes from the headers of all three parts, read before anything is downloaded.
            assert.equal(entry!.fit.fits, true);
            assert.equal(entry!.fit.layers_total, 6);
            const headerReads = hub.requests.filter((request) => request.path.startsWith("/cdn/"));
            assert.equal(headerReads.length, 3);
            assert.ok(headerReads.every((request) => request.range?.startsWith("bytes=0-")));
        });

        it("pulls all parts, lists the model with their total size and completes with it", async () => {
            const requestsBefore = hub.requests.length;
            const pulled = await fetch(`${server.url}/api/pull`, {
                method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: NAME, stream: false})
            });
            assert.equal(pulled.status, 200, await pulled.text());
            const cdnPaths = hub.requests.slice(requestsBefore).filter((request) => request.path.startsWith("/cdn/")).map((request) => new URL(request.path, hub.url).searchParams.get("path"));
            assert.deepEqual(cdnPaths, parts.map((part) => path.basename(part)));

            const total = (await Promise.all(parts.map((part) => stat(part)))).reduce((sum, stats) => sum + stats.size, 0);
            const tags = await (await fetch(`${server.url}/api/tags`)).json() as {models: {name: string, size: number, details: {quantization_level: string}}[]};
            assert.deepEqual(tags.models.map((model) => model.name), [NAME]);
            assert.equal(tags.models[0]!.size, total);
            assert.equal(tags.models[0]!.details.quantization_level, "Q8_0");
            assert.equal(server.library.filePaths(server.library.get(NAME)).length, 3);

            const completion = await server.client.completions.create({model: NAME, prompt: "Once upon a time", max_tokens: 12, temperature: 0});
            assert.match(completion.choices[0]!.text, /Lily/);
        });

        it("deletes every part", async () => {
            const files = server.library.filePaths(server.library.get(NAME));
            const deleted = await fetch(`${server.url}/api/delete`, {
                method: "DELETE", headers: {"content-type": "application/json"}, body: JSON.stringify({model: NAME})
            });
            assert.equal(deleted.status, 200, await deleted.text());
            for (const file of files)
                await assert.rejects(stat(file), {code: "ENOENT"});
            assert.deepEqual(await readdir(server.library.modelsDir), []);
        });

        it("imports a local split model from its first part, with every part, and refuses a later part", async () => {
            await assert.rejects(server.library.import(parts[1]!), /is part 2 of a split model; import its first part/);
            const model = await server.library.import(parts[0]!, "stories-split");
            assert.deepEqual(model.files.map((file) => file.path), [1, 2, 3].map((part) => `local/stories-split-0000${part}-of-00003.gguf`));
            const completion = await server.client.completions.create({model: "stories-split", prompt: "Once upon a time", max_tokens: 12, temperature: 0});
            assert.match(completion.choices[0]!.text, /Lily/);
        });
    });
});
