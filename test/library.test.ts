import assert from "node:assert/strict";
import {existsSync} from "node:fs";
import {mkdtemp, readdir, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {Ollama} from "ollama";
import {HubClient} from "../models/index.js";
import {startFakeHub} from "./helpers/fakeHub.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

const REPO = "ggml-org/stories260K-GGUF";

async function fakeHubWithStories(): Promise<FakeHub> {
    return startFakeHub([{
        id: REPO,
        downloads: 1200,
        files: [
            {path: "stories260K-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")},
            {path: "stories260K-Q4_0.gguf", source: await testModel("derived/stories260K-Q4_0.gguf")},
            {path: "stories260K-F16.gguf", source: await testModel("derived/stories260K-F16.gguf")},
            {path: "README.md", source: Buffer.from("# stories260K\n")}
        ]
    }, {
        id: "someone/broken-GGUF",
        files: [
            {path: "broken-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf"), declaredSha256: "0".repeat(64)},
            {path: "huge-Q4_K_M.gguf", source: await testModel("derived/stories260K-Q4_0.gguf"), declaredSize: 4e15}
        ]
    }]);
}

async function startWithHub(hub: FakeHub, home?: string, extra: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
    return startTestServer({models: [], home: home ?? await mkdtemp(path.join(os.tmpdir(), "hearth-library-")), hub: {endpoint: hub.url, token: undefined}, ...extra});
}

