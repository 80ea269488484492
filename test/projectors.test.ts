import assert from "node:assert/strict";
import {existsSync} from "node:fs";
import {mkdtemp, readFile, readdir, rm, stat, symlink} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import Database from "better-sqlite3";
import {Ollama} from "ollama";
import {DownloadManager, HubClient, Library, sha256Of} from "../models/index.js";
import {chooseProjector, findProjectorBeside} from "../models/findProjector.js";
import {ConfigError} from "../server/config.js";
import {eventually} from "./helpers/eventually.js";
import {startFakeHub} from "./helpers/fakeHub.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

const GEMMA = "ggml-org/gemma-3-4b-it-GGUF";
const STORIES = "ggml-org/stories260K-GGUF";
const PROJECTOR_IN_LIBRARY = `hf.co/${GEMMA}/mmproj-model-f16.gguf`;

/**
 * A vision repo as ggml-org publishes them: quantizations of the model, and its projector in F16 and Q8_0. The files
 * are the vision fixture's; the "Q8_0" projector is a cut-off copy, smaller than the F16 one, so a pull that took the
 * smallest projector would take it (and fail to verify it as one).
 */
async function fakeHubWithVision(): Promise<FakeHub> {
    const model = await testModel("vision/gemma4-vision-script.gguf");
    const projector = await testModel("vision/mmproj-gemma4-vision-script.gguf");
    return startFakeHub([{
        id: GEMMA,
        files: [
            {path: "gemma-3-4b-it-Q4_K_M.gguf", source: model},
            {path: "gemma-3-4b-it-Q8_0.gguf", source: model},
            {path: "mmproj-model-f16.gguf", source: projector},
            {path: "mmproj-model-Q8_0.gguf", source: (await readFile(projector)).subarray(0, 200_000)},
            {path: "README.md", source: Buffer.from("# gemma-3-4b-it\n")}
        ]
    }, {id: STORIES, files: [{path: "stories260K-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")}]}]);
}

/** An audio model's projector as llama.cpp's converter writes its header: architecture `clip`, an audio encoder and no vision one (no tensors). */
function audioProjector(): Buffer {
    const u32 = (value: number) => Buffer.from(new Uint32Array([value]).buffer);
    const u64 = (value: number) => Buffer.from(new BigUint64Array([BigInt(value)]).buffer);
    const text = (value: string) => Buffer.concat([u64(Buffer.byteLength(value)), Buffer.from(value)]);
    const [stringType, boolType] = [8, 7];
    return Buffer.concat([
        Buffer.from("GGUF"), u32(3), u64(0), u64(3),
        text("general.architecture"), u32(stringType), text("clip"),
        text("clip.has_audio_encoder"), u32(boolType), Buffer.from([1]),
        text("clip.has_vision_encoder"), u32(boolType), Buffer.from([0])
    ]);
}

/** Every file under a folder, relative to it. */
async function filesUnder(folder: string): Promise<string[]> {
    const entries = await readdir(folder, {recursive: true, withFileTypes: true}).catch(() => []);
    return entries.filter((entry) => entry.isFile()).map((entry) => path.relative(folder, path.join(entry.parentPath, entry.name))).sort();
}

type HubFiles = {quantizations: {quantization: string, vision: boolean, projector: {path: string, size: number, sha256: string} | null, fit: {projector_bytes: number} | null}[]};

