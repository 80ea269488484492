/**
 * `npm run bench:gateway`: what Hearth costs in front of an upstream. One Hearth serves the model (the upstream);
 * another, with no model of its own, forwards to it (`--upstream`). Streamed completions go to the upstream directly,
 * through the gateway by the model's name, and through the gateway by a route's name (`--route`), in turns.
 *
 *   node dist/bench/gateway.js [--model FILE] [--threads N] [--tokens N] [--runs N] [--ttft-runs N]
 *
 * Prints a table and writes JSON to bench/results/. Aggregate tokens/s is the best of --runs at 1 and 16 streams;
 * time to first token is the median of --ttft-runs single short streams.
 */
import path from "node:path";
import {parseArgs} from "node:util";
import {spawnHearth} from "../test/helpers/spawnHearth.js";
import {testModel} from "../test/helpers/testModels.js";
import {describeMachine, printTable, writeResult} from "./report.js";
import {best, concurrentStreams, median, streamCompletion} from "./streamClient.js";
import type {ConcurrentResult} from "./streamClient.js";

const {values: args} = parseArgs({options: {
    model: {type: "string"},
    threads: {type: "string", default: "1"},
    tokens: {type: "string", default: "300"},
    runs: {type: "string", default: "5"},
    "ttft-runs": {type: "string", default: "40"}
}});
const threads = Number(args.threads);
const tokens = Number(args.tokens);
const runs = Number(args.runs);
const ttftRuns = Number(args["ttft-runs"]);
const STREAMS = [1, 16];
const prompt = "Once upon a time";

type Path = {label: string, url: string, model: string};

async function start(argv: string[]): Promise<{url: string, stop(): Promise<void>}> {
    const server = spawnHearth(["serve", "--port", "0", "--gpu", "cpu", ...argv]);
    const [, url] = await server.waitForOutput(/listening on (\S+) /);
    return {url: url!, stop: async () => {
        server.child.kill("SIGTERM");
        await server.exited;
    }};
}

async function waitForModel(url: string, model: string): Promise<void> {
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
        const response = await fetch(`${url}/v1/models`).catch(() => undefined);
        const models = response?.ok === true ? (await response.json() as {data: {id: string}[]}).data.map((entry) => entry.id) : [];
        if (models.includes(model) && (await fetch(`${url}/health`).then((health) => health.json() as Promise<{status: string}>)).status === "ok")
            return;
    }
    throw new Error(`${url} does not serve ${model} after 60 s`);
}

function measure(target: Path, streams: number, maxTokens = tokens): Promise<ConcurrentResult> {
    return concurrentStreams(target.url, streams, {model: target.model, prompt, max_tokens: maxTokens, temperature: 0});
}

async function main() {
    const modelPath = args.model != null ? path.resolve(args.model) : await testModel("stories260K.gguf");
    const parallel = Math.max(...STREAMS);
    console.log(`model ${path.basename(modelPath)}, ${threads} thread(s), ${tokens} tokens, best of ${runs}; TTFT median of ${ttftRuns}; upstream --parallel ${parallel}`);
    const upstream = await start(["--model", modelPath, "--alias", "bench", "--threads", String(threads), "--parallel", String(parallel), "--ctx-size", String(512 * parallel)]);
    let gateway: Awaited<ReturnType<typeof start>> | undefined;
    const throughput: Record<string, Record<number, ConcurrentResult>> = {};
    const ttft: Record<string, number[]> = {};
    let paths: Path[] = [];
    try {
        gateway = await start(["--upstream", upstream.url, "--route", "bench-route=bench"]);
        await waitForModel(upstream.url, "bench");
        await waitForModel(gateway.url, "bench");
        paths = [
            {label: "upstream directly", url: upstream.url, model: "bench"},
            {label: "through Hearth", url: gateway.url, model: "bench"},
            {label: "through Hearth, by a route", url: gateway.url, model: "bench-route"}
        ];
        for (let warm = 0; warm < 5; warm++)
            for (const target of paths)
                await measure(target, 1);
        // The paths take turns within each run, so a machine whose speed drifts affects them alike.
        for (const streams of STREAMS) {
            const measured = new Map<Path, ConcurrentResult[]>(paths.map((target) => [target, []]));
            for (let run = 0; run < runs; run++)
                for (const target of paths)
                    measured.get(target)!.push(await measure(target, streams));
            for (const target of paths)
                (throughput[target.label] ??= {})[streams] = best(measured.get(target)!, (result) => result.aggregate);
        }
        for (let run = 0; run < ttftRuns; run++)
            for (const target of paths)
                (ttft[target.label] ??= []).push((await streamCompletion(target.url, {model: target.model, prompt, max_tokens: 2, temperature: 0})).ttftMs);
    } finally {
        await gateway?.stop();
        await upstream.stop();
    }

    const direct = paths[0]!.label;
    const ttftMedianMs = Object.fromEntries(Object.entries(ttft).map(([label, values]) => [label, median(values)]));
    const rows: string[][] = [["", ...paths.map((target) => target.label)]];
    for (const streams of STREAMS)
        rows.push([`aggregate tok/s, ${streams} stream${streams > 1 ? "s" : ""}`, ...paths.map((target) => {
            const value = throughput[target.label]![streams]!.aggregate;
            return target.label === direct ? value.toFixed(0) : `${value.toFixed(0)} (${(100 * value / throughput[direct]![streams]!.aggregate).toFixed(1)}%)`;
        })]);
    rows.push(["decode tok/s, 1 stream", ...paths.map((target) => throughput[target.label]![1]!.perStream[0]!.decodeTokensPerSecond.toFixed(0))]);
    rows.push(["time to first token, median", ...paths.map((target) => target.label === direct
        ? `${ttftMedianMs[target.label]!.toFixed(2)} ms`
        : `${ttftMedianMs[target.label]!.toFixed(2)} ms (+${(ttftMedianMs[target.label]! - ttftMedianMs[direct]!).toFixed(2)} ms)`)]);
    printTable(rows);

    await writeResult("gateway", {
        date: new Date().toISOString(), machine: describeMachine(), model: path.basename(modelPath), threads, tokens, runs, ttftRuns, upstreamParallel: parallel,
        paths: Object.fromEntries(paths.map((target) => [target.label, {
            aggregateTokensPerSecond: Object.fromEntries(STREAMS.map((streams) => [streams, throughput[target.label]![streams]!.aggregate])),
            singleStreamDecodeTokensPerSecond: throughput[target.label]![1]!.perStream[0]!.decodeTokensPerSecond,
            ttftMedianMs: ttftMedianMs[target.label]
        }])),
        ratios: Object.fromEntries(paths.slice(1).map((target) => [target.label, {
            ...Object.fromEntries(STREAMS.map((streams) => [`aggregate${streams}`, throughput[target.label]![streams]!.aggregate / throughput[direct]![streams]!.aggregate])),
            addedTtftMs: ttftMedianMs[target.label]! - ttftMedianMs[direct]!
        }]))
    });
}

await main();
