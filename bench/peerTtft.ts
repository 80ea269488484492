/**
 * `bench:peer`'s time-to-first-token cases: a short prompt and a ~500-token one, sent to each server in turns, request
 * by request, streamed, timed to the first piece of text. Medians, not bests: one lucky request says nothing of what
 * a user waits. Beside each, the CPU time the server's process spent per request (Linux: /proc), which the machine's
 * other work disturbs far less than wall-clock time.
 */
import {readFileSync} from "node:fs";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {median, streamCompletion} from "./streamClient.js";

/** A server as the TTFT cases see it: where it listens and its process, whose CPU time is read. */
export type TtftServer = {url: string, pid: number | undefined};

export type TtftCase = {
    /** Prompt tokens, as the model's tokenizer counts them (BOS included where the model adds one). */
    promptTokens: number,
    /** Median time to the first text, ms. */
    ttftMs: number,
    /** CPU time (user + system, every thread) of the server's process per request, ms; undefined without /proc. */
    cpuMsPerRequest: number | undefined,
    requests: number
};

export type TtftResult = {short: TtftCase, long: TtftCase};

export const SHORT_PROMPT = "Once upon a time";
const LONG_PROMPT_TOKENS = 500;
const sentences = [
    "Once upon a time, there was a little girl named Lily who liked to play in the park with her dog.",
    "One day she found a shiny red ball under a big tree and wanted to show it to her mom.",
    "Her friend Tom came running and asked if he could play with the ball too.",
    "They played together until the sun went down and the sky turned orange and pink.",
    "The next morning it was raining, so they stayed inside and built a castle from blocks."
];

/** The prompts for `model`, with their lengths as its own tokenizer counts them (BOS included where it adds one). */
export type TtftPrompts = {shortTokens: number, long: {text: string, tokens: number}};

/**
 * The short prompt, and one of about {@link LONG_PROMPT_TOKENS} tokens for `model`. Each request puts a different
 * number in front of the long one, so that no server finds its prefix cached: that case measures the prompt's
 * evaluation, not the prompt cache.
 */
export async function ttftPromptsFor(model: string): Promise<TtftPrompts> {
    const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
    try {
        const loaded = await llama.loadModel({modelPath: model, vocabOnly: true});
        try {
            const count = (text: string) => loaded.tokenize(text).length + (loaded.tokens.shouldPrependBosToken ? 1 : 0);
            let text = "";
            let tokens = 0;
            for (let index = 0; tokens < LONG_PROMPT_TOKENS; index++) {
                text += (text === "" ? "" : " ") + sentences[index % sentences.length];
                // "123. " stands for the number each request puts in front.
                tokens = count(`123. ${text}`);
            }
            return {shortTokens: count(SHORT_PROMPT), long: {text, tokens}};
        } finally {
            await loaded.dispose();
        }
    } finally {
        await llama.dispose();
    }
}

/** CPU ticks (user + system, all threads) of a process so far; undefined where /proc cannot tell. */
function cpuTicks(pid: number | undefined): number | undefined {
    if (pid == null)
        return undefined;
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return Number(fields[11]) + Number(fields[12]);
    } catch {
        return undefined;
    }
}

/** Linux counts CPU time in ticks of 1/100 s (USER_HZ) for /proc/PID/stat. */
const MS_PER_TICK = 10;

/**
 * Both TTFT cases on every server, the servers taking turns request by request (and turns about who goes first), after
 * a few requests each to warm up. `requests` is per server and case.
 */
export async function measureTtft(servers: readonly TtftServer[], prompts: TtftPrompts,
    {requests = 60, longRequests = 15}: {requests?: number, longRequests?: number} = {}): Promise<TtftResult[]> {
    let counter = 0;
    const bodies = {
        short: () => ({model: "bench", prompt: SHORT_PROMPT, max_tokens: 4, temperature: 0}),
        long: () => ({model: "bench", prompt: `${++counter}. ${prompts.long.text}`, max_tokens: 4, temperature: 0})
    };
    const measure = async (kind: "short" | "long", count: number): Promise<TtftCase[]> => {
        for (const server of servers)
            for (let warm = 0; warm < 3; warm++)
                await streamCompletion(server.url, bodies[kind]());
        const ttfts = servers.map(() => [] as number[]);
        const ticks = servers.map(() => 0 as number | undefined);
        for (let round = 0; round < count; round++) {
            const order = servers.map((_, index) => index);
            if (round % 2 === 1)
                order.reverse();
            for (const index of order) {
                const before = cpuTicks(servers[index]!.pid);
                ttfts[index]!.push((await streamCompletion(servers[index]!.url, bodies[kind]())).ttftMs);
                const after = cpuTicks(servers[index]!.pid);
                ticks[index] = before == null || after == null || ticks[index] == null ? undefined : ticks[index]! + after - before;
            }
        }
        return servers.map((_, index) => ({
            promptTokens: kind === "short" ? prompts.shortTokens : prompts.long.tokens,
            ttftMs: median(ttfts[index]!),
            cpuMsPerRequest: ticks[index] != null ? ticks[index]! * MS_PER_TICK / count : undefined,
            requests: count
        }));
    };
    const short = await measure("short", requests);
    const long = await measure("long", longRequests);
    return servers.map((_, index) => ({short: short[index]!, long: long[index]!}));
}