async function postJson(url: string, body: unknown, method = "POST") {
    const response = await fetch(url, {method, headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    return {status: response.status, text: await response.text()};
}

/** Every file under a folder, relative to it. */
async function filesUnder(folder: string): Promise<string[]> {
    const entries = await readdir(folder, {recursive: true, withFileTypes: true}).catch(() => []);
    return entries.filter((entry) => entry.isFile()).map((entry) => path.relative(folder, path.join(entry.parentPath, entry.name))).sort();
}

describe("model library over /api", () => {
    let hub: FakeHub;
    let server: TestServer;
    let ollama: Ollama;

    before(async () => {
        hub = await fakeHubWithStories();
        server = await startWithHub(hub);
        ollama = new Ollama({host: server.url});
    });
    after(async () => {
        await server.close();
        await hub.close();
    });

    it("finds GGUF repos on the Hub and lists a repo's quantizations with size and sha256", async () => {
        const search = await (await fetch(`${server.url}/api/hub/search?q=stories`)).json() as {models: {id: string, name: string}[]};
        assert.deepEqual(search.models.map((model) => model.name), [`hf.co/${REPO}`]);

        const files = await (await fetch(`${server.url}/api/hub/files?repo=${REPO}`)).json() as
            {commit: string, quantizations: {name: string, quantization: string, size: number, files: {sha256: string}[], default: boolean}[]};
        assert.match(files.commit, /^[0-9a-f]{40}$/);
        assert.deepEqual(files.quantizations.map((entry) => entry.quantization), ["Q4_0", "Q8_0", "F16"]);
        const q8 = files.quantizations.find((entry) => entry.quantization === "Q8_0")!;
        assert.equal(q8.name, `hf.co/${REPO}:Q8_0`);
        assert.equal(q8.size, (await stat(await testModel("derived/stories260K-Q8_0.gguf"))).size);
        assert.match(q8.files[0]!.sha256, /^[0-9a-f]{64}$/);
        assert.equal(files.quantizations.find((entry) => entry.default)?.quantization, "Q4_0");
    });

    it("pulls with the ollama client, lists, shows, chats with and deletes a Hub model", async () => {
        const name = `hf.co/${REPO}:Q8_0`;
        const progress = [];
        for await (const part of await ollama.pull({model: name, stream: true}))
            progress.push(part);
        assert.equal(progress.at(-1)!.status, "success");
        const downloading = progress.filter((part) => part.total > 0);
        assert.ok(downloading.length > 0, "progress has total and completed");
        assert.equal(downloading.at(-1)!.completed, downloading.at(-1)!.total);
        assert.match(downloading[0]!.digest, /^sha256:[0-9a-f]{64}$/);

        const tags = await ollama.list();
        assert.deepEqual(tags.models.map((model) => model.name), [name]);
        assert.equal(tags.models[0]!.details.quantization_level, "Q8_0");

        const shown = await ollama.show({model: name});
        assert.equal(shown.details.format, "gguf");
        assert.equal(shown.details.family, "llama");
        const info = shown.model_info as unknown as Record<string, unknown>;
        assert.equal(info["general.architecture"], "llama");
        assert.ok(Number(info["general.parameter_count"]) > 200_000);

        const completion = await server.client.completions.create({model: name, prompt: "Once upon a time", max_tokens: 12, temperature: 0});
        assert.match(completion.choices[0]!.text, /Lily/);
        const running = await ollama.ps();
        assert.deepEqual(running.models.map((model) => model.name), [name]);

        await ollama.delete({model: name});
        assert.deepEqual((await ollama.list()).models, []);
        assert.deepEqual(await filesUnder(server.library.modelsDir), []);
        assert.deepEqual((await ollama.ps()).models, []);
        await assert.rejects(ollama.show({model: name}), /not in the library/);
    });

    it("pulls the default quantization for hf.co/owner/repo and resolves the short name to it", async () => {
        const result = await postJson(`${server.url}/api/pull`, {model: `hf.co/${REPO}`, stream: false});
        assert.equal(result.status, 200, result.text);
        assert.deepEqual((await ollama.list()).models.map((model) => model.name), [`hf.co/${REPO}:Q4_0`]);
        assert.equal((await ollama.show({model: `hf.co/${REPO}`})).details.quantization_level, "Q4_0");
        await ollama.delete({model: `hf.co/${REPO}:Q4_0`});
    });

    it("resumes a download whose connection was cut half-way, from where it stopped", async () => {
        const size = (await stat(await testModel("derived/stories260K-F16.gguf"))).size;
        const cutAt = Math.floor(size / 2);
        hub.faults.cut = {path: "stories260K-F16.gguf", afterBytes: cutAt, times: 1};
        hub.requests.length = 0;
        const result = await postJson(`${server.url}/api/pull`, {model: `hf.co/${REPO}:F16`, stream: false});
        assert.equal(result.status, 200, result.text);
        const ranges = hub.requests.filter((request) => request.path.startsWith("/cdn/")).map((request) => request.range);
        assert.deepEqual(ranges, [undefined, `bytes=${cutAt}-`]);
        await ollama.delete({model: `hf.co/${REPO}:F16`});
    });

    it("retries 500s until they pass", async () => {
        hub.faults.fail = {times: 2};
        const result = await postJson(`${server.url}/api/pull`, {model: `hf.co/${REPO}:Q4_0`, stream: false});
        assert.equal(result.status, 200, result.text);
        assert.equal(hub.faults.fail.times, 0);
        await ollama.delete({model: `hf.co/${REPO}:Q4_0`});
    });

    it("retries a 503 from the Hub's listing as downloads do, and gives up with the Hub's answer when it persists", async () => {
        const apiRequests = () => hub.requests.filter((request) => request.path.startsWith("/api/models/")).length;
        hub.faults.apiFail = {times: 1, status: 503};
        const listedBefore = apiRequests();
        const files = await fetch(`${server.url}/api/hub/files?repo=${REPO}`);
        assert.equal(files.status, 200, await files.clone().text());
        assert.deepEqual(((await files.json()) as {quantizations: {quantization: string}[]}).quantizations.map((entry) => entry.quantization), ["Q4_0", "Q8_0", "F16"]);
        assert.equal(hub.faults.apiFail.times, 0);
        assert.ok(apiRequests() - listedBefore >= 3, "the failed call was made again");

        hub.faults.apiFail = {times: 1, status: 503};
        const pulled = await postJson(`${server.url}/api/pull`, {model: `hf.co/${REPO}:Q4_0`, stream: false});
        assert.equal(pulled.status, 200, pulled.text);
        assert.equal(hub.faults.apiFail.times, 0);
        await ollama.delete({model: `hf.co/${REPO}:Q4_0`});

        const client = new HubClient({endpoint: hub.url, retries: 3, retryDelayMs: 10});
        hub.faults.apiFail = {times: 100, status: 503};
        const attemptsBefore = apiRequests();
        try {
            await assert.rejects(client.repoFiles(REPO), /Could not list hf\.co\/ggml-org\/stories260K-GGUF: the Hub answered HTTP 503/);
            assert.equal(apiRequests() - attemptsBefore, 4, "the first attempt and 3 retries");
            hub.faults.apiFail = {times: 100, status: 404};
            const notRetried = apiRequests();
            await assert.rejects(client.repoFiles(REPO), /not found on the Hub/);
            assert.equal(apiRequests() - notRetried, 1, "a 404 is not retried");
        } finally {
            hub.faults.apiFail = undefined;
        }
    });

    it("joins a second pull of the same model to the first: one download, progress for both", async () => {
        hub.faults.bytesPerSecond = 1_000_000;
        hub.requests.length = 0;
        const follow = async () => {
            const statuses = [];
            for await (const part of await ollama.pull({model: `hf.co/${REPO}:Q4_0`, stream: true}))
                statuses.push(part);
            return statuses;
        };
        const [first, second] = await Promise.all([follow(), follow()]);
        hub.faults.bytesPerSecond = undefined;
        for (const statuses of [first, second]) {
            assert.equal(statuses.at(-1)!.status, "success");
            assert.ok(statuses.some((part) => part.completed > 0), "progress while downloading");
        }
        assert.equal(hub.requests.filter((request) => request.path.startsWith("/cdn/")).length, 1);
        await ollama.delete({model: `hf.co/${REPO}:Q4_0`});
    });

    it("rejects a file whose bytes do not match its sha256, and leaves nothing behind", async () => {
        const failed = await ollama.pull({model: "hf.co/someone/broken-GGUF:Q8_0", stream: false}).then(() => "pulled", (error: Error) => error.message);
        assert.match(failed, /sha256/);
        assert.deepEqual((await ollama.list()).models, []);
        assert.deepEqual(await filesUnder(server.library.modelsDir), []);
    });

    it("refuses a model larger than the free disk space, saying how much it needs", async () => {
        const result = await postJson(`${server.url}/api/pull`, {model: "hf.co/someone/broken-GGUF:Q4_K_M"});
        assert.equal(result.status, 507);
        assert.match(JSON.parse(result.text).error, /needs 4\.0 PB, .* free in /);
        assert.deepEqual(await filesUnder(server.library.modelsDir), []);
    });

    it("answers 404 for an unknown repo or quantization, and 400 for a malformed name", async () => {
        const unknownRepo = await postJson(`${server.url}/api/pull`, {model: "hf.co/nobody/nothing-GGUF:Q4_0"});
        assert.equal(unknownRepo.status, 404);
        const unknownQuant = await postJson(`${server.url}/api/pull`, {model: `hf.co/${REPO}:Q5_K_M`});
        assert.equal(unknownQuant.status, 404);
        assert.match(JSON.parse(unknownQuant.text).error, /has no Q5_K_M .* It has: Q4_0, Q8_0, F16/);
        const malformed = await postJson(`${server.url}/api/pull`, {model: "hf.co/../../etc:Q4_0"});
        assert.equal(malformed.status, 400);
        const deleteMissing = await postJson(`${server.url}/api/delete`, {model: "hf.co/nobody/nothing:Q4_0"}, "DELETE");
        assert.equal(deleteMissing.status, 404);
        assert.match(JSON.parse(deleteMissing.text).error, /not in the library/);
    });

    it("cancels a slow download when its client goes away, and a second pull resumes it", async () => {
        hub.faults.bytesPerSecond = 200_000;
        const controller = new AbortController();
        const response = await fetch(`${server.url}/api/pull`, {method: "POST", body: JSON.stringify({model: `hf.co/${REPO}:F16`}), headers: {"content-type": "application/json"}, signal: controller.signal});
        const reader = response.body!.getReader();
        let text = "";
        while (!/"completed":[1-9]\d{5,}/.test(text))
            text += new TextDecoder().decode((await reader.read()).value);
        controller.abort();
        const partial = path.join(server.library.modelsDir, "hf.co", "ggml-org", "stories260K-GGUF", "stories260K-F16.gguf.partial");
        for (let waited = 0; !existsSync(partial) || existsSync(`${partial.replace(/\.partial$/, "")}.lock`); waited++) {
            assert.ok(waited < 100, "the download stops");
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const partialBytes = (await stat(partial)).size;
        assert.ok(partialBytes > 0);
        assert.deepEqual((await ollama.list()).models, []);

        hub.faults.bytesPerSecond = undefined;
        hub.requests.length = 0;
        const result = await postJson(`${server.url}/api/pull`, {model: `hf.co/${REPO}:F16`, stream: false});
        assert.equal(result.status, 200, result.text);
        const resumedFrom = Number(/bytes=(\d+)-/.exec(hub.requests.find((request) => request.range != null)?.range ?? "")?.[1]);
        assert.ok(resumedFrom >= partialBytes, `resumed from ${resumedFrom}, partial had ${partialBytes}`);
        await ollama.delete({model: `hf.co/${REPO}:F16`});
    });
});

describe("gated repos", () => {
    it("asks for HF_TOKEN without one, and pulls with it; the token goes to the Hub's own origin only", async () => {
        const hub = await startFakeHub([{id: "meta-llama/Gated-GGUF", gated: true, files: [
            {path: "gated-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")}
        ]}]);
        const anonymous = await startWithHub(hub);
        const withToken = await startWithHub(hub, undefined, {hub: {endpoint: hub.url, token: hub.token}});
        try {
            const refused = await postJson(`${anonymous.url}/api/pull`, {model: "hf.co/meta-llama/Gated-GGUF:Q8_0"});
            assert.equal(refused.status, 403);
            assert.match(JSON.parse(refused.text).error, /refused access .* set HF_TOKEN/);

            hub.requests.length = 0;
            const pulled = await postJson(`${withToken.url}/api/pull`, {model: "hf.co/meta-llama/Gated-GGUF:Q8_0", stream: false});
            assert.equal(pulled.status, 200, pulled.text);
            assert.ok(hub.requests.length > 0 && hub.requests.every((request) => request.authorization === `Bearer ${hub.token}`));
            // The real Hub redirects downloads to a storage host of another origin: it never sees the token.
            const client = new HubClient({endpoint: hub.url, token: hub.token});
            assert.deepEqual(client.headersFor(`${hub.url}/x/y/resolve/main/f.gguf`), {authorization: `Bearer ${hub.token}`});
            assert.deepEqual(client.headersFor("https://cas-bridge.xethub.hf.co/f.gguf"), {});
        } finally {
            await anonymous.close();
            await withToken.close();
            await hub.close();
        }
    });
});

describe("serving the library", () => {
    let hub: FakeHub;
    let home: string;

    before(async () => {
        hub = await fakeHubWithStories();
        home = await mkdtemp(path.join(os.tmpdir(), "hearth-library-"));
    });
    after(async () => {
        await hub.close();
    });

    it("keeps its rows across a restart, loads models on first use and unloads them after keep_alive", async () => {
        const first = await startWithHub(hub, home);
        const ollama = new Ollama({host: first.url});
        await ollama.pull({model: `hf.co/${REPO}:Q8_0`});
        await ollama.pull({model: `hf.co/${REPO}:Q4_0`});
        await first.close();

        const second = await startWithHub(hub, home, {maxLoadedModels: 1});
        try {
            const models = (await second.client.models.list()).data.map((model) => model.id);
            assert.deepEqual(models, [`hf.co/${REPO}:Q4_0`, `hf.co/${REPO}:Q8_0`]);
            const again = new Ollama({host: second.url});
            assert.deepEqual((await again.ps()).models, []);

            await second.client.completions.create({model: `hf.co/${REPO}:Q8_0`, prompt: "Once", max_tokens: 2});
            assert.deepEqual((await again.ps()).models.map((model) => model.name), [`hf.co/${REPO}:Q8_0`]);
            // --max-loaded-models 1: the next model evicts the least recently used one.
            await second.client.completions.create({model: `hf.co/${REPO}:Q4_0`, prompt: "Once", max_tokens: 2});
            const running = (await again.ps()).models;
            assert.deepEqual(running.map((model) => model.name), [`hf.co/${REPO}:Q4_0`]);
            assert.ok(new Date(running[0]!.expires_at).getTime() > Date.now() + 60_000);

            // keep_alive 0 unloads as soon as the request is done.
            await again.generate({model: `hf.co/${REPO}:Q4_0`, prompt: "Once", raw: true, keep_alive: 0, options: {num_predict: 2}});
            for (let waited = 0; (await again.ps()).models.length > 0; waited++) {
                assert.ok(waited < 50, "unloaded after keep_alive 0");
                await new Promise((resolve) => setTimeout(resolve, 20));
            }
        } finally {
            await second.close();
        }
    });
});
