import assert from "node:assert/strict";
import {copyFile, mkdtemp, rm, truncate, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {setTimeout as sleep} from "node:timers/promises";
import {after, before, describe, test} from "node:test";
import OpenAI from "openai";
import {metricValue} from "./helpers/metrics.js";
import {freePort} from "./helpers/freePort.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";
import {startTestServer} from "./helpers/testServer.js";

/** Reads an SSE body to its end: its data lines, and whether it ended with `[DONE]`. */
async function readSse(response: Response): Promise<{chunks: {choices: {finish_reason: string | null}[]}[], done: boolean}> {
    const text = await response.text();
    const data = text.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6));
    const done = data.at(-1) === "[DONE]";
    return {chunks: data.filter((line) => line !== "[DONE]").map((line) => JSON.parse(line) as {choices: {finish_reason: string | null}[]}), done};
}

describe("GGUF files are checked before the native loader sees them", () => {
    let dir: string;
    before(async () => {
        dir = await mkdtemp(path.join(os.tmpdir(), "hearth-gguf-"));
    });
    after(() => rm(dir, {recursive: true, force: true}));

    test("hearth serve refuses a truncated file and a junk file by name, with exit code 2", async () => {
        const truncated = path.join(dir, "truncated.gguf");
        await copyFile(await testModel("stories260K.gguf"), truncated);
        await truncate(truncated, 600_000);
        const junk = path.join(dir, "junk.gguf");
        await writeFile(junk, Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0]), Buffer.alloc(8, 0xff), Buffer.alloc(64, 0x41)]));

        const cut = await spawnHearth(["serve", "--model", truncated, "--port", "0"]).exited;
        assert.equal(cut.code, 2);
        assert.match(cut.stderr, /truncated\.gguf is not a GGUF model file \(tensor .* ends past the end of the 600000-byte file: it is truncated or damaged\)/);
        const garbage = await spawnHearth(["serve", "--model", junk, "--port", "0"]).exited;
        assert.equal(garbage.code, 2);
        assert.match(garbage.stderr, /junk\.gguf is not a GGUF model file/);
    });

    test("a library model damaged on disk gets a clear 400 when used, and the server serves the others", async () => {
        const server = await startTestServer();
        try {
            const copy = path.join(dir, "story-copy.gguf");
            await copyFile(await testModel("stories260K.gguf"), copy);
            const model = await server.library.import(copy, "damaged");
            await truncate(server.library.filePaths(model)[0]!, 300_000);
            const response = await fetch(`${server.baseURL}/chat/completions`, {method: "POST", headers: {"content-type": "application/json"},
                body: JSON.stringify({model: "damaged", messages: [{role: "user", content: "Hi"}], max_tokens: 2})});
            assert.equal(response.status, 400);
            const body = await response.json() as {error: {message: string}};
            assert.match(body.error.message, /"damaged" cannot be loaded: its GGUF header could not be read \(.*truncated/);
            const fine = await server.client.completions.create({model: "stories260K", prompt: "Once", max_tokens: 2});
            assert.ok(fine.usage!.completion_tokens > 0);
        } finally {
            await server.close();
        }
    });
});

describe("shutting down", () => {
    test("SIGTERM mid-stream: no new connections, the running reply ends with a last chunk and [DONE], a waiting one gets 503, exit 0", async () => {
        const port = await freePort();
        const model = await testModel("synthetic/synthetic-llama-23M-Q8_0.gguf");
        const hearth = spawnHearth(["serve", "--model", model, "--port", String(port), "--parallel", "1", "--ctx-size", "1024", "--threads", "1", "--shutdown-timeout", "700ms"]);
        await hearth.waitForOutput(/Ready/);
        const url = `http://127.0.0.1:${port}`;
        const body = (stream: boolean) => JSON.stringify({model: "synthetic-llama-23M-Q8_0", prompt: "Once upon a time", max_tokens: 1000, temperature: 0, stream});
        const running = await fetch(`${url}/v1/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: body(true)});
        assert.equal(running.status, 200);
        const waiting = fetch(`${url}/v1/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: body(false)});
        await sleep(200);

        hearth.child.kill("SIGTERM");
        await sleep(100);
        await assert.rejects(fetch(`${url}/health`), "the listener is closed at once");

        const streamed = await readSse(running);
        assert.ok(streamed.done, "the stream ends with [DONE]");
        assert.equal(streamed.chunks.at(-1)!.choices[0]!.finish_reason, "length");
        assert.ok(streamed.chunks.length < 1000, "it was cut short by the drain deadline");
        const refused = await waiting;
        assert.equal(refused.status, 503);
        assert.equal((await refused.json() as {error: {code: string}}).error.code, "shutting_down");
        assert.ok(Number(refused.headers.get("retry-after")) > 0);
        const {code} = await hearth.exited;
        assert.equal(code, 0);
    });

    test("SIGKILL and restart: keys, audit log and conversations are intact", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-kill-"));
        try {
            const created = await spawnHearth(["keys", "create", "--name", "ci"], {HEARTH_HOME: home}).exited;
            const key = /\n {2}(hk-\S+)\n/.exec(created.stdout)![1]!;
            const port = await freePort();
            const model = await testModel("stories260K.gguf");
            const start = async () => {
                const hearth = spawnHearth(["serve", "--model", model, "--port", String(port)], {HEARTH_HOME: home});
                await hearth.waitForOutput(/Ready/);
                return hearth;
            };
            const url = `http://127.0.0.1:${port}`;
            const client = new OpenAI({baseURL: `${url}/v1`, apiKey: key, maxRetries: 0});
            let hearth = await start();
            await client.completions.create({model: "stories260K", prompt: "Once", max_tokens: 2});
            const conversation = await (await fetch(`${url}/api/conversations`, {method: "POST", headers: {"content-type": "application/json", "authorization": `Bearer ${key}`}, body: JSON.stringify({title: "kept"})})).json() as {id: string};
            hearth.child.kill("SIGKILL");
            await hearth.exited;

            hearth = await start();
            try {
                assert.ok((await client.models.list()).data.length > 0, "the stored key still works");
                const audit = await (await fetch(`${url}/api/audit`, {headers: {authorization: `Bearer ${key}`}})).json() as {entries: {path: string}[]};
                assert.ok(audit.entries.some((entry) => entry.path === "/v1/completions"), "the audit entry written before the kill is there");
                const kept = await fetch(`${url}/api/conversations/${conversation.id}`, {headers: {authorization: `Bearer ${key}`}});
                assert.equal(kept.status, 200);
            } finally {
                hearth.child.kill("SIGTERM");
                await hearth.exited;
            }
        } finally {
            await rm(home, {recursive: true, force: true});
        }
    });
});

