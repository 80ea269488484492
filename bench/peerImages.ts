/**
 * `npm run bench:peer`'s image case: time to first token for a chat request with an image, Hearth next to
 * llama-server `--mmproj` on the vision fixture (`vision/` in the test models), same settings, in turns.
 *
 * Three requests, each streamed and each figure the best of the runs:
 * - a new image: a 64×64 PNG (81 image tokens) neither server has seen, made at run time in a colour of its own
 *   for each run (both servers cache images by their bytes), so the image is decoded, encoded and evaluated;
 * - the same image again: the second turn of that conversation (the image, the reply, a new question), where
 *   the prompt up to the new question is already in the slot's cache and the image is not encoded again;
 * - a new large image: 1200×1200 (625 image tokens, as the fixture's red-large.png), made the same way.
 * Each run sends the same images to both servers, so their greedy replies are compared request by request; the
 * fixture's own red.png and red-large.png, sent first to warm both servers up, are checked against the replies
 * llama.cpp's tools give (the fixture's expected.json). Beside the times, each server process's CPU time for a
 * request (all its threads, the least of the runs), which a busy machine disturbs less than the time.
 */
import {readFile} from "node:fs/promises";
import path from "node:path";
import {testModelsDir} from "../test/helpers/testModels.js";
import {threadsCpuSeconds} from "./hearthServer.js";
import {startLlamaServer} from "./llamaServer.js";
import type {PeerBackend, PeerServer} from "./llamaServer.js";
import {startHearth} from "./peerHearth.js";
import type {HearthServer} from "./peerHearth.js";
import {printTable} from "./report.js";
import {nthColour, solidPng} from "./solidPng.js";
import {streamChat} from "./streamClient.js";
import type {ChatStreamResult} from "./streamClient.js";

export type ImageBenchSettings = {
    backend: PeerBackend, gpuLayers: number, threads: number, parallel: number, ctxSizePerSlot: number, runs: number,
    /** llama-server flags that give it Hearth's engine settings (see peer.ts), or none. */
    peerFlagsLikeHearth: readonly string[]
};

/** Hearth gives a model with a projector a 1024-token batch (native/LoadedModel.ts); llama-server gets the same. */
const visionBatch = 1024;
const question = "What colour is this image?";
const cases = ["newImage", "sameImageAgain", "newLargeImage"] as const;
type Case = typeof cases[number];
const caseLabels: Record<Case, string> = {
    newImage: "TTFT, new image (81 tokens), ms",
    sameImageAgain: "TTFT, same image, 2nd turn, ms",
    newLargeImage: "TTFT, new 1200x1200 image (625 tokens), ms"
};

export function visionFixture() {
    const dir = path.join(testModelsDir(), "vision");
    return {dir, model: path.join(dir, "gemma4-vision-script.gguf"), projector: path.join(dir, "mmproj-gemma4-vision-script.gguf")};
}

const dataUri = (png: Uint8Array) => `data:image/png;base64,${Buffer.from(png).toString("base64")}`;
const firstTurn = (image: string) => [{role: "user", content: [{type: "image_url", image_url: {url: image}}, {type: "text", text: question}]}];
const chatBody = (messages: object[]) => ({model: "bench", messages, max_tokens: 16, temperature: 0});

type Server = {label: string, url: string, pid: number};
/** A request's result, and the server process's CPU time for it (all threads): steadier than wall time on a busy machine. */
type Measured = ChatStreamResult & {cpuMs: number};
type Turns = Record<Case, Measured>;

/** One run's three requests on one server, with images made from `run`'s colours. */
async function oneRun(server: Server, run: number): Promise<Turns> {
    const image = dataUri(solidPng(64, 64, nthColour(2 * run)));
    const send = async (messages: object[]): Promise<Measured> => {
        try {
            const cpuBefore = await threadsCpuSeconds(server.pid);
            const result = await streamChat(server.url, chatBody(messages));
            return {...result, cpuMs: (await threadsCpuSeconds(server.pid) - cpuBefore) * 1000};
        } catch (error) {
            throw new Error(`${server.label} failed on an image request: ${(error as Error).message}`);
        }
    };
    const newImage = await send(firstTurn(image));
    const sameImageAgain = await send([...firstTurn(image), {role: "assistant", content: newImage.text}, {role: "user", content: "And now?"}]);
    const newLargeImage = await send(firstTurn(dataUri(solidPng(1200, 1200, nthColour(2 * run + 1)))));
    return {newImage, sameImageAgain, newLargeImage};
}

export type ImageBenchResult = Awaited<ReturnType<typeof benchImages>>;

