/**
 * `npm run bench:gateway`: what Hearth costs in front of an upstream. One Hearth serves the model (the upstream);
 * another, with no model of its own, forwards to it (`--upstream`). Streamed completions go to the upstream directly,
 * through the gateway by the model's name, and through the gateway by a route's name (`--route`), in turns.
 *
 *   node dist/bench/gateway.js [--model FILE] [--threads N] [--tokens N] [--runs N] [--ttft-runs N] [--pin auto|on|off] [--warm-requests N]
 *
 * Prints a table and writes JSON to bench/results/. Aggregate tokens/s is the best of --runs at 1 and 16 streams;
 * time to first token is the median of --ttft-runs single short streams. The gateway's CPU time per relayed token
 * (all its threads, over the measured runs) is its overhead in a figure that depends little on how busy the machine is.
 *
 * `--pin` (`auto`, the default: on where there are 2 cores or more and `taskset` is installed) runs the upstream on
 * CPU 0 and the gateway and the client on CPU 1, as the gateway runs in production (the upstream on a machine of its
 * own), so that neither takes the other's core; `off` lets the three processes share all cores.
 *
 * `--warm-requests N` (default 2000; 0 for a cold gateway) first sends N short streams on each path, as a server that
 * has been running a while has served: a freshly started gateway spends two to three times the CPU on each of its first thousand requests or
 * so that it spends once V8 has optimised the code every request runs (see docs/benchmarks.md).
 */
