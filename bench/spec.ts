import os from "node:os";
import {metricSum} from "../test/helpers/metrics.js";
import {testModel} from "../test/helpers/testModels.js";
import {writeDraftPair} from "./draftPair.js";
import {ensureLlamaServer, startLlamaServer} from "./llamaServer.js";
import {startHearth} from "./peerHearth.js";
import {describeMachine, printTable, writeResult} from "./report.js";
import {interleavedAgent} from "./specAgent.js";
import type {AgentTurns} from "./specAgent.js";
import {repeatedShare, specReply} from "./specReply.js";
import type {SpecReply} from "./specReply.js";
import {best} from "./streamClient.js";

/**
 * `npm run bench:spec`: speculative decoding, Hearth and llama-server side by side in one run, on the same models and
 * settings. Greedy replies' decode tokens/s per mode (off, n-gram, a prediction equal to the reply, auto, a draft
 * model) on a code-edit workload (the reply repeats a text the prompt holds) and free text, with the drafts' acceptance;
 * then an agent's conversation interleaved with two chats on one slot, its time to first token per turn.
 *
 * The speculation workloads run on bench:draft-pair's target, which is memory-bound like a real model's decode
 * (verifying a draft costs little more than one token), and on the compute-bound synthetic 23M model, where verifying
 * k tokens costs about k decodes; the agent runs on the synthetic model.
 *
 *     node dist/bench/spec.js [--quick]     (--quick: one run per figure, the synthetic model only)
 */

const quick = process.argv.includes("--quick");
const threads = 1;
const ctxSize = 4096;
const draftMax = 16;
const maxTokens = 200;
const runs = quick ? 1 : 3;

type BenchModel = {name: string, path: string, bound: "memory" | "compute", draft?: string, ctxSize?: number};
type Engine = "hearth" | "llama-server";
type Server = {url: string, stop(): Promise<void>};

/**
 * A speculation mode: each engine's server flags for it (absent or undefined: the engine has no such mode, or not for
 * this model), and whether its requests carry the reply of `off` as their prediction.
 */
type Mode = {
    name: string,
    prediction?: boolean,
    hearth?: (model: BenchModel) => string[] | undefined,
    llamaServer?: (model: BenchModel) => string[] | undefined
};

const modes: Mode[] = [
    {name: "off", hearth: () => ["--speculative", "off"], llamaServer: () => []},
    // llama-server's n-gram drafting closest to Hearth's: a lookup of the last 3 tokens in the prompt and the reply.
    {name: "ngram", hearth: () => ["--speculative", "ngram"],
        llamaServer: () => ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "3", "--spec-ngram-simple-size-m", String(draftMax)]},
    // OpenAI's Predicted Outputs; llama-server has no counterpart.
    {name: "prediction", prediction: true, hearth: () => ["--speculative", "auto"]},
    {name: "auto", hearth: () => ["--speculative", "auto"]},
    // A draft model (the target's twin from bench:draft-pair). Its random weights are never confident, even where the
    // two models agree, so both engines draft without a probability floor (llama-server's default at this commit).
    {name: "draft",
        hearth: (model) => model.draft == null ? undefined : ["--speculative", "draft", "--draft-model", model.draft, "--draft-p-min", "0"],
        llamaServer: (model) => model.draft == null ? undefined
            : ["--spec-type", "draft-simple", "--spec-draft-model", model.draft, "--spec-draft-n-max", String(draftMax), "--spec-draft-ngl", "0",
                "--spec-draft-p-min", "0"]}
];

let llamaServerBinary: string | undefined;
const starters: Record<Engine, (model: BenchModel, flags: string[]) => Promise<Server>> = {
    hearth: (model, flags) => startHearth(model.path, {backend: "cpu", gpuLayers: 0, parallel: 1, ctxSizePerSlot: model.ctxSize ?? ctxSize, threads,
        extraArgs: ["--draft-max", String(draftMax), ...flags]}),
    "llama-server": async (model, flags) => startLlamaServer(llamaServerBinary ??= await ensureLlamaServer(),
        {model: model.path, alias: "bench", threads, parallel: 1, ctxSizePerSlot: model.ctxSize ?? ctxSize, extraArgs: flags})
};

