import assert from "node:assert/strict";
import {existsSync} from "node:fs";
import {mkdtemp, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import OpenAI from "openai";
import {startFakeHub} from "./helpers/fakeHub.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";

const REPO = "ggml-org/stories260K-GGUF";

describe("hearth import, ls, show, rm, and serve without --model", () => {
    it("imports a local file under a short name, serves it, and removes it without touching the original", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-cli-"));
        const env = {HEARTH_HOME: home};
        const original = await testModel("stories260K.gguf");

        const imported = await spawnHearth(["import", original], env).exited;
        assert.equal(imported.code, 0, imported.stderr);
        assert.match(imported.stdout, /imported .* as stories260K/);

        const again = await spawnHearth(["import", original], env).exited;
        assert.equal(again.code, 2);
        assert.match(again.stderr, /already in the library/);
        const notGguf = await spawnHearth(["import", path.join(home, "library.db")], env).exited;
        assert.equal(notGguf.code, 2);
        assert.match(notGguf.stderr, /is not a GGUF model file/);

        const listed = await spawnHearth(["ls"], env).exited;
        assert.match(listed.stdout, /^NAME\s+SIZE\s+PARAMS\s+QUANT\s+ARCH/m);
        assert.match(listed.stdout, /^stories260K\s+1\.2 MB\s+\d+K\s+F32\s+llama/m);
        const shown = await spawnHearth(["show", "stories260K"], env).exited;
        assert.match(shown.stdout, /^architecture\s+llama$/m);
        assert.match(shown.stdout, /^chat template\s+no$/m);

        const server = spawnHearth(["serve", "--port", "0", "--threads", "1"], env);
        const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        await server.waitForOutput(/Serving the library .*: stories260K/);
        const client = new OpenAI({baseURL: `${url}/v1`, apiKey: "x"});
        assert.deepEqual((await client.models.list()).data.map((model) => model.id), ["stories260K"]);
        const completion = await client.completions.create({model: "stories260K", prompt: "Once upon a time", max_tokens: 12, temperature: 0});
        assert.match(completion.choices[0]!.text, /Lily/);
        server.child.kill("SIGTERM");
        assert.equal((await server.exited).code, 0);

        // By its library name, --model serves it pinned: loaded at start.
        const pinned = spawnHearth(["serve", "--model", "stories260K", "--port", "0", "--threads", "1"], env);
        try {
            const [, pinnedUrl] = await pinned.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
            await pinned.waitForOutput(/Ready: stories260K\n/);
            const ps = await (await fetch(`${pinnedUrl}/api/ps`)).json() as {models: {name: string, expires_at: string}[]};
            assert.deepEqual(ps.models.map((model) => [model.name, model.expires_at.slice(0, 4)]), [["stories260K", "2318"]]);
        } finally {
            pinned.child.kill("SIGTERM");
        }
        assert.equal((await pinned.exited).code, 0);

        const removed = await spawnHearth(["rm", "stories260K"], env).exited;
        assert.equal(removed.code, 0, removed.stderr);
        assert.match((await spawnHearth(["ls"], env).exited).stdout, /The library is empty/);
        assert.ok(existsSync(original));
        const missing = await spawnHearth(["rm", "stories260K"], env).exited;
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /not in the library/);
    });
});