describe("projectors from the Hub", () => {
    let hub: FakeHub;
    let server: TestServer;
    let ollama: Ollama;
    let projectorSha256: string;
    const projectorDownloads = () => hub.requests.filter((request) => request.path.startsWith("/cdn/") && request.path.includes("mmproj")).map((request) => request.path);

    before(async () => {
        hub = await fakeHubWithVision();
        server = await startTestServer({models: [], home: await mkdtemp(path.join(os.tmpdir(), "hearth-projectors-")), hub: {endpoint: hub.url, token: undefined}});
        ollama = new Ollama({host: server.url});
        projectorSha256 = await sha256Of(await testModel("vision/mmproj-gemma4-vision-script.gguf"));
    });
    after(async () => {
        await server.close();
        await hub.close();
    });

    it("lists which quantizations can see: those of a repo with a projector, counted in whether they fit", async () => {
        const gemma = await (await fetch(`${server.url}/api/hub/files?repo=${GEMMA}`)).json() as HubFiles;
        assert.deepEqual(gemma.quantizations.map((entry) => entry.quantization).sort(), ["Q4_K_M", "Q8_0"], "projectors are not quantizations");
        for (const entry of gemma.quantizations) {
            assert.equal(entry.vision, true);
            assert.deepEqual(entry.projector, {path: "mmproj-model-f16.gguf", size: 686_912, sha256: projectorSha256}, "the F16 projector, not the smaller Q8_0 one");
            assert.equal(entry.fit?.projector_bytes, 686_912);
        }
        const stories = await (await fetch(`${server.url}/api/hub/files?repo=${STORIES}`)).json() as HubFiles;
        assert.deepEqual(stories.quantizations.map((entry) => [entry.vision, entry.projector, entry.fit?.projector_bytes]), [[false, null, 0]]);
    });

    it("pulls a quantization with its projector, verified, into a library model that sees; a second quantization shares it, and it goes with the last", async () => {
        const q4 = `hf.co/${GEMMA}:Q4_K_M`;
        const q8 = `hf.co/${GEMMA}:Q8_0`;
        hub.requests.length = 0;
        const progress = [];
        for await (const part of await ollama.pull({model: q4, stream: true}))
            progress.push(part);
        assert.equal(progress.at(-1)!.status, "success");
        assert.ok(progress.some((part) => part.digest === `sha256:${projectorSha256}` && part.completed === 686_912), "the projector's download has its progress");
        assert.equal(projectorDownloads().length, 1);
        assert.ok(projectorDownloads().every((request) => request.includes("mmproj-model-f16.gguf")), "the Q8_0 projector is never fetched");

        const model = server.library.get(q4);
        assert.deepEqual(model.projector, {path: PROJECTOR_IN_LIBRARY, sizeBytes: 686_912, sha256: projectorSha256});
        const projectorPath = server.library.projectorPath(model)!;
        assert.equal(await sha256Of(projectorPath), projectorSha256, "the projector on disk verifies");
        assert.equal(await sha256Of(server.library.filePaths(model)[0]!), model.sha256, "and so does the model");
        assert.equal(server.engine.projectorOf(q4), projectorPath, "the engine loads the library model with it");
        const tags = await (await fetch(`${server.url}/api/tags`)).json() as {models: {name: string, capabilities: string[]}[]};
        assert.deepEqual(tags.models.map((entry) => entry.name), [q4]);
        assert.ok(tags.models[0]!.capabilities.includes("vision"), `${tags.models[0]!.capabilities.join(", ")}`);
        const listed = await server.client.models.list();
        assert.deepEqual((listed.data.find((entry) => entry.id === q4) as unknown as {capabilities: string[]}).capabilities, tags.models[0]!.capabilities,
            "/api/tags and /v1/models say the same");
        const estimate = await (await fetch(`${server.url}/api/estimate?model=${encodeURIComponent(q4)}`)).json() as {projector_bytes: number, projector_on_gpu: boolean, ram_bytes: number};
        assert.equal(estimate.projector_bytes, 686_912);
        assert.equal(estimate.projector_on_gpu, false, "the test server runs on the CPU");

        const pulled = await postJson(`${server.url}/api/pull`, {model: q8, stream: false});
        assert.equal(pulled.status, 200, pulled.text);
        assert.equal(projectorDownloads().length, 1, "the projector two quantizations share is downloaded once");
        assert.deepEqual(server.library.get(q8).projector, model.projector);

        await ollama.delete({model: q4});
        assert.ok(existsSync(projectorPath), "the projector stays while another model uses it");
        assert.equal(server.engine.projectorOf(q8), projectorPath);
        await ollama.delete({model: q8});
        assert.ok(!existsSync(projectorPath), "and goes with the last one");
        assert.deepEqual(await filesUnder(server.library.modelsDir), []);
    });

    it("gives a pulled model that sees: different images, different replies, as llama.cpp gives them", async () => {
        const name = `hf.co/${GEMMA}:Q4_K_M`;
        const pulled = await postJson(`${server.url}/api/pull`, {model: name, stream: false});
        assert.equal(pulled.status, 200, pulled.text);
        const expected = JSON.parse(await readFile(await testModel("vision/expected.json"), "utf8")) as {question: string, images: Record<string, {answer: string}>};
        for (const image of ["red.png", "blue.png"]) {
            const bytes = await readFile(await testModel(`vision/images/${image}`));
            const completion = await server.client.chat.completions.create({model: name, temperature: 0, max_tokens: 16, messages: [{role: "user", content: [
                {type: "image_url", image_url: {url: `data:image/png;base64,${bytes.toString("base64")}`}}, {type: "text", text: expected.question}
            ]}]});
            assert.equal(completion.choices[0]!.message.content, expected.images[image]!.answer, image);
        }
        await ollama.delete({model: name});
    });

    it("resumes a projector whose download was cut, from where it stopped", async () => {
        hub.faults.cut = {path: "mmproj-model-f16.gguf", afterBytes: 300_000, times: 1};
        hub.requests.length = 0;
        const pulled = await postJson(`${server.url}/api/pull`, {model: `hf.co/${GEMMA}:Q4_K_M`, stream: false});
        assert.equal(pulled.status, 200, pulled.text);
        const ranges = hub.requests.filter((request) => request.path.startsWith("/cdn/") && request.path.includes("mmproj")).map((request) => request.range);
        assert.deepEqual(ranges, [undefined, "bytes=300000-"]);
        assert.equal(await sha256Of(server.library.projectorPath(server.library.get(`hf.co/${GEMMA}:Q4_K_M`))!), projectorSha256);
        await ollama.delete({model: `hf.co/${GEMMA}:Q4_K_M`});
    });
});

