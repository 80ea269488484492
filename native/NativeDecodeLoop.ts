import {existsSync} from "node:fs";
import {createRequire} from "node:module";
import type {LlamaContext, LlamaModel, Token} from "node-llama-cpp";
import {addonPath} from "./addon/addonPath.js";
import {nativeAddonContextOf} from "./addonAccess.js";
import {TokenQueue, penaltyWindow} from "./SlotDecoder.js";
import type {GenerateRequest, KvSequence, SlotDecoder, TokenStream} from "./SlotDecoder.js";

/** The addon's loop (native/addon/decodeLoop.cpp). */
type AddonLoop = {
    start(id: number, sequence: number, position: number, tokens: Uint32Array, options: Record<string, unknown>): void,
    /** Stops the generation of that id, if it still runs. */
    stop(id: number): void,
    /** JavaScript has taken `count` more tokens of generation `id`: the loop samples at most 64 ahead of that. */
    ack(id: number, count: number): void,
    /** The tokens kept when the edit was made at once (the loop was idle), else undefined and an edited event follows. */
    truncate(requestId: number, sequence: number, keep: number): number | undefined,
    keepAlive(alive: boolean): void,
    close(): void,
    info(): {sequences: number, batchSize: number}
};

type AddonEvent = {kind: number, sequence: number, value: number, count: number, logprob?: number, top?: number[], message?: string};

type Addon = {DecodeLoop: new (context: unknown, onEvents: (events: AddonEvent[]) => void) => AddonLoop};

const EventKind = {token: 0, end: 1, edited: 2, failed: 3} as const;

export type NativeDecodeLoopStatus = {available: true} | {available: false, reason: string};

/** `auto`: the native loop where it is built, else the JavaScript one; `javascript`: always the JavaScript one. */
export type DecodeLoopSetting = "auto" | "javascript";

let loaded: {addon: Addon} | {reason: string} | undefined;

/**
 * Loads the addon once. It links against the libllama that node-llama-cpp loads, so it can only load after
 * node-llama-cpp has started (getLlama).
 */
function loadAddon(): {addon: Addon} | {reason: string} {
    if (loaded != null)
        return loaded;
    const path = addonPath();
    if (!existsSync(path))
        return loaded = {reason: "it was not built (npm run build builds it where a C++ compiler is available)"};
    try {
        return loaded = {addon: createRequire(import.meta.url)(path) as Addon};
    } catch (error) {
        return loaded = {reason: `it did not load: ${(error as Error).message.split("\n")[0]}`};
    }
}

/** Whether models will decode on the native loop; meaningful once node-llama-cpp has started. */
export function nativeDecodeLoopStatus(setting: DecodeLoopSetting = "auto"): NativeDecodeLoopStatus {
    if (setting === "javascript")
        return {available: false, reason: "chosen with --decode-loop javascript"};
    const result = loadAddon();
    return "addon" in result ? {available: true} : {available: false, reason: result.reason};
}

export type GpuDevice = {index: number, name: string, description: string, freeBytes: number, totalBytes: number};

/** Each device of the started backend with its own memory, from Hearth's addon; undefined when it is not loaded. */
export function nativeGpuDevices(): GpuDevice[] | undefined {
    return undefined;
}

/** A process that exits with models loaded (process.exit) stops their loop threads before Node.js tears down. */
const openLoops = new Set<NativeDecodeLoop>();
/** Tokens taken between two acknowledgements to the native loop (which samples at most 64 ahead of them). */
const ackEvery = 8;
process.on("exit", () => {
    for (const loop of openLoops)
        void loop.close();
});

type Running = {
    sequence: KvSequence,
    queue: TokenQueue,
    /** What goes into the sequence, in order: the input, then each sampled token. */
    tokens: Token[]
};

/**
 * Hearth's decode loop on a native thread: decoding and sampling every slot of a context in one loop
 * that never waits for JavaScript (see native/addon/decodeLoop.cpp). JavaScript gets each token as it
 * is sampled, turns it into text and streams it while the next batch decodes; a stop string or a closed
 * client stops the sequence after the batch in flight.
 */
export class NativeDecodeLoop implements SlotDecoder {
    readonly #loop: AddonLoop;
    readonly #running = new Map<number, Running>();
    readonly #edits = new Map<number, {sequence: KvSequence, resolve(kept: number): void, reject(error: Error): void}>();
    #nextEdit = 0;
    #nextGeneration = 0;
    #closed = false;
    #keptAlive = false;

    private constructor(addon: Addon, context: LlamaContext) {
        this.#loop = new addon.DecodeLoop(nativeAddonContextOf(context), (events) => this.#onEvents(events));
        const info = this.#loop.info();
        if (info.sequences !== context.totalSequences || info.batchSize !== context.batchSize) {
            this.#loop.close();
            throw new Error(`the native loop sees ${info.sequences} sequences and a batch of ${info.batchSize}, not ${context.totalSequences} and ${context.batchSize}`);
        }
        openLoops.add(this);
    }

    /** The native loop for a context, or the reason there is none. */
    static create(model: LlamaModel, context: LlamaContext): NativeDecodeLoop | {reason: string} {
        const result = loadAddon();
        if (!("addon" in result))
            return result;
        try {
            return new NativeDecodeLoop(result.addon, context);
        } catch (error) {
            return {reason: (error as Error).message};
        }
    }

