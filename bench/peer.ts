/**
 * `npm run bench:peer`: Hearth next to llama.cpp's own llama-server, same engine source, same model,
 * threads, context and slots, measured by the same streaming client in one run.
 *
 *   node dist/bench/peer.js [--model FILE]... [--threads N] [--parallel N] [--ctx-size N] [--tokens N]
 *                           [--runs N] [--streams 1,2,4,8] [--llama-server PATH] [--no-thread-sweep]
 *                           [--gpu cpu|vulkan|cuda] [--gpu-layers N] [--images | --no-images] [--ttft-requests N]
 *
 * `--gpu vulkan` (or `cuda`) compares the two on that GPU backend: llama-server built for it from the same
 * bundled source, Hearth run with `--gpu vulkan`, both with the same `--gpu-layers` (default: every layer, the
 * model's blocks and its output layer). Where llama-server cannot be built for it (the Vulkan headers, the
 * SPIR-V headers or glslc missing; nvcc for CUDA), it says what to install and the comparison is skipped.
 * The device is whatever the backend sees: set GGML_VK_VISIBLE_DEVICES (Vulkan) or CUDA_VISIBLE_DEVICES to
 * choose it; both servers inherit the environment. The thread sweep runs on the CPU backend only.
 *
 * For each model: single-stream decode tokens/s and time to first token, and aggregate tokens/s at each
 * concurrency, for both servers, with Hearth/llama-server ratios; then time to first token for a short prompt and a
 * ~500-token one (bench/peerTtft.ts: medians, the servers in turns request by request, with each server's CPU time
 * per request). Where Hearth's flash-attention choice
 * differs from llama-server's default (tiny attention heads on the CPU, see native/flashAttention.ts),
 * llama-server is measured a second time with Hearth's choice, so the engine settings match too; then Hearth alone at every thread count
 * from 1 to the machine's cores and at its default (the same server as the count it resolves to), to check the
 * default against the best. Each figure is the best of --runs (5); servers are measured in turns, so a noisy
 * machine hurts all alike.
 * Then the image case (bench/peerImages.ts): time to first token with a new image, the same image in a second
 * turn, and a new large image, on the vision fixture with its projector, both servers on the same settings, and
 * whether their greedy replies are equal. `--images` runs the image case alone, `--no-images` leaves it out.
 * Prints tables and writes JSON to bench/results/.
 */
import os from "node:os";
import path from "node:path";
import {parseArgs} from "node:util";
import {getLlama, getModuleVersion, LlamaLogLevel} from "node-llama-cpp";
import {readModelShape} from "../models/index.js";
import {flashAttentionFor} from "../native/flashAttention.js";
import {testModel} from "../test/helpers/testModels.js";
import {ensureLlamaServer, PeerBuildUnavailableError, startLlamaServer} from "./llamaServer.js";
import type {PeerBackend} from "./llamaServer.js";
import {startHearth} from "./peerHearth.js";
import {measureTtft, ttftPromptsFor} from "./peerTtft.js";
import type {TtftResult} from "./peerTtft.js";
import {benchImages, visionFixture} from "./peerImages.js";
import type {HearthServer} from "./peerHearth.js";
import {describeMachine, printTable, writeResult} from "./report.js";
import {best, concurrentStreams} from "./streamClient.js";
import type {ConcurrentResult, StreamResult} from "./streamClient.js";

const {values: args} = parseArgs({options: {
    model: {type: "string", multiple: true},
    threads: {type: "string", default: "1"},
    parallel: {type: "string", default: "4"},
    "ctx-size": {type: "string", default: "2048"},
    tokens: {type: "string"},
    runs: {type: "string", default: "5"},
    "ttft-requests": {type: "string", default: "60"},
    streams: {type: "string", default: "1,2,4,8"},
    "llama-server": {type: "string"},
    "no-thread-sweep": {type: "boolean", default: false},
    gpu: {type: "string", default: "cpu"},
    "gpu-layers": {type: "string"},
    images: {type: "boolean", default: false},
    "no-images": {type: "boolean", default: false}
}});
if (args.images && args["no-images"])
    throw new Error("--images runs the image case alone and --no-images leaves it out: give one of them");
const PEER_BACKENDS: readonly PeerBackend[] = ["cpu", "vulkan", "cuda"];
if (!(PEER_BACKENDS as readonly string[]).includes(args.gpu))
    throw new Error(`--gpu must be one of ${PEER_BACKENDS.join(", ")}, got "${args.gpu}"`);