describe("hearth pull", () => {
    let hub: FakeHub;

    before(async () => {
        hub = await startFakeHub([{id: REPO, files: [
            {path: "stories260K-Q8_0.gguf", source: await testModel("derived/stories260K-Q8_0.gguf")},
            {path: "stories260K-F16.gguf", source: await testModel("derived/stories260K-F16.gguf")}
        ]}]);
    });
    after(async () => {
        await hub.close();
    });

    it("searches the Hub, lists a repo's quantizations, pulls one with progress, and chats with it", async () => {
        const env = {HEARTH_HOME: await mkdtemp(path.join(os.tmpdir(), "hearth-cli-")), HF_ENDPOINT: hub.url};
        const found = await spawnHearth(["search", "stories"], env).exited;
        assert.equal(found.code, 0, found.stderr);
        assert.match(found.stdout, /^hf\.co\/ggml-org\/stories260K-GGUF\s+\d+/m);
        const files = await spawnHearth(["files", REPO], env).exited;
        assert.match(files.stdout, /^hf\.co\/ggml-org\/stories260K-GGUF:Q8_0 \(default\)\s+Q8_0\s+379 KB\s+1\s+no$/m);
        assert.match(files.stdout, /^hf\.co\/ggml-org\/stories260K-GGUF:F16\s+F16\s+/m);

        const pulled = await spawnHearth(["pull", `hf.co/${REPO}:Q8_0`], env).exited;
        assert.equal(pulled.code, 0, pulled.stderr);
        assert.match(pulled.stderr, /pulling +100% {2}379 KB\/379 KB/);
        assert.match(pulled.stderr, new RegExp(`pulled hf\\.co/${REPO}:Q8_0`));
        assert.match((await spawnHearth(["ls"], env).exited).stdout, /hf\.co\/ggml-org\/stories260K-GGUF:Q8_0\s+379 KB\s+\d+K\s+Q8_0\s+llama/);
        const answered = await spawnHearth(["run", `hf.co/${REPO}:Q8_0`, "Tell me a story", "--threads", "1"], env).exited;
        assert.equal(answered.code, 0, answered.stderr);
        assert.ok(answered.stdout.trim().length > 0, "it answers");
    });

    it("names what is wrong when a pull cannot work", async () => {
        const env = {HEARTH_HOME: await mkdtemp(path.join(os.tmpdir(), "hearth-cli-")), HF_ENDPOINT: hub.url};

        const unknown = await spawnHearth(["pull", `hf.co/${REPO}:Q2_K`], env).exited;
        assert.equal(unknown.code, 2);
        assert.match(unknown.stderr, /has no Q2_K GGUF file\. It has: Q8_0, F16/);
        const offline = await spawnHearth(["pull", `hf.co/${REPO}:Q8_0`], {...env, HF_ENDPOINT: "http://127.0.0.1:9"}).exited;
        assert.equal(offline.code, 1);
        assert.match(offline.stderr, /could not be reached/);
    });

    it("serve --model hf.co/… pulls the model with progress when the library lacks it, then serves it pinned under its library name", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-cli-"));
        const server = spawnHearth(["serve", "--model", `hf.co/${REPO}`, "--alias", "tiny", "--port", "0", "--threads", "1", "--parallel", "2"], {HEARTH_HOME: home, HF_ENDPOINT: hub.url});
        try {
            const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
            await server.waitForOutput(/Ready: hf\.co\/ggml-org\/stories260K-GGUF:Q8_0, tiny/);
            const client = new OpenAI({baseURL: `${url}/v1`, apiKey: "x"});
            for (const model of ["tiny", `hf.co/${REPO}`, `hf.co/${REPO}:Q8_0`]) {
                const completion = await client.completions.create({model, prompt: "Once upon a time", max_tokens: 12, temperature: 0});
                assert.match(completion.choices[0]!.text, /Lily/, model);
            }
            const ps = await (await fetch(`${url}/api/ps`)).json() as {models: {name: string, expires_at: string, details: {family: string, quantization_level: string}}[]};
            assert.deepEqual(ps.models.map((model) => [model.name, model.details.family, model.details.quantization_level]), [[`hf.co/${REPO}:Q8_0`, "llama", "Q8_0"]],
                "loaded once, though asked for by three names");
            assert.match(ps.models[0]!.expires_at, /^2318/);
            const unload = await fetch(`${url}/api/unload`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: "tiny"})});
            assert.equal(unload.status, 409);
        } finally {
            server.child.kill("SIGTERM");
        }
        const {code, stderr} = await server.exited;
        assert.equal(code, 0, stderr);
        assert.ok(stderr.includes(`hf.co/${REPO} is not in the library (${home}): pulling it first`), stderr);
        assert.match(stderr, /pulling +100% {2}379 KB\/379 KB/);
        assert.match(stderr, new RegExp(`pulled hf\\.co/${REPO}:Q8_0`));

        // Once pulled, it starts from the library without asking the Hub (here unreachable), by its library name as by the Hub's.
        const offline = spawnHearth(["serve", "--model", `hf.co/${REPO}:Q8_0`, "--port", "0", "--threads", "1"], {HEARTH_HOME: home, HF_ENDPOINT: "http://127.0.0.1:9"});
        try {
            await offline.waitForOutput(/Ready: hf\.co\/ggml-org\/stories260K-GGUF:Q8_0\n/);
        } finally {
            offline.child.kill("SIGTERM");
        }
        assert.equal((await offline.exited).code, 0);
    });

    it("serve --model with a name that names nothing fails at start, saying why", async () => {
        const env = {HEARTH_HOME: await mkdtemp(path.join(os.tmpdir(), "hearth-cli-")), HF_ENDPOINT: hub.url};
        const cases: [string, RegExp][] = [
            ["no-such-model", /--model no-such-model: there is no such file, and no model of that name in the library .*hearth ls lists the library/],
            [`hf.co/${REPO}:Q2_K`, /has no Q2_K GGUF file\. It has: Q8_0, F16/],
            ["hf.co/nobody/nothing", /not found on the Hub/],
            ["hf.co/just-a-name", /a Hub model is named hf\.co\/\{owner\}\/\{repo\}/]
        ];
        for (const [name, pattern] of cases) {
            const started = performance.now();
            const {code, stdout, stderr} = await spawnHearth(["serve", "--model", name, "--port", "0"], env).exited;
            assert.equal(code, 2, `${name}: ${stderr}`);
            assert.match(stderr, pattern, name);
            assert.doesNotMatch(stdout, /listening/, "it never listens");
            assert.ok(performance.now() - started < 20_000, "fails fast");
        }
    });

    it("resumes after the process was killed in the middle of a download", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-cli-"));
        const env = {HEARTH_HOME: home, HF_ENDPOINT: hub.url};
        const partial = path.join(home, "models", "hf.co", "ggml-org", "stories260K-GGUF", "stories260K-F16.gguf.partial");
        hub.faults.bytesPerSecond = 100_000;
        const first = spawnHearth(["pull", `hf.co/${REPO}:F16`], env);
        for (let waited = 0; (await stat(partial).catch(() => undefined))?.size == null || (await stat(partial)).size < 150_000; waited++) {
            assert.ok(waited < 200, "the download starts");
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
        first.child.kill("SIGKILL");
        await first.exited;
        const partialBytes = (await stat(partial)).size;
        hub.faults.bytesPerSecond = undefined;
        hub.requests.length = 0;

        const second = await spawnHearth(["pull", `hf.co/${REPO}:F16`], env).exited;
        assert.equal(second.code, 0, second.stderr);
        const range = hub.requests.find((request) => request.path.startsWith("/cdn/"))?.range;
        assert.equal(range, `bytes=${partialBytes}-`);
        assert.ok(!existsSync(partial));
        assert.match((await spawnHearth(["ls"], env).exited).stdout, /stories260K-GGUF:F16/);
    });
});
