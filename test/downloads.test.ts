import assert from "node:assert/strict";
import {readdir} from "node:fs/promises";
import {after, before, describe, it} from "node:test";
import {startFakeHub} from "./helpers/fakeHub.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/** `/api/downloads`: pulls that run in the server, followed, paused, resumed and cancelled by name. */

const REPO = "ggml-org/stories260K-GGUF";
const F16 = `hf.co/${REPO}:F16`;
type Download = {name: string, status: string, completedBytes: number, totalBytes: number, error?: string};

async function call<T>(url: string, method: string, body?: unknown): Promise<{status: number, json: T}> {
    const response = await fetch(url, {method, headers: body != null ? {"content-type": "application/json"} : {}, body: body != null ? JSON.stringify(body) : undefined});
    return {status: response.status, json: await response.json() as T};
}

async function waitFor(server: TestServer, name: string, predicate: (download: Download) => boolean): Promise<Download> {
    for (let attempt = 0; attempt < 600; attempt++) {
        const {json} = await call<{downloads: Download[]}>(`${server.url}/api/downloads`, "GET");
        const download = json.downloads.find((entry) => entry.name === name);
        if (download != null && predicate(download))
            return download;
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`${name} never got there`);
}

async function filesUnder(folder: string): Promise<string[]> {
    return (await readdir(folder, {recursive: true}).catch(() => [] as string[])).sort();
}

describe("downloads that outlive their request", () => {
    let hub: FakeHub;
    let server: TestServer;

    before(async () => {
        hub = await startFakeHub([{id: REPO, files: [
            {path: "stories260K-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")},
            {path: "stories260K-F16.gguf", source: await testModel("derived/stories260K-F16.gguf")}
        ]}]);
        server = await startTestServer({hub: {endpoint: hub.url, token: undefined}});
    });
    after(async () => {
        await server.close();
        await hub.close();
    });

    it("refuses what cannot be downloaded with a 4xx that says why", async () => {
        const notHub = await call<{error: string}>(`${server.url}/api/downloads`, "POST", {model: "stories260K"});
        assert.equal(notHub.status, 400);
        assert.match(notHub.json.error, /hf\.co\/\{owner\}\/\{repo\}/);
        const noQuant = await call<{error: string}>(`${server.url}/api/downloads`, "POST", {model: `hf.co/${REPO}:Q2_K`});
        assert.equal(noQuant.status, 404);
        assert.match(noQuant.json.error, /Q8_0/, "it names the quantizations there are");
        const unknown = await call<{error: string}>(`${server.url}/api/downloads/pause`, "POST", {model: `hf.co/${REPO}:F16`});
        assert.equal(unknown.status, 404);
        const missingBody = await call<{error: string}>(`${server.url}/api/downloads`, "POST", {});
        assert.equal(missingBody.status, 400);
        assert.deepEqual((await call<{downloads: Download[]}>(`${server.url}/api/downloads`, "GET")).json.downloads, []);
    });

    it("pauses keeping the partial file, resumes from it, and completes into the library", async () => {
        hub.faults.bytesPerSecond = 100_000;
        const started = await call<Download>(`${server.url}/api/downloads`, "POST", {model: F16});
        assert.equal(started.status, 202);
        assert.equal(started.json.name, F16);
        await waitFor(server, F16, (download) => download.status === "downloading" && download.completedBytes > 0);
        const paused = await call<Download>(`${server.url}/api/downloads/pause`, "POST", {model: F16});
        assert.equal(paused.json.status, "paused");
        assert.ok(paused.json.completedBytes > 0 && paused.json.completedBytes < paused.json.totalBytes);
        const partial = (await filesUnder(server.library.modelsDir)).filter((file) => file.endsWith(".partial"));
        assert.equal(partial.length, 1, "the partial file stays for the resume");

        hub.faults.bytesPerSecond = undefined;
        hub.requests.length = 0;
        await call<Download>(`${server.url}/api/downloads`, "POST", {model: F16});
        const done = await waitFor(server, F16, (download) => download.status === "complete");
        assert.equal(done.completedBytes, done.totalBytes);
        assert.ok(hub.requests.some((request) => request.range != null && !request.range.startsWith("bytes=0-")), "the resume asked only for the rest");
        assert.ok(server.library.find(F16) != null);
    });

    it("cancels, deleting the partial file and leaving the library as it was", async () => {
        const name = `hf.co/${REPO}:Q8_0`;
        const before = await filesUnder(server.library.modelsDir);
        hub.faults.bytesPerSecond = 50_000;
        await call<Download>(`${server.url}/api/downloads`, "POST", {model: name});
        await waitFor(server, name, (download) => download.completedBytes > 0);
        const cancelled = await call<{cancelled: boolean}>(`${server.url}/api/downloads`, "DELETE", {model: name});
        hub.faults.bytesPerSecond = undefined;
        assert.deepEqual(cancelled, {status: 200, json: {cancelled: true}});
        assert.deepEqual(await filesUnder(server.library.modelsDir), before);
        assert.equal(server.library.find(name), undefined);
        assert.equal(server.library.find(F16)?.name, F16, "the other model is untouched");
        assert.ok(!(await call<{downloads: Download[]}>(`${server.url}/api/downloads`, "GET")).json.downloads.some((download) => download.name === name));
    });
});