const backend = args.gpu as PeerBackend;
if (args["gpu-layers"] != null && !/^[0-9]+$/.test(args["gpu-layers"]))
    throw new Error(`--gpu-layers must be a whole number of layers, got "${args["gpu-layers"]}"`);
const threads = Number(args.threads);
const parallel = Number(args.parallel);
const ctxSizePerSlot = Number(args["ctx-size"]);
const runs = Number(args.runs);
const ttftRequests = Number(args["ttft-requests"]);
const streamCounts = args.streams.split(",").map(Number);
const prompt = "Once upon a time";

/** The models the speed targets name, with the tokens each is measured over. */
const defaultModels: [file: string, tokens: number][] = [
    ["stories260K.gguf", 300],
    ["synthetic/synthetic-llama-23M-Q8_0.gguf", 128]
];

type Server = {url: string, stop(): Promise<void>};

/** A request to a server, failing with the server's name (and how its process ended, when it did). */
async function streamsOn(server: Server, label: string, streams: number, body: object): Promise<ConcurrentResult> {
    try {
        return await concurrentStreams(server.url, streams, body);
    } catch (error) {
        throw new Error(`${label} failed during ${streams} stream(s): ${(error as Error).message}${(error as {cause?: Error}).cause != null ? ` (${(error as {cause: Error}).cause.message})` : ""}`);
    }
}
type Measured = {single: StreamResult, aggregate: Record<number, number>, ttft?: TtftResult};

function startHearthFor(model: string, threadsArg: number | "default", gpuLayers: number): Promise<HearthServer> {
    return startHearth(model, {backend, gpuLayers, parallel, ctxSizePerSlot, threads: threadsArg});
}

/** Each concurrency, best of `runs`, the servers taking turns (and turns about who goes first). */
async function measureInTurns(servers: readonly Server[], labels: readonly string[], tokens: number, counts = streamCounts): Promise<Measured[]> {
    const body = {model: "bench", prompt, max_tokens: tokens, temperature: 0};
    for (const server of servers)
        await warmUp(server, tokens);
    const results = servers.map(() => new Map<number, ConcurrentResult[]>());
    for (const streams of counts) {
        for (let run = 0; run < runs; run++) {
            const order = run % 2 === 0 ? servers.map((_, index) => index) : servers.map((_, index) => index).reverse();
            for (const index of order) {
                const measured = await streamsOn(servers[index]!, labels[index]!, streams, body);
                results[index]!.set(streams, [...results[index]!.get(streams) ?? [], measured]);
            }
        }
    }
    return results.map((byStreams) => ({
        single: best(byStreams.get(1) ?? [], (result) => result.perStream[0]!.decodeTokensPerSecond).perStream[0]!,
        aggregate: Object.fromEntries([...byStreams].map(([streams, measured]) => [streams, best(measured, (result) => result.aggregate).aggregate]))
    }));
}

const ratio = (hearth: number, peer: number) => `${(hearth / peer).toFixed(2)}x`;

/** llama-server's flags that give it Hearth's engine settings where Hearth's default differs from its own. */
async function peerFlagsLikeHearth(model: string, gpuLayers: number): Promise<string[] | undefined> {
    // Hearth's own choice differs only for attention on the CPU (native/flashAttention.ts).
    if (gpuLayers > 0)
        return undefined;
    const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
    try {
        const loaded = await llama.loadModel({modelPath: model});
        const flashAttention = flashAttentionFor("auto", loaded);
        await loaded.dispose();
        return flashAttention === false ? ["--flash-attn", "off"] : undefined;
    } finally {
        await llama.dispose();
    }
}

