import {existsSync} from "node:fs";
import {readFile, writeFile} from "node:fs/promises";
import path from "node:path";
import {parseArgs} from "node:util";
import {HubClient, Library, formatBytes} from "../models/index.js";
import {defaultBenchText} from "../native/benchmark/defaultBenchText.js";
import {BenchmarkError} from "../native/errors.js";
import {loadBackend} from "../native/loadBackend.js";
import {systemReport} from "../native/systemReport.js";
import {BenchStore} from "./benchmarks/BenchStore.js";
import type {SavedModelResult} from "./benchmarks/BenchStore.js";
import {runRecordedBenchmark} from "./benchmarks/runRecordedBenchmark.js";
import {ConfigError, parseServeArgs} from "./config.js";
import {loadTest} from "./loadTest.js";
import type {LoadTestResult} from "./loadTest.js";

export const BENCH_USAGE = `Benchmarks:
  bench --model M [--model M]... [--text FILE] [--ctx-size N] [--prompt-tokens N] [--gen-tokens N]
        [--parallel N] [--repetitions N] [--threads N] [--gpu B] [--gpu-layers N] [--flash-attn M] [--json] [--csv FILE]
                                each model (a .gguf file or a library name), alone in its own process:
                                size, load time, prompt and generation tokens/s, time to first token,
                                peak memory, perplexity on the text and KL divergence from the first model
  bench --server URL --model NAME [--concurrency 1,4,16] [--requests N] [--max-tokens N]
        [--api-key KEY] [--json] [--csv FILE]
                                a load test of any OpenAI-compatible server: latency percentiles,
                                time to first token and aggregate tokens/s at each concurrency`;

const options = {
    model: {type: "string", short: "m", multiple: true},
    text: {type: "string"},
    "ctx-size": {type: "string", default: "512"},
    "prompt-tokens": {type: "string", default: "512"},
    "gen-tokens": {type: "string", default: "128"},
    parallel: {type: "string", default: "1"},
    repetitions: {type: "string", default: "3"},
    threads: {type: "string"},
    gpu: {type: "string"},
    "gpu-layers": {type: "string"},
    "flash-attn": {type: "string"},
    home: {type: "string"},
    server: {type: "string"},
    concurrency: {type: "string", default: "1,4,16"},
    requests: {type: "string"},
    "max-tokens": {type: "string", default: "128"},
    "api-key": {type: "string"},
    json: {type: "boolean", default: false},
    csv: {type: "string"},
    help: {type: "boolean", short: "h"}
} as const;

function positiveInteger(flag: string, value: string, max = 1_000_000): number {
    const number = Number(value);
    if (!Number.isInteger(number) || number < 1 || number > max)
        throw new ConfigError(`--${flag} must be a whole number from 1 to ${max}, got "${value}"`);
    return number;
}

export async function runBenchCommand(argv: readonly string[]): Promise<void> {
    let values;
    try {
        ({values} = parseArgs({args: [...argv], options, strict: true, allowPositionals: false}));
    } catch (error) {
        throw new ConfigError(`${(error as Error).message}\n${BENCH_USAGE}`);
    }
    if (values.help === true) {
        console.log(BENCH_USAGE);
        return;
    }
    if (values.model == null || values.model.length === 0)
        throw new ConfigError(`name at least one --model\n${BENCH_USAGE}`);
    if (values.server != null)
        return runLoadTest(values.server, values);
    return runModelBenchmarks(values.model, values);
}

type Values = {[key in keyof typeof options]?: (typeof options)[key] extends {multiple: true} ? string[] : (typeof options)[key] extends {type: "boolean"} ? boolean : string};

async function runModelBenchmarks(models: readonly string[], values: Values): Promise<void> {
    // The engine flags parse (and fail) exactly as `hearth serve`'s do.
    const serveFlags = (["threads", "gpu", "gpu-layers", "flash-attn", "home"] as const)
        .flatMap((flag) => values[flag] != null ? [`--${flag}`, values[flag]] : []);
    const {config} = parseServeArgs(serveFlags);
    const resolved = await resolveModels(models, config.home, config.hub);
    const text = values.text != null ? await readText(values.text) : defaultBenchText;
    const settings = {
        ctxSize: positiveInteger("ctx-size", values["ctx-size"]!, 1 << 20),
        promptTokens: positiveInteger("prompt-tokens", values["prompt-tokens"]!, 1 << 20),
        generateTokens: positiveInteger("gen-tokens", values["gen-tokens"]!, 1 << 20),
        parallel: positiveInteger("parallel", values.parallel!, 256),
        repetitions: positiveInteger("repetitions", values.repetitions!, 1000),
        threads: config.threads,
        gpuLayers: config.gpuLayers,
        flashAttention: config.flashAttention
    };
    const {llama, report: backend} = await loadBackend(config.gpu);
    const machine = await systemReport(llama, backend);
    await llama.dispose();
    // Every run goes into the history the app shows (GET /api/bench/runs), failed ones with their error.
    const store = new BenchStore(config.home);
    try {
        const run = store.start(models, {...settings, gpu: config.gpu}, machine);
        const finished = await runRecordedBenchmark(store, run, {
            knownSha256: (modelPath) => resolved.find((model) => model.path === modelPath)?.sha256,
            plan: {modelPaths: resolved.map((model) => model.path), text, gpu: config.gpu, settings, scratchDir: config.home}
        }, (progress) => {
            if (!values.json && progress.result == null)
                process.stderr.write(`[${progress.done + 1}/${progress.total}] ${progress.model}…\n`);
        });
        if (finished.status !== "complete")
            throw new BenchmarkError(finished.error ?? "The benchmark did not finish");
        await report(finished.results, values, modelTable);
    } finally {
        store.close();
    }
}