describe("a soak with random client aborts", () => {
    // The server in its own process, so the memory measured is the server's alone, not this test's clients'.
    let hearth: ReturnType<typeof spawnHearth>;
    let server: {url: string, baseURL: string, client: OpenAI};
    before(async () => {
        const port = await freePort();
        const model = await testModel("stories260K.gguf");
        hearth = spawnHearth(["serve", "--model", model, "--port", String(port), "--parallel", "4", "--ctx-size", "512", "--threads", "1"]);
        await hearth.waitForOutput(/Ready/);
        const url = `http://127.0.0.1:${port}`;
        server = {url, baseURL: `${url}/v1`, client: new OpenAI({baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0})};
    });
    after(async () => {
        hearth.child.kill("SIGTERM");
        await hearth.exited;
    });

    test("leaves no busy slot, no queued request, nothing in flight, and no growing memory", async () => {
        const prompts = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day"];
        let aborted = 0;
        let completed = 0;
        const one = async (index: number) => {
            const controller = new AbortController();
            const stream = index % 2 === 0;
            if (index % 3 !== 0)
                setTimeout(() => controller.abort(), Math.floor(Math.random() * 40));
            try {
                const response = await fetch(`${server.baseURL}/chat/completions`, {
                    method: "POST", headers: {"content-type": "application/json"}, signal: controller.signal,
                    body: JSON.stringify({model: "stories260K", messages: [{role: "user", content: prompts[index % prompts.length]}], max_tokens: 40 + (index % 5) * 20, stream})
                });
                await response.text();
                assert.equal(response.status, 200);
                completed++;
            } catch (error) {
                if ((error as Error).name !== "AbortError")
                    throw error;
                aborted++;
            }
        };
        const wave = async (from: number, count: number) => {
            let next = from;
            await Promise.all(Array.from({length: 8}, async () => {
                while (next < from + count)
                    await one(next++);
            }));
        };
        const rss = async () => {
            await sleep(300);
            return metricValue(await (await fetch(`${server.url}/metrics`)).text(), "process_resident_memory_bytes")!;
        };

        await wave(0, 100);
        const warmRss = await rss();
        await wave(100, 300);
        const afterRss = await rss();
        assert.ok(aborted > 50 && completed > 50, `${aborted} aborted, ${completed} completed`);

        let text = "";
        for (let attempt = 0; attempt < 50; attempt++) {
            text = await (await fetch(`${server.url}/metrics`)).text();
            if (metricValue(text, "hearth_busy_slots", {model: "stories260K"}) === 0 && metricValue(text, "hearth_http_requests_in_flight") === 1)
                break;
            await sleep(100);
        }
        assert.equal(metricValue(text, "hearth_busy_slots", {model: "stories260K"}), 0);
        assert.equal(metricValue(text, "hearth_queue_depth", {model: "stories260K"}), 0);
        assert.equal(metricValue(text, "hearth_http_requests_in_flight"), 1, "only the /metrics request itself");
        const growthMiB = (afterRss - warmRss) / 2 ** 20;
        assert.ok(growthMiB < 64, `resident memory grew ${growthMiB.toFixed(1)} MiB over 300 requests`);
        const healthy = await server.client.completions.create({model: "stories260K", prompt: "Once upon a time", max_tokens: 5, temperature: 0});
        assert.equal(healthy.choices[0]!.text.length > 0, true);
    });
});