async function benchModel(binary: string, file: string, tokens: number) {
    const model = path.isAbsolute(file) ? file : await testModel(file);
    const gpuLayers = backend === "cpu" ? 0 : args["gpu-layers"] != null ? Number(args["gpu-layers"]) : (await readModelShape(model)).blockCount + 1;
    console.log(`\n${path.basename(model)}: ${tokens} tokens, ${threads} thread(s), ${parallel} slots of ${ctxSizePerSlot}, best of ${runs}` +
        (backend !== "cpu" ? `, ${backend} with ${gpuLayers} GPU layers` : ""));
    const likeHearth = await peerFlagsLikeHearth(model, gpuLayers);
    const prompts = await ttftPromptsFor(model);
    const peerSettings = {model, alias: "bench", threads, parallel, ctxSizePerSlot, extraArgs: backend !== "cpu" ? ["--n-gpu-layers", String(gpuLayers)] : []};
    const peers = [await startLlamaServer(binary, peerSettings)];
    let hearth: HearthServer | undefined;
    const peerLabels = ["llama-server", ...likeHearth != null ? [`llama-server ${likeHearth.join(" ")}`] : []];
    let peerResults: Measured[];
    let hearthResult: Measured;
    try {
        if (likeHearth != null)
            peers.push(await startLlamaServer(binary, {...peerSettings, extraArgs: [...peerSettings.extraArgs, ...likeHearth]}));
        hearth = await startHearthFor(model, threads, gpuLayers);
        const measured = await measureInTurns([...peers, hearth], [...peerLabels, "Hearth"], tokens);
        const ttft = await measureTtft([...peers.map((peer) => ({url: peer.url, pid: peer.child.pid})), {url: hearth.url, pid: hearth.pid}], prompts,
            {requests: ttftRequests, longRequests: Math.max(5, Math.round(ttftRequests / 4))});
        measured.forEach((result, index) => result.ttft = ttft[index]);
        hearthResult = measured.pop()!;
        console.log(`Hearth's decode loop: ${hearth.decodeLoop}${hearth.decodeLoopReason != null ? ` (${hearth.decodeLoopReason})` : ""}`);
        peerResults = measured;
    } finally {
        await hearth?.stop();
        for (const peer of peers)
            await peer.stop();
    }
    const format = (value: number | undefined, digits: number) => value != null ? value.toFixed(digits) : "n/a";
    const row = (label: string, value: (result: Measured) => number | undefined, digits: number) => [label,
        ...peerResults.map((result) => format(value(result), digits)), format(value(hearthResult), digits),
        ...peerResults.map((result) => {
            const hearthValue = value(hearthResult);
            const peerValue = value(result);
            return hearthValue != null && peerValue != null ? ratio(hearthValue, peerValue) : "n/a";
        })];
    printTable([
        ["", ...peerLabels, "Hearth", ...peerLabels.map((label) => `Hearth / ${label}`)],
        row("decode tok/s, 1 stream", (result) => result.single.decodeTokensPerSecond, 0),
        row("time to first token, ms", (result) => result.single.ttftMs, 1),
        row(`TTFT, ${prompts.shortTokens}-token prompt, median ms`, (result) => result.ttft?.short.ttftMs, 2),
        row(`TTFT, ${prompts.long.tokens}-token prompt, median ms`, (result) => result.ttft?.long.ttftMs, 1),
        row(`CPU ms/request, ${prompts.shortTokens}-token prompt`, (result) => result.ttft?.short.cpuMsPerRequest, 2),
        row(`CPU ms/request, ${prompts.long.tokens}-token prompt`, (result) => result.ttft?.long.cpuMsPerRequest, 1),
        ...streamCounts.map((streams) => row(`aggregate tok/s, ${streams} stream${streams > 1 ? "s" : ""}`, (result) => result.aggregate[streams]!, 0))
    ]);
    const ratios = (peer: Measured) => ({
        singleStreamDecode: hearthResult.single.decodeTokensPerSecond / peer.single.decodeTokensPerSecond,
        ...hearthResult.ttft != null && peer.ttft != null
            ? {ttftShort: hearthResult.ttft.short.ttftMs / peer.ttft.short.ttftMs, ttftLong: hearthResult.ttft.long.ttftMs / peer.ttft.long.ttftMs}
            : {},
        ...Object.fromEntries(streamCounts.map((streams) => [`aggregate${streams}`, hearthResult.aggregate[streams]! / peer.aggregate[streams]!]))
    });

    const sweep: {threads: number | "default", resolvedThreads: number, decodeTokensPerSecond: number}[] = [];
    if (!args["no-thread-sweep"] && backend === "cpu") {
        // One server per thread count, measured in turns; the default is the same server as the count it resolves to.
        const counts = Array.from({length: os.availableParallelism()}, (_, index) => index + 1);
        const servers: HearthServer[] = [];
        try {
            const byDefault = await startHearthFor(model, "default", gpuLayers);
            servers.push(byDefault);
            for (const count of counts)
                if (count !== byDefault.threads)
                    servers.push(await startHearthFor(model, count, gpuLayers));
            const rates = (await measureInTurns(servers, servers.map((server) => `Hearth, ${server.threads} thread(s)`), tokens, [1]))
                .map((measured) => measured.single.decodeTokensPerSecond);
            sweep.push({threads: "default", resolvedThreads: byDefault.threads, decodeTokensPerSecond: rates[0]!});
            for (const count of counts) {
                const index = servers.findIndex((server) => server.threads === count);
                sweep.push({threads: count, resolvedThreads: count, decodeTokensPerSecond: rates[index]!});
            }
        } finally {
            for (const server of servers)
                await server.stop();
        }
        const top = Math.max(...sweep.map((entry) => entry.decodeTokensPerSecond));
        printTable([["Hearth threads", "decode tok/s, 1 stream", "of the best"], ...sweep.map((entry) => [
            entry.threads === "default" ? `default (${entry.resolvedThreads})` : String(entry.threads),
            entry.decodeTokensPerSecond.toFixed(0), `${(100 * entry.decodeTokensPerSecond / top).toFixed(0)}%`])]);
    }
    const top = sweep.length > 0 ? Math.max(...sweep.map((entry) => entry.decodeTokensPerSecond)) : undefined;
    const defaultEntry = sweep.find((entry) => entry.threads === "default");
    return {
        model: path.basename(model), tokens, gpuLayers, hearthDecodeLoop: hearth?.decodeLoop, hearthDecodeLoopReason: hearth?.decodeLoopReason,
        llamaServer: peerResults[0], hearth: hearthResult, ratios: ratios(peerResults[0]!),
        ...likeHearth != null ? {llamaServerLikeHearth: {flags: likeHearth, result: peerResults[1], ratios: ratios(peerResults[1]!)}} : {},
        threadSweep: sweep,
        defaultThreadsOfBest: defaultEntry != null && top != null ? defaultEntry.decodeTokensPerSecond / top : undefined
    };
}

