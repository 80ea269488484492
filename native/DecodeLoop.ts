import type {Token} from "node-llama-cpp";
import type {NativeContext, NativeSampler} from "./addonAccess.js";

/** A sampled token, with its candidates' probabilities when asked for; `null` when nothing could be sampled. */
export type Sampled = {token: Token | null, probabilities?: Map<Token, number>};

/** One sequence of a context (a slot's KV cache): its id and the tokens the cache holds, in order. */
export class KvSequence {
    readonly id: number;
    readonly contextTokens: Token[] = [];

    constructor(id: number) {
        this.id = id;
    }
}

type Evaluation = {
    sequence: KvSequence,
    /** Tokens still to evaluate; the last one's logits are sampled. */
    tokens: Token[],
    sampler: NativeSampler,
    probabilities: boolean,
    resolve(sampled: Sampled): void,
    reject(error: unknown): void
};

/**
 * Continuous batching on one context, driving node-llama-cpp's native calls directly.
 *
 * Each generation joins the loop and asks it to evaluate tokens (a prompt, then one token at a time);
 * the loop puts every waiting request into one batch (decoding slots first, then prompt chunks, up to
 * the batch size), decodes it, samples every finished request at once, and hands out the tokens. It
 * dispatches the next batch as soon as every member generation has asked again, or after one turn of the
 * event loop for one that has not, so a single stream never waits on a timer and parallel streams share
 * each decode. Everything a reply does with its token (text, stop strings, the socket) happens while the
 * next batch is already decoding.
 */
export class DecodeLoop {
    readonly #native: NativeContext;
    readonly #batchSize: number;
    #queue: Evaluation[] = [];
    /** KV cache edits, run between batches so they never race a decode. */
    #edits: (() => void)[] = [];
    #members = 0;
    #running: Promise<void> | undefined;
    #closed = false;
    #busy = false;
    #release: (() => void) | undefined;

    constructor(native: NativeContext, batchSize: number) {
        this.#native = native;
        this.#batchSize = batchSize;
    }

    /** Registers a generation that will evaluate; call the returned function when it is done. */
    join(): () => void {
        this.#members++;
        let left = false;
        return () => {
            if (left)
                return;
            left = true;
            this.#members--;
            this.#releaseIfReady();
        };
    }

