import assert from "node:assert/strict";
import {mkdtemp} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {describe, it} from "node:test";
import {sha256Of} from "../models/index.js";
import type {ModelBenchResult} from "../native/benchmark/benchmarkModel.js";
import {klDivergence, logSoftmax} from "../native/benchmark/quality.js";
import {toCsv} from "../server/benchCli.js";
import {BenchStore} from "../server/benchmarks/BenchStore.js";
import type {BenchRun} from "../server/benchmarks/BenchStore.js";
import type {LoadTestResult} from "../server/loadTest.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {useTestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/** `hearth bench`: quantizations measured side by side, and a load test of a running server. */

const quick = ["--repetitions", "1", "--prompt-tokens", "64", "--gen-tokens", "16"];

async function bench(args: readonly string[], env: Record<string, string> = {}) {
    const run = spawnHearth(["bench", ...args], env);
    return run.exited;
}

function savedRuns(home: string): BenchRun[] {
    const store = new BenchStore(home);
    try {
        return store.list();
    } finally {
        store.close();
    }
}

describe("hearth bench", () => {
    it("measures F32, F16, Q8_0 and Q4_0 of one model: every figure present, quality falling as bits shrink", async () => {
        const files = await Promise.all(["stories260K.gguf", "derived/stories260K-F16.gguf", "derived/stories260K-Q8_0.gguf", "derived/stories260K-Q4_0.gguf"].map(testModel));
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-bench-home-"));
        const {code, stdout, stderr} = await bench([...files.flatMap((file) => ["--model", file]), ...quick, "--json"], {HEARTH_HOME: home});
        assert.equal(code, 0, stderr);
        const rows = JSON.parse(stdout) as (ModelBenchResult & {sha256: string})[];
        assert.deepEqual(rows.map((row) => row.quant), ["F32", "F16", "Q8_0", "Q4_0"]);
        for (const row of rows) {
            for (const key of ["size_bytes", "load_ms", "pp_tps", "tg_tps", "ttft_ms", "peak_rss_bytes", "perplexity", "scored_tokens"] as const)
                assert.ok(Number.isFinite(row[key]) && row[key] > 0, `${row.model} ${key} = ${row[key]}`);
            assert.equal(row.vram_bytes, 0, "nothing on a GPU here");
            assert.ok(row.spread.tg_tps.min <= row.tg_tps && row.tg_tps <= row.spread.tg_tps.max);
        }
        const [f32, f16, q8, q4] = [rows[0]!, rows[1]!, rows[2]!, rows[3]!];
        assert.equal(f32.kld, 0, "the reference against itself");
        assert.ok(f16.kld >= 0 && q8.kld >= 0);
        assert.ok(q4.kld > q8.kld, `Q4_0 KLD ${q4.kld} > Q8_0 KLD ${q8.kld}`);
        assert.ok(q8.kld > f16.kld, `Q8_0 KLD ${q8.kld} > F16 KLD ${f16.kld}`);
        assert.ok(q4.perplexity >= f32.perplexity, `Q4_0 perplexity ${q4.perplexity} not below F32's ${f32.perplexity}`);
        assert.ok(f32.size_bytes > f16.size_bytes && f16.size_bytes > q8.size_bytes && q8.size_bytes > q4.size_bytes);

        // The run is in the history, with the machine and each file's sha256.
        const [saved, ...others] = savedRuns(home);
        assert.equal(others.length, 0);
        assert.equal(saved!.status, "complete");
        assert.deepEqual(saved!.models, files);
        assert.equal(saved!.settings.repetitions, 1);
        assert.ok((saved!.machine as {cpu?: unknown}).cpu != null, "the machine is described");
        assert.deepEqual(saved!.results.map((row) => row.kld), rows.map((row) => row.kld));
        assert.equal(saved!.results[0]!.sha256, await sha256Of(files[0]!));
        assert.equal(rows[3]!.sha256, await sha256Of(files[3]!));
    });

    it("prints a table, writes CSV, and takes its own text", async () => {
        const file = await testModel("derived/stories260K-Q8_0.gguf");
        const {mkdtemp, readFile, writeFile} = await import("node:fs/promises");
        const os = await import("node:os");
        const dir = await mkdtemp(`${os.tmpdir()}/hearth-bench-`);
        await writeFile(`${dir}/text.txt`, "Lily and Ben went to the park. They played with a ball and ate ice cream. ".repeat(20));
        const {code, stdout, stderr} = await bench(["--model", file, ...quick, "--text", `${dir}/text.txt`, "--ctx-size", "128", "--parallel", "2", "--csv", `${dir}/out.csv`]);
        assert.equal(code, 0, stderr);
        assert.match(stdout, /stories260K-Q8_0\.gguf\s+Q8_0/);
        assert.match(stdout, /2 generations at once/);
        assert.match(stdout, /perplexity/);
        const csv = (await readFile(`${dir}/out.csv`, "utf8")).trim().split("\n");
        assert.equal(csv.length, 2);
        assert.match(csv[0]!, /^model,path,size_bytes,quant,load_ms,pp_tps,tg_tps,ttft_ms,peak_rss_bytes,vram_bytes,perplexity,kld,/);
    });

    it("refuses what it cannot measure with a message a person can act on", async () => {
        const stories = await testModel("stories260K.gguf");
        const synthetic = await testModel("synthetic/synthetic-llama-23M-Q8_0.gguf");
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-bench-home-"));
        const mismatch = await bench(["--model", stories, "--model", synthetic, ...quick], {HEARTH_HOME: home});
        assert.equal(mismatch.code, 2);
        assert.match(mismatch.stderr, /synthetic-llama-23M-Q8_0\.gguf: .*vocabulary/);
        const [failed] = savedRuns(home);
        assert.equal(failed!.status, "failed");
        assert.match(failed!.error!, /vocabulary/);
        assert.equal(failed!.results.length, 1, "the model measured before the failure is kept");
        const unknown = await bench(["--model", "no-such-model", ...quick]);
        assert.equal(unknown.code, 2);
        assert.match(unknown.stderr, /"no-such-model" is neither a \.gguf file nor a model in the library/);
        const none = await bench([]);
        assert.equal(none.code, 2);
        assert.match(none.stderr, /name at least one --model/);
        const badNumber = await bench(["--model", stories, "--repetitions", "0"]);
        assert.equal(badNumber.code, 2);
        assert.match(badNumber.stderr, /--repetitions must be a whole number from 1/);
    });

    it("writes CSV cells that spreadsheets read back", () => {
        assert.equal(toCsv([{a: "x,y", b: 'say "hi"', c: 1, nested: {left: "out"}}]), 'a,b,c\n"x,y","say ""hi""",1\n');
    });

    it("computes KL divergence as zero for the same distribution and positive for another", () => {
        const p = logSoftmax(Float32Array.of(2, 1, 0));
        const q = logSoftmax(Float32Array.of(0, 1, 2));
        assert.ok(Math.abs(klDivergence(p, p)) < 1e-9);
        assert.ok(klDivergence(p, q) > 0.5);
    });

    describe("/api/bench, for the Benchmarks view", () => {
        const server = useTestServer({modelFiles: ["stories260K.gguf", "derived/stories260K-Q4_0.gguf"]});
        const post = (body: unknown) => fetch(`${server.url}/api/bench`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});

        it("runs in the background with progress, and keeps the run", async () => {
            const started = await post({models: ["stories260K", "stories260K-Q4_0"], repetitions: 1, prompt_tokens: 32, gen_tokens: 8});
            assert.equal(started.status, 202);
            const run = await started.json() as BenchRun;
            assert.equal(run.status, "running");
            assert.deepEqual(run.progress, {done: 0, total: 2, model: null});

            const busy = await post({models: ["stories260K"]});
            assert.equal(busy.status, 409);
            assert.match((await busy.json() as {error: string}).error, /already running/);

            let current = run;
            const seen = new Set<number>();
            for (let attempt = 0; attempt < 600 && current.status === "running"; attempt++) {
                await new Promise((resolve) => setTimeout(resolve, 100));
                current = await (await fetch(`${server.url}/api/bench/runs/${run.id}`)).json() as BenchRun;
                seen.add(current.progress.done);
            }
            assert.equal(current.status, "complete", current.error ?? "");
            assert.equal(current.results.length, 2);
            assert.equal(current.results[0]!.kld, 0);
            assert.ok(current.results[1]!.kld > 0);
            assert.ok(current.results.every((row) => /^[0-9a-f]{64}$/.test(row.sha256)));
            assert.ok(seen.size >= 1);

            const {runs} = await (await fetch(`${server.url}/api/bench/runs`)).json() as {runs: BenchRun[]};
            assert.equal(runs[0]!.id, run.id);
        });

        it("refuses models it does not serve, bad settings and unknown runs", async () => {
            const unknown = await post({models: ["/etc/passwd"]});
            assert.equal(unknown.status, 404);
            assert.match((await unknown.json() as {error: string}).error, /does not exist/);
            const bad = await post({models: ["stories260K"], repetitions: 0});
            assert.equal(bad.status, 400);
            const none = await post({models: []});
            assert.equal(none.status, 400);
            const missing = await fetch(`${server.url}/api/bench/runs/nope`);
            assert.equal(missing.status, 404);
        });
    });

    describe("--server, a load test", () => {
        const server = useTestServer();

        it("reports latency percentiles, time to first token and tokens/s at each concurrency against Hearth's own server", async () => {
            const {code, stdout, stderr} = await bench(["--server", server.url, "--model", "stories260K", "--concurrency", "1,4", "--requests", "8", "--max-tokens", "24", "--json"]);
            assert.equal(code, 0, stderr);
            const levels = JSON.parse(stdout) as LoadTestResult[];
            assert.deepEqual(levels.map((level) => level.concurrency), [1, 4]);
            for (const level of levels) {
                assert.equal(level.errors, 0, level.first_error ?? "");
                assert.equal(level.requests, 8);
                assert.ok(level.ttft_p50_ms > 0 && level.ttft_p50_ms <= level.ttft_p95_ms);
                assert.ok(level.latency_p50_ms >= level.ttft_p50_ms);
                assert.ok(level.latency_p50_ms <= level.latency_p95_ms && level.latency_p95_ms <= level.latency_p99_ms);
                assert.ok(level.tokens_per_s > 0);
            }
        });

        it("counts a server's refusals as errors and says why", async () => {
            const {code, stdout} = await bench(["--server", server.url, "--model", "no-such-model", "--concurrency", "2", "--requests", "2", "--json"]);
            assert.equal(code, 0);
            const [level] = JSON.parse(stdout) as LoadTestResult[];
            assert.equal(level!.errors, 2);
            assert.match(level!.first_error!, /HTTP 404: .*does not exist/);
        });
    });
});
