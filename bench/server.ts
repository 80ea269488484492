/**
 * `npm run bench:server`: the server's overhead and its batching, measured against node-llama-cpp in-process.
 *
 *   node dist/bench/server.js [--model FILE] [--threads N] [--tokens N] [--runs N]
 *
 * Prints a table and writes JSON to bench/results/. In-process and HTTP runs take turns. Decode tokens/s is (tokens - 1) / (last token time -
 * first token time), so it leaves prompt evaluation out; each figure is the best of --runs.
 */
import path from "node:path";
import {parseArgs} from "node:util";
import {getLlama, getModuleVersion, LlamaLogLevel} from "node-llama-cpp";
import type {LlamaContextSequence, LlamaModel} from "node-llama-cpp";
import {flashAttentionFor} from "../native/flashAttention.js";
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
    parallel: {type: "string", default: "4"}
}});
const threads = Number(args.threads);
const tokens = Number(args.tokens);
const runs = Number(args.runs);
const parallel = Number(args.parallel);
const prompt = "Once upon a time";

async function decodeInProcess(model: LlamaModel, sequences: LlamaContextSequence[]): Promise<ConcurrentResult> {
    await Promise.all(sequences.map((sequence) => sequence.clearHistory()));
    const start = performance.now();
    const perStream = await Promise.all(sequences.map(async (sequence) => {
        const input = [model.tokens.bos!, ...model.tokenize(prompt)];
        let count = 0;
        let first = 0;
        let last = 0;
        for await (const _ of sequence.evaluate(input, {temperature: 0})) {
            last = performance.now();
            if (count++ === 0)
                first = last;
            if (count >= tokens)
                break;
        }
        return {tokens: count, ttftMs: first - start, decodeTokensPerSecond: (count - 1) / ((last - first) / 1000), wallMs: last - start};
    }));
    const wall = Math.max(...perStream.map((stream) => stream.wallMs));
    return {aggregate: perStream.reduce((sum, stream) => sum + stream.tokens, 0) / (wall / 1000), perStream};
}

/** node-llama-cpp in this process, with a context of 1 and one of 4 sequences, ready to measure. */
async function inProcess(modelPath: string) {
    const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
    const model = await llama.loadModel({modelPath});
    const bySequences = new Map<number, LlamaContextSequence[]>();
    for (const streams of [1, 4]) {
        // The engine settings Hearth would choose, so the ratio is the server's overhead alone.
        const context = await model.createContext({contextSize: 2048, sequences: streams, threads, flashAttention: flashAttentionFor("auto", model)});
        bySequences.set(streams, Array.from({length: streams}, () => context.getSequence()));
    }
    return {
        measure: (streams: number) => decodeInProcess(model, bySequences.get(streams)!),
        dispose: async () => {
            await model.dispose();
            await llama.dispose();
        }
    };
}

function concurrent(url: string, streams: number): Promise<ConcurrentResult> {
    return concurrentStreams(url, streams, {model: "bench", prompt, max_tokens: tokens, temperature: 0});
}

/** About 1,000 tokens of story text, with a unique head when `cold` so no slot has any of it cached. */
function longPrefix(cold: boolean): string {
    const head = cold ? `${Math.random().toString(36).slice(2)} ${Date.now()} ` : "";
    return head + "Once upon a time there was a little girl named Lily who loved to play in the park with her red ball. ".repeat(14);
}

async function prefixTtft(url: string) {
    const cold: number[] = [];
    const warm: number[] = [];
    for (let run = 0; run < runs; run++) {
        cold.push((await streamCompletion(url, {model: "bench", prompt: longPrefix(true), max_tokens: 2, temperature: 0})).ttftMs);
        const shared = longPrefix(false);
        await streamCompletion(url, {model: "bench", prompt: shared + "The end.", max_tokens: 2, temperature: 0});
        warm.push((await streamCompletion(url, {model: "bench", prompt: shared + "She smiled.", max_tokens: 2, temperature: 0})).ttftMs);
    }
    return {coldTtftMs: median(cold), warmTtftMs: median(warm)};
}