async function benchImagesHere(binary: string) {
    const {model} = visionFixture();
    const gpuLayers = backend === "cpu" ? 0 : args["gpu-layers"] != null ? Number(args["gpu-layers"]) : (await readModelShape(model)).blockCount + 1;
    return benchImages(binary, {backend, gpuLayers, threads, parallel, ctxSizePerSlot, runs, peerFlagsLikeHearth: await peerFlagsLikeHearth(model, gpuLayers) ?? []});
}

/** A few requests alone and in parallel first, so a server is measured as it runs once warm (JIT, caches). */
async function warmUp(server: Server, tokens: number): Promise<void> {
    const body = {model: "bench", prompt, max_tokens: tokens, temperature: 0};
    for (let request = 0; request < 5; request++)
        await concurrentStreams(server.url, 1, body);
    await concurrentStreams(server.url, parallel, body);
}

async function main() {
    let binary = args["llama-server"];
    try {
        binary ??= await ensureLlamaServer(console.log, {backend});
    } catch (error) {
        if (!(error instanceof PeerBuildUnavailableError))
            throw error;
        console.log(`skipped the comparison on ${backend}: ${error.message}`);
        await writeResult("peer", {date: new Date().toISOString(), machine: {...describeMachine(), nodeLlamaCpp: await getModuleVersion()}, gpu: backend, skipped: error.message});
        return;
    }
    const models: [string, number][] = args.images ? [] : args.model != null
        ? args.model.map((file) => [path.resolve(file), Number(args.tokens ?? 128)])
        : defaultModels.map(([file, tokens]) => [file, args.tokens != null ? Number(args.tokens) : tokens]);
    console.log(`llama-server: ${binary}`);
    const results = [];
    for (const [file, tokens] of models)
        results.push(await benchModel(binary, file, tokens));
    const images = args["no-images"] ? undefined : await benchImagesHere(binary);
    await writeResult("peer", {
        date: new Date().toISOString(),
        machine: {...describeMachine(), nodeLlamaCpp: await getModuleVersion()},
        llamaServer: binary, gpu: backend, ...backend !== "cpu" ? {gpuDevices: process.env.GGML_VK_VISIBLE_DEVICES ?? process.env.CUDA_VISIBLE_DEVICES ?? null} : {},
        threads, parallel, ctxSizePerSlot, runs, ttftRequests, streams: streamCounts, results, ...images != null ? {images} : {}
    });
}

await main();