import {execFileSync} from "node:child_process";
import {existsSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {parseArgs} from "node:util";
import {testModel} from "../test/helpers/testModels.js";
import {startHearth, threadsCpuSeconds, waitForModel} from "./hearthServer.js";
import type {BenchServer} from "./hearthServer.js";
import {describeMachine, printTable, writeResult} from "./report.js";
import {best, concurrentStreams, median, streamCompletion} from "./streamClient.js";
import type {ConcurrentResult} from "./streamClient.js";

const {values: args} = parseArgs({options: {
    model: {type: "string"},
    threads: {type: "string", default: "1"},
    tokens: {type: "string", default: "300"},
    runs: {type: "string", default: "5"},
    "ttft-runs": {type: "string", default: "40"},
    pin: {type: "string", default: "auto"},
    "warm-requests": {type: "string", default: "2000"}
}});
const threads = Number(args.threads);
const tokens = Number(args.tokens);
const runs = Number(args.runs);
const ttftRuns = Number(args["ttft-runs"]);
const warmRequests = Number(args["warm-requests"]);
const STREAMS = [1, 16];
const prompt = "Once upon a time";
const UPSTREAM_CPU = "0";
const GATEWAY_CPU = "1";

type Path = {label: string, url: string, model: string};

/** Whether the processes are pinned to cores (`--pin`); `auto` pins where there are two cores and `taskset`. */
function pinning(): boolean {
    if (!["auto", "on", "off"].includes(args.pin!))
        throw new Error(`--pin must be auto, on or off, not "${args.pin}"`);
    if (args.pin === "off")
        return false;
    const possible = os.cpus().length >= 2 && hasTaskset();
    if (args.pin === "on" && !possible)
        throw new Error("--pin on needs 2 cores or more and taskset (util-linux)");
    return possible;
}

function hasTaskset(): boolean {
    try {
        execFileSync("taskset", ["-p", String(process.pid)], {stdio: "ignore"});
        return true;
    } catch {
        return false;
    }
}

/** Moves this process (every thread of it) to `cpu`; the processes it starts from then on inherit that. */
function pinSelf(cpu: string): void {
    execFileSync("taskset", ["-a", "-p", "-c", cpu, String(process.pid)], {stdio: "ignore"});
}

/**
 * A reader of a server's CPU time so far, all its threads, in seconds. On Linux it sums each thread's schedstat
 * (nanoseconds, read from /proc without disturbing the server); elsewhere it asks the server's `/metrics`
 * (`process_cpu_seconds_total`, in microseconds) and takes off what answering those reads cost it.
 */
async function cpuClock(server: BenchServer): Promise<{source: string, read(): Promise<number>}> {
    if (existsSync(`/proc/${server.pid}/task`))
        return {source: "/proc/PID/task/*/schedstat", read: () => threadsCpuSeconds(server.pid)};
    const readSeconds = await metricsReadCost(server.url);
    let reads = 0;
    return {source: `/metrics, less ${(readSeconds * 1e6).toFixed(0)} µs a read`, read: async () => await cpuSeconds(server.url) - readSeconds * reads++};
}

/** A server's CPU time so far, all threads, in seconds, as its `/metrics` reports it. */
async function cpuSeconds(url: string): Promise<number> {
    const text = await (await fetch(`${url}/metrics`)).text();
    const match = /^process_cpu_seconds_total (\S+)$/m.exec(text);
    if (match == null)
        throw new Error(`${url}/metrics has no process_cpu_seconds_total`);
    return Number(match[1]);
}

/** What reading `/metrics` costs a server itself, in CPU seconds. */
async function metricsReadCost(url: string): Promise<number> {
    const reads = [await cpuSeconds(url)];
    for (let read = 0; read < 20; read++)
        reads.push(await cpuSeconds(url));
    return (reads.at(-1)! - reads[0]!) / (reads.length - 1);
}

/** CPU time a server spent, and tokens it served, over the measured runs of one path at one stream count. */
type CpuTally = {gatewaySeconds: number, upstreamSeconds: number, tokens: number};

function measure(target: Path, streams: number, maxTokens = tokens): Promise<ConcurrentResult> {
    return concurrentStreams(target.url, streams, {model: target.model, prompt, max_tokens: maxTokens, temperature: 0});
}

async function main() {
    const modelPath = args.model != null ? path.resolve(args.model) : await testModel("stories260K.gguf");
    const parallel = Math.max(...STREAMS);
    const pinned = pinning();
    const mode = pinned ? `pinned: upstream on CPU ${UPSTREAM_CPU}, gateway and client on CPU ${GATEWAY_CPU}` : "unpinned: the three processes share every core";
    console.log(`model ${path.basename(modelPath)}, ${threads} thread(s), ${tokens} tokens, best of ${runs}; TTFT median of ${ttftRuns}; upstream --parallel ${parallel}; ${warmRequests} warm-up requests a path`);
    const loadAverageAtStart = os.loadavg();
    console.log(`${mode}; load average ${loadAverageAtStart.map((load) => load.toFixed(2)).join(", ")}`);
    // Started processes inherit this process's cores: the upstream gets one, then the gateway and this client the other.
    if (pinned)
        pinSelf(UPSTREAM_CPU);
    const upstream = await startHearth(["--model", modelPath, "--alias", "bench", "--threads", String(threads), "--parallel", String(parallel), "--ctx-size", String(512 * parallel)]);
    if (pinned)
        pinSelf(GATEWAY_CPU);
    let gateway: BenchServer | undefined;
    const throughput: Record<string, Record<number, ConcurrentResult>> = {};
    const cpu: Record<string, Record<number, CpuTally>> = {};
    const ttft: Record<string, number[]> = {};
    let paths: Path[] = [];
    let cpuSource = "";
    try {
        gateway = await startHearth(["--upstream", upstream.url, "--route", "bench-route=bench"]);
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
        for (let warm = 0; warm < warmRequests; warm++)
            for (const target of paths)
                await streamCompletion(target.url, {model: target.model, prompt, max_tokens: 2, temperature: 0});
        const gatewayCpu = await cpuClock(gateway);
        const upstreamCpu = await cpuClock(upstream);
        cpuSource = gatewayCpu.source;
        // The paths take turns within each run, so a machine whose speed drifts affects them alike.
        for (const streams of STREAMS) {
            const measured = new Map<Path, ConcurrentResult[]>(paths.map((target) => [target, []]));
            for (let run = 0; run < runs; run++)
                for (const target of paths) {
                    const before = [await gatewayCpu.read(), await upstreamCpu.read()];
                    const result = await measure(target, streams);
                    const after = [await gatewayCpu.read(), await upstreamCpu.read()];
                    measured.get(target)!.push(result);
                    const tally = (cpu[target.label] ??= {})[streams] ??= {gatewaySeconds: 0, upstreamSeconds: 0, tokens: 0};
                    tally.gatewaySeconds += after[0]! - before[0]!;
                    tally.upstreamSeconds += after[1]! - before[1]!;
                    tally.tokens += result.perStream.reduce((sum, stream) => sum + stream.tokens, 0);
                }
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
    const microsecondsPerToken = (label: string, streams: number, server: "gateway" | "upstream") =>
        1e6 * cpu[label]![streams]![`${server}Seconds`] / cpu[label]![streams]!.tokens;
    const rows: string[][] = [[pinned ? "pinned" : "unpinned", ...paths.map((target) => target.label)]];
    for (const streams of STREAMS)
        rows.push([`aggregate tok/s, ${streams} stream${streams > 1 ? "s" : ""}`, ...paths.map((target) => {
            const value = throughput[target.label]![streams]!.aggregate;
            return target.label === direct ? value.toFixed(0) : `${value.toFixed(0)} (${(100 * value / throughput[direct]![streams]!.aggregate).toFixed(1)}%)`;
        })]);
    rows.push(["decode tok/s, 1 stream", ...paths.map((target) => throughput[target.label]![1]!.perStream[0]!.decodeTokensPerSecond.toFixed(0))]);
    rows.push(["time to first token, median", ...paths.map((target) => target.label === direct
        ? `${ttftMedianMs[target.label]!.toFixed(2)} ms`
        : `${ttftMedianMs[target.label]!.toFixed(2)} ms (+${(ttftMedianMs[target.label]! - ttftMedianMs[direct]!).toFixed(2)} ms)`)]);
    for (const streams of STREAMS)
        rows.push([`gateway CPU per token, ${streams} stream${streams > 1 ? "s" : ""}`, ...paths.map((target) => target.label === direct
            ? "-"
            : `${microsecondsPerToken(target.label, streams, "gateway").toFixed(1)} µs`)]);
    for (const streams of STREAMS)
        rows.push([`upstream CPU per token, ${streams} stream${streams > 1 ? "s" : ""}`, ...paths.map((target) => `${microsecondsPerToken(target.label, streams, "upstream").toFixed(1)} µs`)]);
    printTable(rows);
    console.log(`CPU time per token: all of a server's threads, from ${cpuSource}, over the measured runs`);
    console.log(`load average at the end ${os.loadavg().map((load) => load.toFixed(2)).join(", ")}`);

    await writeResult("gateway", {
        date: new Date().toISOString(), machine: describeMachine(), loadAverageAtStart, loadAverageAtEnd: os.loadavg(), model: path.basename(modelPath), threads, tokens, runs, ttftRuns, warmRequests, upstreamParallel: parallel,
        pinned, mode, cpuSource,
        paths: Object.fromEntries(paths.map((target) => [target.label, {
            aggregateTokensPerSecond: Object.fromEntries(STREAMS.map((streams) => [streams, throughput[target.label]![streams]!.aggregate])),
            singleStreamDecodeTokensPerSecond: throughput[target.label]![1]!.perStream[0]!.decodeTokensPerSecond,
            ttftMedianMs: ttftMedianMs[target.label],
            gatewayCpuMicrosecondsPerToken: target.label === direct ? undefined
                : Object.fromEntries(STREAMS.map((streams) => [streams, microsecondsPerToken(target.label, streams, "gateway")])),
            upstreamCpuMicrosecondsPerToken: Object.fromEntries(STREAMS.map((streams) => [streams, microsecondsPerToken(target.label, streams, "upstream")]))
        }])),
        ratios: Object.fromEntries(paths.slice(1).map((target) => [target.label, {
            ...Object.fromEntries(STREAMS.map((streams) => [`aggregate${streams}`, throughput[target.label]![streams]!.aggregate / throughput[direct]![streams]!.aggregate])),
            addedTtftMs: ttftMedianMs[target.label]! - ttftMedianMs[direct]!
        }]))
    });
}

await main();