type Contender = {engine: Engine, mode: Mode, server: Server};

/** One server per engine and distinct flags (prediction and auto share Hearth's auto server). */
async function startContenders(model: BenchModel): Promise<Contender[]> {
    const servers = new Map<string, Server>();
    const contenders: Contender[] = [];
    for (const mode of modes)
        for (const engine of ["hearth", "llama-server"] as const) {
            const flags = (engine === "hearth" ? mode.hearth : mode.llamaServer)?.(model);
            if (flags == null)
                continue;
            const key = `${engine} ${flags.join(" ")}`;
            if (!servers.has(key))
                servers.set(key, await starters[engine](model, flags));
            contenders.push({engine, mode, server: servers.get(key)!});
        }
    return contenders;
}

const freePrompt = "Once upon a time, in a small town by the sea,";

type Figure = {tokensPerSecond: number, tokens: number, drafted?: number, accepted?: number, sameText: boolean};
const loads: number[] = [];

/** Draft tokens Hearth has verified so far, and those of them it kept. */
async function hearthDrafts(server: Server): Promise<{drafted: number, accepted: number}> {
    const text = await fetch(`${server.url}/metrics`).then((response) => response.text());
    const count = (outcome: string) => metricSum(text, "hearth_draft_tokens_total", {outcome});
    return {drafted: count("accepted") + count("rejected"), accepted: count("accepted")};
}

async function measureWorkload(contenders: Contender[], prompt: string, reference: string): Promise<Map<Contender, Figure>> {
    const body = (contender: Contender) => ({model: "bench", prompt, max_tokens: maxTokens, temperature: 0,
        ...contender.mode.prediction === true ? {prediction: {type: "content", content: reference}} : {}});
    const measured = new Map<Contender, SpecReply[]>(contenders.map((contender) => [contender, []]));
    // A first reply fills each server's prompt cache; then contenders take turns, run after run, so that other work on
    // the machine slows each alike. The best run counts.
    for (let run = -1; run < runs; run++) {
        loads.push(os.loadavg()[0]!);
        for (const contender of contenders) {
            const drafts = contender.engine === "hearth" ? await hearthDrafts(contender.server) : undefined;
            const reply = await specReply(contender.server.url, body(contender));
            // Hearth's usage counts a prediction's drafts; its n-gram drafts are in /metrics.
            if (drafts != null && reply.drafted == null) {
                const now = await hearthDrafts(contender.server);
                Object.assign(reply, {drafted: now.drafted - drafts.drafted, accepted: now.accepted - drafts.accepted});
            }
            if (run >= 0)
                measured.get(contender)!.push(reply);
        }
    }
    return new Map(contenders.map((contender) => {
        const all = measured.get(contender)!;
        const top = best(all, (reply) => reply.decodeTokensPerSecond);
        return [contender, {tokensPerSecond: top.decodeTokensPerSecond, tokens: top.tokens, drafted: top.drafted, accepted: top.accepted,
            sameText: all.every((reply) => reply.text === reference)}];
    }));
}

const models: BenchModel[] = [];
if (!quick) {
    const pair = await writeDraftPair("bench/results/draft-pair");
    models.push({name: "draft-pair target (110M F16)", path: pair.target, bound: "memory", draft: pair.draft});
}
models.push({name: "synthetic-llama-23M-Q8_0", path: await testModel("synthetic/synthetic-llama-23M-Q8_0.gguf"), bound: "compute"});