    /** Evaluates `tokens` on a sequence after its cached ones and samples the next token with `sampler`. */
    evaluate(sequence: KvSequence, tokens: readonly Token[], sampler: NativeSampler, probabilities = false): Promise<Sampled> {
        if (tokens.length === 0)
            return Promise.reject(new Error("Nothing to evaluate"));
        if (this.#closed)
            return Promise.reject(new Error("The model was unloaded"));
        return new Promise<Sampled>((resolve, reject) => {
            this.#queue.push({sequence, tokens: [...tokens], sampler, probabilities, resolve, reject});
            if (this.#running == null)
                this.#running = this.#run();
            else
                this.#releaseIfReady();
        });
    }

    /** Refuses new work, fails what has not started and waits for the batch in flight: the context can then go. */
    async close(): Promise<void> {
        this.#closed = true;
        for (const evaluation of this.#queue.splice(0))
            evaluation.reject(new Error("The model was unloaded"));
        this.#releaseIfReady();
        await this.#running;
    }

    /**
     * Keeps the first `length` cached tokens of a sequence and drops the rest from the KV cache, between
     * batches. Resolves with the tokens kept: `length`, or 0 when the cache cannot drop part of a sequence
     * (recurrent models) and the whole sequence was dropped instead.
     */
    truncate(sequence: KvSequence, length: number): Promise<number> {
        return new Promise((resolve) => {
            const edit = () => {
                const cached = sequence.contextTokens.length;
                if (length < cached && !this.#native.removeTokenCellsFromSequence(sequence.id, length, cached)) {
                    this.#native.disposeSequence(sequence.id);
                    length = 0;
                }
                sequence.contextTokens.length = Math.min(length, cached);
                resolve(sequence.contextTokens.length);
            };
            if (this.#busy)
                this.#edits.push(edit);
            else
                edit();
        });
    }

    /** A member has at most one evaluation waiting (it asks again only once its token is back). */
    #everyoneAsked(): boolean {
        return this.#queue.length >= this.#members;
    }

    #releaseIfReady(): void {
        if (this.#release != null && this.#everyoneAsked()) {
            const release = this.#release;
            this.#release = undefined;
            release();
        }
    }

    /** Waits until every member has asked, or for one turn of the event loop. */
    #gather(): Promise<void> | undefined {
        if (this.#everyoneAsked())
            return undefined;
        return new Promise<void>((resolve) => {
            this.#release = resolve;
            setImmediate(() => {
                if (this.#release === resolve) {
                    this.#release = undefined;
                    resolve();
                }
            });
        });
    }

    async #run(): Promise<void> {
        try {
            while (this.#queue.length > 0) {
                await this.#gather();
                await this.#step();
            }
        } finally {
            this.#running = undefined;
        }
    }

    /** One batch: build, decode, sample, hand out. */
    async #step(): Promise<void> {
        const native = this.#native;
        // Slots that are decoding go first, one token each; prompt chunks fill the rest of the batch.
        const ordered = [...this.#queue.filter((evaluation) => evaluation.tokens.length === 1),
            ...this.#queue.filter((evaluation) => evaluation.tokens.length > 1)];
        const items: {evaluation: Evaluation, count: number}[] = [];
        let room = this.#batchSize;
        for (const evaluation of ordered) {
            if (room === 0)
                break;
            const count = Math.min(evaluation.tokens.length, room);
            items.push({evaluation, count});
            room -= count;
        }

        this.#busy = true;
        try {
            const finished: {evaluation: Evaluation, batchIndex: number}[] = [];
            try {
                native.initBatch(this.#batchSize - room);
                for (const {evaluation, count} of items) {
                    const chunk = evaluation.tokens.slice(0, count);
                    const last = count === evaluation.tokens.length;
                    const [batchIndex] = native.addToBatch(evaluation.sequence.id, evaluation.sequence.contextTokens.length,
                        Uint32Array.from(chunk), last ? Uint32Array.of(count - 1) : new Uint32Array(0));
                    if (last)
                        finished.push({evaluation, batchIndex: batchIndex!});
                    for (const token of chunk)
                        evaluation.sequence.contextTokens.push(token);
                    evaluation.tokens = evaluation.tokens.slice(count);
                }
                this.#queue = this.#queue.filter((evaluation) => evaluation.tokens.length > 0);
                await native.decodeBatch();
            } catch (error) {
                // What this batch held is not in the cache as far as anyone can tell: drop those sequences.
                const failed = new Set(items.map((item) => item.evaluation));
                this.#queue = this.#queue.filter((evaluation) => !failed.has(evaluation));
                for (const evaluation of failed) {
                    native.disposeSequence(evaluation.sequence.id);
                    evaluation.sequence.contextTokens.length = 0;
                    evaluation.reject(error);
                }
                return;
            }
            const samples = await Promise.allSettled(finished.map(({evaluation, batchIndex}) =>
                native.sampleToken(batchIndex, evaluation.sampler, evaluation.probabilities || undefined)));
            samples.forEach((outcome, index) => {
                const {evaluation} = finished[index]!;
                if (outcome.status === "rejected")
                    evaluation.reject(outcome.reason);
                else
                    evaluation.resolve(toSampled(outcome.value));
            });
        } finally {
            this.#busy = false;
            for (const edit of this.#edits.splice(0))
                edit();
        }
    }
}

function toSampled(value: number | [number, number[] | undefined] | null | undefined): Sampled {
    if (value == null)
        return {token: null};
    if (typeof value === "number")
        return {token: value === -1 ? null : value as Token};
    const [token, pairs] = value;
    const probabilities = new Map<Token, number>();
    for (let index = 1; index < (pairs?.length ?? 0); index += 2)
        probabilities.set(pairs![index - 1] as Token, pairs![index]!);
    return {token: token === -1 ? null : token as Token, probabilities};
}