async function startServer(modelPath: string): Promise<{url: string, stop(): Promise<void>}> {
    const server = spawnHearth([
        "serve", "--model", modelPath, "--alias", "bench", "--port", "0", "--threads", String(threads),
        "--parallel", String(parallel), "--ctx-size", "2048", "--gpu", "cpu"
    ]);
    const [, url] = await server.waitForOutput(/listening on (\S+) /);
    await server.waitForOutput(/Ready/);
    return {url: url!, stop: async () => {
        server.child.kill("SIGTERM");
        await server.exited;
    }};
}

async function main() {
    const modelPath = args.model != null ? path.resolve(args.model) : await testModel("stories260K.gguf");
    console.log(`model ${path.basename(modelPath)}, ${threads} thread(s), ${tokens} tokens, best of ${runs}, server --parallel ${parallel}`);

    // In-process and HTTP runs take turns, so a machine whose speed drifts affects both alike.
    const engine = await inProcess(modelPath);
    const server = await startServer(modelPath);
    const direct: Record<number, ConcurrentResult> = {};
    const http: Record<number, ConcurrentResult> = {};
    let prefix;
    try {
        for (let warm = 0; warm < 5; warm++) {
            await concurrent(server.url, 1);
            await engine.measure(1);
        }
        for (const streams of [1, 2, 4, 8]) {
            const measured = [];
            const measuredDirect = [];
            for (let run = 0; run < runs; run++) {
                measured.push(await concurrent(server.url, streams));
                if (streams === 1 || streams === 4)
                    measuredDirect.push(await engine.measure(streams));
            }
            http[streams] = best(measured, (result) => result.aggregate);
            if (measuredDirect.length > 0)
                direct[streams] = best(measuredDirect, (result) => result.aggregate);
        }
        prefix = await prefixTtft(server.url);
    } finally {
        await server.stop();
        await engine.dispose();
    }

    const single = http[1]!.perStream[0]!;
    const directSingle = direct[1]!.perStream[0]!;
    const rows: [string, string, string][] = [
        ["decode tok/s, 1 stream", `${directSingle.decodeTokensPerSecond.toFixed(0)} in-process`, `${single.decodeTokensPerSecond.toFixed(0)} HTTP/SSE (${(100 * single.decodeTokensPerSecond / directSingle.decodeTokensPerSecond).toFixed(1)}%)`],
        ["time to first token, 1 stream", `${directSingle.ttftMs.toFixed(1)} ms in-process`, `${single.ttftMs.toFixed(1)} ms HTTP/SSE`],
        ...[1, 2, 4, 8].map((streams): [string, string, string] => [
            `aggregate tok/s, ${streams} streams`,
            direct[streams] != null ? `${direct[streams]!.aggregate.toFixed(0)} in-process` : "",
            `${http[streams]!.aggregate.toFixed(0)} HTTP/SSE` + (direct[streams] != null ? ` (${(100 * http[streams]!.aggregate / direct[streams]!.aggregate).toFixed(1)}%)` : "")
        ]),
        ["TTFT, 1,000-token prompt", `${prefix.coldTtftMs.toFixed(1)} ms cold`, `${prefix.warmTtftMs.toFixed(1)} ms with shared prefix (${(100 * prefix.warmTtftMs / prefix.coldTtftMs).toFixed(1)}% of cold)`]
    ];
    printTable(rows);

    const machine = {...describeMachine(), nodeLlamaCpp: await getModuleVersion()};
    const result = {
        date: new Date().toISOString(), machine, model: path.basename(modelPath), threads, tokens, runs, parallel,
        inProcess: {single: directSingle, aggregate: {1: direct[1]!.aggregate, 4: direct[4]!.aggregate}},
        http: {single, aggregate: Object.fromEntries(Object.entries(http).map(([streams, value]) => [streams, value.aggregate]))},
        ratios: {
            singleStreamDecode: single.decodeTokensPerSecond / directSingle.decodeTokensPerSecond,
            fourStreamsAggregate: http[4]!.aggregate / direct[4]!.aggregate,
            fourStreamsVsOne: http[4]!.aggregate / http[1]!.aggregate,
            warmVsColdTtft: prefix.warmTtftMs / prefix.coldTtftMs
        },
        prefix
    };
    await writeResult("server", result);
}

await main();