const table = [["model", "workload", "mode", "Hearth tok/s", "x off", "llama-server tok/s", "x off", "Hearth / llama-server", "accepted (Hearth)", "accepted (llama-server)", "same text"]];
const results: unknown[] = [];
const cell = (value: number | undefined, digits = 0) => value == null || !Number.isFinite(value) ? "-" : value.toFixed(digits);
for (const model of models) {
    const contenders = await startContenders(model);
    try {
        const off = contenders.find((contender) => contender.engine === "hearth" && contender.mode.name === "off")!;
        const freeReply = (await specReply(off.server.url, {model: "bench", prompt: freePrompt, max_tokens: maxTokens, temperature: 0})).text;
        // The code edit: the prompt holds a file (here the model's own reply, the only text a random model repeats) and
        // asks for it again; the reply mostly repeats it.
        const editPrompt = `The file:\n\n${freeReply}\n\nThe file after the edit:\n\n${freePrompt}`;
        const editReply = (await specReply(off.server.url, {model: "bench", prompt: editPrompt, max_tokens: maxTokens, temperature: 0})).text;
        for (const workload of [
            {name: "code-edit", prompt: editPrompt, reference: editReply, repeated: repeatedShare(editReply, editPrompt)},
            {name: "free text", prompt: freePrompt, reference: freeReply, repeated: repeatedShare(freeReply, freePrompt)}
        ]) {
            const figures = await measureWorkload(contenders, workload.prompt, workload.reference);
            const figure = (engine: Engine, name: string) => [...figures].find(([contender]) => contender.engine === engine && contender.mode.name === name)?.[1];
            const hearthOff = figure("hearth", "off")!.tokensPerSecond;
            const peerOff = figure("llama-server", "off")!.tokensPerSecond;
            for (const mode of modes) {
                const hearth = figure("hearth", mode.name);
                const peer = figure("llama-server", mode.name);
                const acceptance = (entry: Figure | undefined) => entry?.drafted == null ? "-" : `${entry.accepted}/${entry.drafted}`;
                table.push([`${model.name} (${model.bound}-bound)`, workload.name, mode.name,
                    cell(hearth?.tokensPerSecond), hearth == null ? "-" : `${cell(hearth.tokensPerSecond / hearthOff, 2)}x`,
                    cell(peer?.tokensPerSecond), peer == null ? "-" : `${cell(peer.tokensPerSecond / peerOff, 2)}x`,
                    hearth == null || peer == null ? "-" : `${cell(hearth.tokensPerSecond / peer.tokensPerSecond, 2)}x`,
                    acceptance(hearth), acceptance(peer),
                    [hearth, peer].filter((entry) => entry != null).map((entry) => entry!.sameText ? "yes" : "no").join("/")]);
                results.push({model: model.name, bound: model.bound, workload: workload.name, replyRepeatsPrompt: workload.repeated, mode: mode.name, hearth, llamaServer: peer});
            }
        }
    } finally {
        for (const server of new Set(contenders.map((contender) => contender.server)))
            await server.stop();
    }
}
printTable(table);

// The interleaved agent, on the compute-bound model (its prompt evaluation is what a cache saves).
const agentModel = models.at(-1)!;
const agents: Partial<Record<Engine, AgentTurns>> = {};
for (const engine of ["hearth", "llama-server"] as const) {
    // Each engine's defaults otherwise: its prompt cache in RAM is on by default.
    const server = await starters[engine]({...agentModel, ctxSize: 8192}, []);
    try {
        loads.push(os.loadavg()[0]!);
        agents[engine] = await interleavedAgent(server.url, "bench");
    } catch (error) {
        // The speculation figures are kept and written whatever happens here.
        console.error(`${engine}: the interleaved agent failed: ${(error as Error).message}`);
    } finally {
        await server.stop();
    }
}
const agentTable = [["engine (agent, synthetic 23M, 1 slot)", "prompt tokens", "cold TTFT ms", "revisited TTFT ms", "worst revisited / cold", "chats' TTFT ms"]];
for (const [engine, turns] of Object.entries(agents))
    agentTable.push([engine, String(turns.promptTokens), cell(turns.coldMs), turns.revisitedMs.map((ms) => cell(ms)).join(", "),
        `${cell(100 * Math.max(...turns.revisitedMs) / turns.coldMs, 1)}%`, turns.chatsMs.map((ms) => cell(ms)).join(", ")]);
console.log();
printTable(agentTable);
const load = {min: Math.min(...loads), max: Math.max(...loads), mean: loads.reduce((a, b) => a + b, 0) / loads.length};
console.log(`\nload average (1 min) while measured: ${load.min.toFixed(1)}-${load.max.toFixed(1)}, mean ${load.mean.toFixed(1)}`);
await writeResult("spec", {date: new Date().toISOString(), machine: describeMachine(), load, threads, ctxSize, draftMax, maxTokens, runs, results, agents});