/** Runs the image case; the caller has the llama-server binary (built with libmtmd, as every llama-server is). */
export async function benchImages(binary: string, settings: ImageBenchSettings) {
    const {model, projector, dir} = visionFixture();
    const expected = JSON.parse(await readFile(path.join(dir, "expected.json"), "utf8")) as {images: Record<string, {answer: string}>};
    console.log(`\nimages: ${path.basename(model)} with ${path.basename(projector)}, ${settings.threads} thread(s), ${settings.parallel} slots of ${settings.ctxSizePerSlot}, ` +
        `batch ${visionBatch}, best of ${settings.runs}${settings.backend !== "cpu" ? `, ${settings.backend} with ${settings.gpuLayers} GPU layers` : ""}`);
    const peerFlags = ["--mmproj", projector, "--batch-size", String(visionBatch), "--ubatch-size", String(visionBatch), ...settings.peerFlagsLikeHearth,
        ...settings.backend !== "cpu" ? ["--n-gpu-layers", String(settings.gpuLayers)] : []];
    let peer: PeerServer | undefined;
    let hearth: HearthServer | undefined;
    const results: Turns[][] = [[], []];
    const fixtureReplies: Record<string, string>[] = [{}, {}];
    try {
        peer = await startLlamaServer(binary, {model, alias: "bench", threads: settings.threads, parallel: settings.parallel, ctxSizePerSlot: settings.ctxSizePerSlot, extraArgs: peerFlags});
        hearth = await startHearth(model, {...settings, extraArgs: ["--mmproj", projector]});
        const servers: Server[] = [{label: "llama-server", url: peer.url, pid: peer.child.pid!}, {label: "Hearth", url: hearth.url, pid: hearth.pid}];
        // Warm-up, which on a GPU also compiles the encoder's shaders: the fixture's images, and a run of images of its own.
        for (const [index, server] of servers.entries()) {
            for (const name of ["red.png", "red-large.png"])
                fixtureReplies[index]![name] = (await streamChat(server.url, chatBody(firstTurn(dataUri(await readFile(path.join(dir, "images", name))))))).text;
            await oneRun(server, 1_000_000);
        }
        for (let run = 0; run < settings.runs; run++) {
            const order = run % 2 === 0 ? [0, 1] : [1, 0];
            for (const index of order)
                results[index]!.push(await oneRun(servers[index]!, run));
        }
    } finally {
        await hearth?.stop();
        await peer?.stop();
    }

    const bestOf = (turns: readonly Turns[], which: Case) => turns.map((turn) => turn[which]).reduce((a, b) => b.ttftMs < a.ttftMs ? b : a);
    const summary = results.map((turns) => Object.fromEntries(cases.map((which) => [which, bestOf(turns, which)])) as Record<Case, Measured>);
    const [peerSummary, hearthSummary] = summary as [Record<Case, Measured>, Record<Case, Measured>];
    const leastCpu = results.map((turns) => Object.fromEntries(cases.map((which) => [which, Math.min(...turns.map((turn) => turn[which].cpuMs))])) as Record<Case, number>);
    const ratios = Object.fromEntries(cases.map((which) => [which, hearthSummary[which].ttftMs / peerSummary[which].ttftMs])) as Record<Case, number>;
    printTable([
        ["", "llama-server", "Hearth", "Hearth / llama-server (below 1: Hearth faster)"],
        ...cases.map((which) => [caseLabels[which], peerSummary[which].ttftMs.toFixed(1), hearthSummary[which].ttftMs.toFixed(1), `${ratios[which].toFixed(2)}x`]),
        ...cases.map((which) => [`  server CPU per request (least), ${which}, ms`, leastCpu[0]![which].toFixed(1), leastCpu[1]![which].toFixed(1),
            `${(leastCpu[1]![which] / leastCpu[0]![which]).toFixed(2)}x`]),
        ...cases.map((which) => [`  server's prompt_ms / cached tokens, ${which}`,
            ...summary.map((entry) => `${entry[which].promptMs?.toFixed(1) ?? "?"} / ${entry[which].cachedTokens ?? "?"}`), ""])
    ]);

    const mismatches: string[] = [];
    for (const [run, peerTurns] of results[0]!.entries())
        for (const which of cases)
            if (peerTurns[which].text !== results[1]![run]![which].text)
                mismatches.push(`run ${run + 1}, ${which}: llama-server "${peerTurns[which].text}", Hearth "${results[1]![run]![which].text}"`);
    for (const name of Object.keys(fixtureReplies[0]!))
        for (const [index, label] of ["llama-server", "Hearth"].entries())
            if (fixtureReplies[index]![name] !== expected.images[name]?.answer)
                mismatches.push(`${name}: ${label} "${fixtureReplies[index]![name]}", llama.cpp's tools "${expected.images[name]?.answer}"`);
    const compared = results[0]!.length * cases.length;
    console.log(mismatches.length === 0
        ? `replies: equal on all ${compared} timed requests (greedy), and red.png and red-large.png give llama.cpp's recorded answers on both`
        : `replies differ:\n  ${mismatches.join("\n  ")}`);
    return {
        model: path.basename(model), projector: path.basename(projector), batch: visionBatch, llamaServerFlags: peerFlags.filter((flag) => flag !== projector),
        llamaServer: peerSummary, hearth: hearthSummary, ratios, leastCpuMs: {llamaServer: leastCpu[0], hearth: leastCpu[1]}, hearthDecodeLoop: hearth?.decodeLoop,
        repliesEqual: mismatches.length === 0, mismatches, fixtureReplies: {llamaServer: fixtureReplies[0], hearth: fixtureReplies[1]}
    };
}