const pick = (object: Record<string, unknown>, ...keys: string[]) => Object.fromEntries(keys.map((key) => [key, object[key]]));

async function postJson(url: string, body: unknown) {
    const response = await fetch(url, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    return {status: response.status, text: await response.text()};
}

describe("projectors in the library", () => {
    let hub: FakeHub;

    before(async () => {
        hub = await fakeHubWithVision();
    });
    after(async () => {
        await hub.close();
    });

    it("brings a model pulled before projectors were kept up to date: the registry gains the columns, a pull fetches the projector only", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-projectors-"));
        const name = `hf.co/${GEMMA}:Q4_K_M`;
        let library = await Library.open({home, hub: new HubClient({endpoint: hub.url})});
        await library.pull(name);
        const projectorPath = library.projectorPath(library.get(name))!;
        library.close();
        // The registry as the schema before projectors left it, and the library without the projector's file.
        const db = new Database(path.join(home, "library.db"));
        db.exec("ALTER TABLE models DROP COLUMN projector_path; ALTER TABLE models DROP COLUMN projector_size_bytes; ALTER TABLE models DROP COLUMN projector_sha256; " +
            "DROP TABLE refused_projectors; DROP TABLE presets");
        db.pragma("user_version = 2");
        db.close();
        await rm(projectorPath);

        library = await Library.open({home, hub: new HubClient({endpoint: hub.url})});
        try {
            assert.equal(library.get(name).projector, undefined);
            hub.requests.length = 0;
            await library.pull(name);
            const downloaded = hub.requests.filter((request) => request.path.startsWith("/cdn/")).map((request) => new URL(request.path, hub.url).searchParams.get("path"));
            assert.deepEqual(downloaded, ["mmproj-model-f16.gguf"]);
            assert.equal(library.get(name).projector?.path, PROJECTOR_IN_LIBRARY);
            assert.ok(existsSync(projectorPath));
        } finally {
            library.close();
        }
    });

    it("cancelling one quantization's download leaves the projector another one is downloading, which then sees", async () => {
        // Small quantizations, so that the projector is most of the time a throttled pull takes.
        const repo = "ggml-org/tiny-vision-GGUF";
        const projector = await testModel("vision/mmproj-gemma4-vision-script.gguf");
        await hub.addRepo({id: repo, files: [
            {path: "tiny-vision-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")},
            {path: "tiny-vision-Q4_0.gguf", source: await testModel("derived/stories260K-Q4_0.gguf")},
            {path: "mmproj-tiny-vision-f16.gguf", source: projector}
        ]});
        const [q8, q4] = [`hf.co/${repo}:Q8_0`, `hf.co/${repo}:Q4_0`];
        const library = await Library.open({home: await mkdtemp(path.join(os.tmpdir(), "hearth-projectors-")), hub: new HubClient({endpoint: hub.url})});
        const downloads = new DownloadManager(library);
        try {
            hub.requests.length = 0;
            hub.faults.bytesPerSecond = 300_000;
            await downloads.start(q8);
            await eventually(async () => assert.ok(hub.requests.some((request) => request.path.startsWith("/cdn/") && request.path.includes("mmproj")), "the Q8_0 pull is fetching the projector"));
            await downloads.start(q4);
            await downloads.cancel(q4);
            assert.equal(library.find(q4), undefined);
            assert.ok(!existsSync(path.join(library.modelsDir, "hf.co", repo, "tiny-vision-Q4_0.gguf")), "the cancelled quantization's own file is gone");

            const done = await eventually(async () => {
                const download = downloads.list().find((entry) => entry.name === q8)!;
                assert.ok(download.status === "complete" || download.status === "failed", download.status);
                return download;
            }, 30_000);
            assert.deepEqual([done.status, done.error], ["complete", undefined]);
            const model = library.get(q8);
            assert.equal(model.projector?.sha256, await sha256Of(projector));
            assert.equal(await sha256Of(library.projectorPath(model)!), model.projector!.sha256, "the projector on disk verifies");
        } finally {
            hub.faults.bytesPerSecond = undefined;
            await downloads.dispose();
            library.close();
        }
    });

    it("an audio model's mmproj is fetched once, found to see nothing, and then neither listed nor fetched again; a name that says audio is passed over", async () => {
        const repo = "ggml-org/tiny-voice-GGUF";
        await hub.addRepo({id: repo, files: [
            {path: "tiny-voice-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")},
            // Named as ultravox's is: nothing in the name says it has no vision encoder; its header does.
            {path: "mmproj-tiny-voice-f16.gguf", source: audioProjector()}
        ]});
        const name = `hf.co/${repo}:Q8_0`;
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-projectors-"));
        const projectorFetches = () => hub.requests.filter((request) => request.path.startsWith("/cdn/") && request.path.includes("mmproj")).length;
        let library = await Library.open({home, hub: new HubClient({endpoint: hub.url})});
        try {
            hub.requests.length = 0;
            assert.equal((await library.pull(name)).projector, undefined, "the model is served as text only");
            assert.equal(projectorFetches(), 1);
            assert.deepEqual(await filesUnder(library.modelsDir), [`hf.co/${repo}/tiny-voice-Q8_0.gguf`], "the audio projector is not kept");
            const listing = await library.repoFiles(repo);
            assert.deepEqual([listing.projector, listing.projectors], [undefined, []], "the listing no longer offers it");
            hub.requests.length = 0;
            assert.equal((await library.pull(name)).projector, undefined);
            assert.deepEqual(hub.requests.filter((request) => request.path.startsWith("/cdn/")), [], "a second pull fetches nothing");
        } finally {
            library.close();
        }
        library = await Library.open({home, hub: new HubClient({endpoint: hub.url})});
        try {
            hub.requests.length = 0;
            await library.pull(name);
            assert.equal(projectorFetches(), 0, "nor after the library is opened again");
        } finally {
            library.close();
        }
        const files = await spawnHearth(["files", repo], {HEARTH_HOME: home, HF_ENDPOINT: hub.url}).exited;
        assert.equal(files.code, 0, files.stderr);
        assert.match(files.stdout, /^hf\.co\/ggml-org\/tiny-voice-GGUF:Q8_0 \(default\)\s+Q8_0\s+\S+ KB\s+1\s+no$/m);

        const audio = {path: "mmproj-model-audio-f16.gguf", sizeBytes: 1};
        assert.equal(chooseProjector([audio, {path: "mmproj-model-f16.gguf", sizeBytes: 2}])?.path, "mmproj-model-f16.gguf", "the vision one, though larger");
        assert.equal(chooseProjector([audio, {path: "mmproj-model-audio-Q8_0.gguf", sizeBytes: 1}])?.path, audio.path, "an audio one when there is no other");
    });

    it("hearth pull brings the projector with progress, the model sees in hearth run, hearth files and show say so, hearth rm removes both", async () => {
        const env = {HEARTH_HOME: await mkdtemp(path.join(os.tmpdir(), "hearth-cli-")), HF_ENDPOINT: hub.url};
        const files = await spawnHearth(["files", GEMMA], env).exited;
        assert.equal(files.code, 0, files.stderr);
        assert.match(files.stdout, /^hf\.co\/ggml-org\/gemma-3-4b-it-GGUF:Q4_K_M \(default\)\s+Q4_K_M\s+25.4 MB\s+1\s+yes \(\+687 KB\)$/m);

        const pulled = await spawnHearth(["pull", `hf.co/${GEMMA}:Q4_K_M`], env).exited;
        assert.equal(pulled.code, 0, pulled.stderr);
        assert.match(pulled.stderr, /pulling +100% {2}25.4 MB\/25.4 MB/);
        assert.match(pulled.stderr, /pulling projector +100% {2}687 KB\/687 KB/);
        const seen = await spawnHearth(["run", `hf.co/${GEMMA}:Q4_K_M`, "--image", await testModel("vision/images/green.png"), "What colour is this image?", "--threads", "1"], env).exited;
        assert.equal(seen.code, 0, seen.stderr);
        assert.equal(seen.stdout.trim(), "The image is green.", "the pulled model sees");
        const shown = await spawnHearth(["show", `hf.co/${GEMMA}:Q4_K_M`], env).exited;
        assert.match(shown.stdout, /^vision +yes$/m);
        assert.match(shown.stdout, new RegExp(`^projector +${env.HEARTH_HOME}/models/hf\\.co/ggml-org/gemma-3-4b-it-GGUF/mmproj-model-f16\\.gguf$`, "m"));

        const removed = await spawnHearth(["rm", `hf.co/${GEMMA}:Q4_K_M`], env).exited;
        assert.equal(removed.code, 0, removed.stderr);
        assert.deepEqual(await filesUnder(path.join(env.HEARTH_HOME, "models")), []);
    });
});