    generate(sequence: KvSequence, input: readonly Token[], request: GenerateRequest): TokenStream {
        const id = this.#nextGeneration++;
        let taken = 0;
        const queue = new TokenQueue(() => {
            if (this.#running.get(sequence.id)?.queue === queue)
                this.#loop.stop(id);
        }, () => {
            // The loop samples a bounded distance ahead of the reader; it hears what was taken every few tokens.
            if (++taken === ackEvery) {
                taken = 0;
                if (this.#running.get(sequence.id)?.queue === queue)
                    this.#loop.ack(id, ackEvery);
            }
        });
        if (this.#closed) {
            queue.fail(new Error("The model was unloaded"));
            return queue;
        }
        if (this.#running.has(sequence.id)) {
            queue.fail(new Error(`Sequence ${sequence.id} is already generating`));
            return queue;
        }
        const {sampling, grammar} = request;
        try {
            this.#loop.start(id, sequence.id, sequence.contextTokens.length, Uint32Array.from(input), {
                maxTokens: request.maxTokens,
                ignoreEos: request.ignoreEos,
                temperature: sampling.temperature ?? 0.8,
                topK: sampling.topK ?? 40,
                topP: sampling.topP ?? 0.95,
                minP: sampling.minP ?? 0.05,
                seed: sampling.seed ?? 0,
                repeatPenalty: sampling.repeatPenalty ?? 1,
                presencePenalty: sampling.presencePenalty ?? 0,
                frequencyPenalty: sampling.frequencyPenalty ?? 0,
                penaltyWindow,
                penaltyTokens: Uint32Array.from(request.history.slice(-penaltyWindow)),
                ...(grammar != null ? {grammar: grammar.grammar, grammarRoot: grammar.rootRuleName} : {}),
                ...(request.topLogprobs != null ? {topLogprobs: request.topLogprobs} : {})
            });
        } catch (error) {
            queue.fail(error);
            return queue;
        }
        this.#running.set(sequence.id, {sequence, queue, tokens: [...input]});
        this.#keepAlive();
        return queue;
    }

    truncate(sequence: KvSequence, length: number): Promise<number> {
        if (length >= sequence.contextTokens.length)
            return Promise.resolve(sequence.contextTokens.length);
        if (this.#closed)
            return Promise.reject(new Error("The model was unloaded"));
        const id = this.#nextEdit++;
        const kept = this.#loop.truncate(id, sequence.id, length);
        if (kept != null)
            return Promise.resolve(keep(sequence, kept));
        return new Promise((resolve, reject) => {
            this.#edits.set(id, {sequence, resolve, reject});
            this.#keepAlive();
        });
    }

    async close(): Promise<void> {
        if (this.#closed)
            return;
        this.#closed = true;
        openLoops.delete(this);
        // Waits for the batch in flight; what was sampled after it is not delivered.
        this.#loop.close();
        for (const running of this.#running.values()) {
            running.sequence.contextTokens.length = 0;
            running.queue.fail(new Error("The model was unloaded"));
        }
        this.#running.clear();
        for (const edit of this.#edits.values())
            edit.reject(new Error("The model was unloaded"));
        this.#edits.clear();
    }

    /** Pending work keeps Node.js running; an idle loop does not. */
    #keepAlive(): void {
        const alive = this.#running.size + this.#edits.size > 0;
        if (!this.#closed && alive !== this.#keptAlive) {
            this.#keptAlive = alive;
            this.#loop.keepAlive(alive);
        }
    }

    #onEvents(events: AddonEvent[]): void {
        if (this.#closed)
            return;
        for (const event of events) {
            if (event.kind === EventKind.edited) {
                const edit = this.#edits.get(event.count);
                this.#edits.delete(event.count);
                edit?.resolve(keep(edit.sequence, event.value));
                continue;
            }
            const running = this.#running.get(event.sequence);
            if (running == null)
                continue;
            if (event.kind === EventKind.token) {
                const token = event.value as Token;
                running.tokens.push(token);
                running.queue.push(event.logprob == null ? {token} : {
                    token,
                    logprob: event.logprob,
                    top: pairs(event.top ?? [])
                });
            } else if (event.kind === EventKind.end) {
                this.#running.delete(event.sequence);
                // The cache holds the input and the sampled tokens that were fed back, in order.
                running.sequence.contextTokens.push(...running.tokens.slice(0, event.count));
                running.queue.end();
            } else if (event.kind === EventKind.failed) {
                this.#running.delete(event.sequence);
                // The loop dropped the sequence from the cache.
                running.sequence.contextTokens.length = 0;
                running.queue.fail(new Error(event.message ?? "Decoding failed"));
            }
        }
        this.#keepAlive();
    }
}

/** Shortens a sequence's cached tokens to what the cache kept. */
function keep(sequence: KvSequence, kept: number): number {
    sequence.contextTokens.length = Math.min(kept, sequence.contextTokens.length);
    return sequence.contextTokens.length;
}

function pairs(flat: readonly number[]): (readonly [Token, number])[] {
    const result: (readonly [Token, number])[] = [];
    for (let index = 1; index < flat.length; index += 2)
        result.push([flat[index - 1] as Token, flat[index]!]);
    return result;
}