async function runLoadTest(url: string, values: Values): Promise<void> {
    const concurrency = values.concurrency!.split(",").map((item) => positiveInteger("concurrency", item.trim(), 10_000));
    const results: LoadTestResult[] = [];
    for (const level of concurrency) {
        if (!values.json)
            process.stderr.write(`concurrency ${level}…\n`);
        results.push(await loadTest({
            baseUrl: url, model: values.model![0]!, concurrency: level,
            requests: values.requests != null ? positiveInteger("requests", values.requests) : Math.max(level * 2, 8),
            maxTokens: positiveInteger("max-tokens", values["max-tokens"]!), apiKey: values["api-key"]
        }));
    }
    await report(results, values, loadTable);
}

async function report<T extends Record<string, unknown>>(rows: readonly T[], values: Values, table: (rows: readonly T[]) => string): Promise<void> {
    if (values.csv != null)
        await writeFile(values.csv, toCsv(rows));
    console.log(values.json ? JSON.stringify(rows, null, 2) : table(rows));
}

/** A file path as given, else a library model's path (and its known sha256); either way it must exist. */
async function resolveModels(models: readonly string[], home: string, hub: ConstructorParameters<typeof HubClient>[0]): Promise<{path: string, sha256?: string}[]> {
    let library: Library | undefined;
    try {
        const paths: {path: string, sha256?: string}[] = [];
        for (const model of models) {
            if (/\.gguf$/i.test(model) && existsSync(model)) {
                paths.push({path: path.resolve(model)});
                continue;
            }
            library ??= await Library.open({home, hub: new HubClient(hub)});
            const found = library.find(model);
            if (found == null)
                throw new ConfigError(`"${model}" is neither a .gguf file nor a model in the library (${home}); hearth ls lists the library`);
            paths.push({path: library.filePaths(found)[0]!, sha256: found.sha256});
        }
        return paths;
    } finally {
        library?.close();
    }
}

async function readText(file: string): Promise<string> {
    try {
        return await readFile(file, "utf8");
    } catch (error) {
        throw new ConfigError(`cannot read --text ${file}: ${(error as Error).message}`);
    }
}

/** One header row from the first object's keys; nested objects are left out (they are in --json). */
export function toCsv(rows: readonly Record<string, unknown>[]): string {
    if (rows.length === 0)
        return "";
    const keys = Object.keys(rows[0]!).filter((key) => typeof rows[0]![key] !== "object" || rows[0]![key] === null);
    const cell = (value: unknown) => {
        const text = value == null ? "" : String(value);
        return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
    };
    return [keys.join(","), ...rows.map((row) => keys.map((key) => cell(row[key])).join(","))].join("\n") + "\n";
}

function columns(header: string[], rows: string[][]): string {
    const widths = header.map((title, index) => Math.max(title.length, ...rows.map((row) => row[index]!.length)));
    const line = (cells: string[]) => cells.map((text, index) => index === 0 ? text.padEnd(widths[index]!) : text.padStart(widths[index]!)).join("  ");
    return [line(header), ...rows.map(line)].join("\n");
}

function modelTable(results: readonly SavedModelResult[]): string {
    const range = (spread: {min: number, max: number}, digits: number) => `±${((spread.max - spread.min) / 2).toFixed(digits)}`;
    return columns(
        ["model", "quant", "size", "load ms", "pp tok/s", "tg tok/s", "ttft ms", "peak RSS", "perplexity", "KLD"],
        results.map((result) => [
            result.model, result.quant ?? "?", formatBytes(result.size_bytes), result.load_ms.toFixed(0),
            `${result.pp_tps.toFixed(0)} ${range(result.spread.pp_tps, 0)}`, `${result.tg_tps.toFixed(1)} ${range(result.spread.tg_tps, 1)}`,
            result.ttft_ms.toFixed(1), formatBytes(result.peak_rss_bytes), result.perplexity.toFixed(3), result.kld.toFixed(5)
        ])
    ) + `\n\nMedian of ${results[0]?.repetitions ?? 0} run${results[0]?.repetitions === 1 ? "" : "s"} (± half the range)${(results[0]?.settings.parallel ?? 1) > 1 ? `, ${results[0]!.settings.parallel} generations at once (tg tok/s is their sum)` : ""}; perplexity and KLD over ${results[0]?.scored_tokens ?? 0} tokens of the text; KLD is from ${results[0]?.model ?? "the first model"}.`;
}

function loadTable(results: readonly LoadTestResult[]): string {
    return columns(
        ["concurrency", "requests", "errors", "ttft p50 ms", "ttft p95 ms", "latency p50 ms", "p95 ms", "p99 ms", "tok/s"],
        results.map((result) => [String(result.concurrency), String(result.requests), String(result.errors),
            result.ttft_p50_ms.toFixed(1), result.ttft_p95_ms.toFixed(1), result.latency_p50_ms.toFixed(0),
            result.latency_p95_ms.toFixed(0), result.latency_p99_ms.toFixed(0), result.tokens_per_s.toFixed(1)])
    );
}
