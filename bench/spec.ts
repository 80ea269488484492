import {startTestServer} from "../test/helpers/testServer.js";
import type {TestServer} from "../test/helpers/testServer.js";
import type {SpeculationMode} from "../native/decode/speculation.js";
import {describeMachine, printTable, writeResult} from "./report.js";
import {best} from "./streamClient.js";
import {DRAFT_PAIR_MODEL, draftPairServer} from "./specDraft.js";

/**
 * `npm run bench:spec`: tokens/s of greedy replies with speculative decoding off, n-gram drafting on every match, and
 * auto, on a free-text reply, a reply that repeats text of the prompt (an edit of a text the prompt holds), and the
 * same free text with a prediction equal to the reply (Predicted Outputs). Each figure is the best of a few runs of one
 * reply (prompt included) on a server of its own, with the acceptance of the prediction's drafts beside it. The draft
 * mode (a draft model) runs on the draft pair's target (bench/specDraft.ts) only; the test models have no draft model.
 */

const models = [
    {file: "stories260K.gguf", name: "stories260K"},
    {file: "synthetic/synthetic-llama-23M-Q8_0.gguf", name: "synthetic-llama-23M-Q8_0"},
    DRAFT_PAIR_MODEL
];
const modes: SpeculationMode[] = ["off", "ngram", "auto", "draft"];
const runs = 5;
const maxTokens = 400;
const story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max. "
    + "One day, Lily and Max found a big red ball under a tree. They played with the ball all day long, and when the sun went down, "
    + "they went home happy.";
const workloads = [
    {name: "free text", prompt: "Once upon a time", prediction: false},
    {name: "repeats the prompt", prompt: `${story}\n\n${story}\n\n${story.slice(0, 60)}`, prediction: false},
    {name: "prediction = reply", prompt: "Once upon a time", prediction: true}
];

type Measured = {tokensPerSecond: number, tokens: number, accepted?: number, rejected?: number};

async function reply(server: TestServer, model: string, prompt: string, prediction: string | undefined): Promise<Measured & {text: string}> {
    const started = performance.now();
    const response = await server.client.completions.create({
        model, prompt, max_tokens: maxTokens, temperature: 0,
        ...prediction != null ? {prediction: {type: "content", content: prediction}} : {}
    } as never) as unknown as {
        choices: {text: string}[],
        usage: {completion_tokens: number, completion_tokens_details?: {accepted_prediction_tokens?: number, rejected_prediction_tokens?: number}}
    };
    const seconds = (performance.now() - started) / 1000;
    const details = response.usage.completion_tokens_details;
    return {
        text: response.choices[0]!.text, tokens: response.usage.completion_tokens, tokensPerSecond: response.usage.completion_tokens / seconds,
        ...details?.accepted_prediction_tokens != null ? {accepted: details.accepted_prediction_tokens, rejected: details.rejected_prediction_tokens ?? 0} : {}
    };
}

const rows = [["model", "workload", ...modes.map((mode) => `${mode} tok/s`), ...modes.slice(1).map((mode) => `${mode}/off`), "prediction accepted/rejected"]];
const results = [];
for (const model of models) {
    const servers = new Map<SpeculationMode, TestServer>();
    for (const mode of modes) {
        const server = await draftPairServer(model.file, mode, {parallel: 1, ctxSize: 2048, draftMax: 16})
            ?? (mode === "draft" ? undefined : await startTestServer({modelFiles: [model.file], parallel: 1, ctxSize: 2048, speculation: {mode, draftMax: 16}}));
        if (server != null)
            servers.set(mode, server);
    }
    const served = modes.filter((mode) => servers.has(mode));
    try {
        for (const workload of workloads) {
            // The reply itself is the prediction: what an editor that holds the result sends.
            const prediction = workload.prediction ? (await reply(servers.get("off")!, model.name, workload.prompt, undefined)).text : undefined;
            // Modes take turns, run after run, so that other work on the machine slows each alike; the best run counts.
            const measured = new Map<SpeculationMode, Measured[]>(served.map((mode) => [mode, []]));
            for (const mode of served)
                await reply(servers.get(mode)!, model.name, workload.prompt, prediction);
            for (let run = 0; run < runs; run++)
                for (const mode of served)
                    measured.get(mode)!.push(await reply(servers.get(mode)!, model.name, workload.prompt, prediction));
            const figures: Partial<Record<SpeculationMode, Measured>> = {};
            for (const mode of served) {
                const all = measured.get(mode)!;
                figures[mode] = {...all[0]!, tokensPerSecond: best(all, (entry) => entry.tokensPerSecond).tokensPerSecond};
            }
            const off = figures.off!.tokensPerSecond;
            const accepted = figures.ngram?.accepted;
            results.push({model: model.name, workload: workload.name, figures});
            rows.push([model.name, workload.name, ...modes.map((mode) => figures[mode]?.tokensPerSecond.toFixed(0) ?? "-"),
                ...modes.slice(1).map((mode) => figures[mode] != null ? `${(figures[mode].tokensPerSecond / off).toFixed(2)}x` : "-"),
                accepted != null ? `${accepted}/${figures.ngram!.rejected}` : "-"]);
        }
    } finally {
        for (const server of servers.values())
            await server.close();
    }
}
printTable(rows);
await writeResult("spec", {date: new Date().toISOString(), machine: describeMachine(), maxTokens, runs, results});