describe("a model file's projector", () => {
    it("is the one beside it: its own base name's, F16 before Q8_0; a file that is not a vision projector is never taken", async () => {
        const projector = await testModel("vision/mmproj-gemma4-vision-script.gguf");
        const folder = await mkdtemp(path.join(os.tmpdir(), "hearth-beside-"));
        const model = path.join(folder, "gemma4-vision-script-Q4_0.gguf");
        await symlink(await testModel("vision/gemma4-vision-script.gguf"), model);
        assert.equal(await findProjectorBeside(model), undefined, "none beside it");
        await symlink(await testModel("stories260K.gguf"), path.join(folder, "mmproj-stories.gguf"));
        assert.equal(await findProjectorBeside(model), undefined, "a model named mmproj is not a projector");
        for (const name of ["mmproj-other-model-f16.gguf", "mmproj-gemma4-vision-script-Q8_0.gguf", "mmproj-gemma4-vision-script-f16.gguf"])
            await symlink(projector, path.join(folder, name));
        assert.equal(await findProjectorBeside(model), path.join(folder, "mmproj-gemma4-vision-script-f16.gguf"));

        const candidates = [{path: "mmproj-Q4_K_M.gguf", sizeBytes: 1}, {path: "mmproj-Q8_0.gguf", sizeBytes: 2}, {path: "mmproj-BF16.gguf", sizeBytes: 4}, {path: "mmproj-F16.gguf", sizeBytes: 3}];
        assert.equal(chooseProjector(candidates)?.path, "mmproj-F16.gguf", "the smallest F16 or BF16");
        assert.equal(chooseProjector(candidates.slice(0, 2))?.path, "mmproj-Q8_0.gguf", "else Q8_0");
        assert.equal(chooseProjector([{path: "mmproj-Q5_K.gguf", sizeBytes: 5}, {path: "mmproj-Q4_K_M.gguf", sizeBytes: 3}])?.path, "mmproj-Q4_K_M.gguf", "else the smallest");
    });

    it("comes along when the model file is imported into the library, and goes when it is removed", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-import-"));
        const library = await Library.open({home, hub: new HubClient({endpoint: "http://127.0.0.1:9"})});
        try {
            const model = await library.import(await testModel("vision/gemma4-vision-script.gguf"), "seeing");
            assert.deepEqual(model.projector, {path: "local/mmproj-seeing.gguf", sizeBytes: 686_912, sha256: await sha256Of(await testModel("vision/mmproj-gemma4-vision-script.gguf"))});
            assert.equal(library.get("seeing").projector?.path, "local/mmproj-seeing.gguf");
            assert.equal((await library.import(await testModel("stories260K.gguf"), "blind")).projector, undefined);
            // Served by name, a library model has the projector its entry records, not another's lying in the same folder.
            const server = await startTestServer({models: [], modelNames: [{name: "blind", alias: undefined}], home, parallel: 1});
            try {
                assert.equal(server.engine.projectorOf("blind"), undefined);
                assert.equal(server.engine.projectorOf("seeing"), path.join(library.modelsDir, "local", "mmproj-seeing.gguf"));
            } finally {
                await server.close();
            }
            await library.remove("seeing");
            assert.deepEqual(await filesUnder(library.modelsDir), ["local/blind.gguf"]);
        } finally {
            library.close();
        }
    });

    it("is served with a model given as a file, from --mmproj or found beside it; --mmproj none and a file that is no projector are refused or heeded at start", async () => {
        const modelPath = await testModel("vision/gemma4-vision-script.gguf");
        const projector = await testModel("vision/mmproj-gemma4-vision-script.gguf");
        const found = await startTestServer({modelFiles: ["vision/gemma4-vision-script.gguf"], parallel: 1});
        try {
            assert.equal(found.engine.projectorOf("gemma4-vision-script"), projector);
            const estimate = await (await fetch(`${found.url}/api/estimate?model=gemma4-vision-script`)).json() as {projector_bytes: number};
            assert.equal(estimate.projector_bytes, 686_912);
        } finally {
            await found.close();
        }
        const estimated = await spawnHearth(["estimate", modelPath, "--gpu", "cpu", "--ctx-size", "2048", "--json"]).exited;
        assert.equal(estimated.code, 0, estimated.stderr);
        assert.deepEqual(pick(JSON.parse(estimated.stdout) as Record<string, unknown>, "projector_bytes", "projector_on_gpu"), {projector_bytes: 686_912, projector_on_gpu: false});
        const without = await startTestServer({models: [{path: modelPath, names: ["seeless"], mmproj: false}], parallel: 1});
        try {
            assert.equal(without.engine.projectorOf("seeless"), undefined);
        } finally {
            await without.close();
        }
        await assert.rejects(startTestServer({models: [{path: modelPath, names: ["wrong"], mmproj: await testModel("stories260K.gguf")}]}),
            (error: unknown) => error instanceof ConfigError && /--mmproj .*stories260K\.gguf \(for wrong\) cannot be used: it is a GGUF of architecture "llama", not a projector/.test(error.message));
        const notGguf = await spawnHearth(["serve", "--model", modelPath, "--mmproj", path.join(path.dirname(projector), "expected.json"), "--port", "0"]).exited;
        assert.equal(notGguf.code, 2, notGguf.stderr);
        assert.match(notGguf.stderr, /--mmproj .*expected\.json \(for gemma4-vision-script\) cannot be used: it is not a GGUF file/);
        assert.ok((await stat(projector)).size > 0);
    });
});
