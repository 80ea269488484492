import type {LlamaGrammar, Token} from "node-llama-cpp";
import type {SamplingOptions} from "../types.js";
import type {ProjectedImage} from "../vision/ImageProjector.js";
import type {DraftCounts, DraftRequest} from "./speculation.js";
import type {AddonProjector} from "./NativeDecodeLoop.js";

/** One sequence of a context (a slot's KV cache): its id and the tokens the cache holds, in order. */
export class KvSequence {
    readonly id: number;
    readonly contextTokens: Token[] = [];

    constructor(id: number) {
        this.id = id;
    }
}

/** A sequence's KV state saved outside the context, in the process's memory (the RAM prompt cache). */
export type SavedSequence = {
    readonly bytes: number,
    /** The decode loop's own handle on it. */
    readonly handle: object,
    /** Lets its memory go; idempotent. */
    free(): void
};

/** A sampled token, with natural-log probabilities when they were asked for: its own and the likeliest `top`. */
export type Sampled = {token: Token, logprob?: number, top?: readonly (readonly [Token, number])[]};

export type GenerateRequest = {
    sampling: SamplingOptions,
    grammar?: LlamaGrammar,
    /** Tokens never sampled, whatever the grammar admits; end-of-generation tokens must not be among them. */
    bannedTokens?: Uint32Array,
    /** The tokens before the input, most recent last, that repeat penalties look back on. */
    history: readonly Token[],
    /** Tokens it may sample at most (at least 1). */
    maxTokens: number,
    ignoreEos: boolean,
    /** Log probabilities of the sampled token and this many likeliest candidates; none when undefined. */
    topLogprobs?: number,
    /**
     * Images in the input, in order: each stands for `image.positions` entries of the input from `offset` (placeholder
     * tokens), and is evaluated through the model's projector when the input reaches it. Input always follows the last.
     */
    images?: readonly {offset: number, image: ProjectedImage}[],
    /** Drafts several tokens at a time and verifies them in one batch (a loop that cannot ignores it). */
    draft?: DraftRequest
};

/** How many recent tokens repeat penalties look back on. */
export const penaltyWindow = 64;

/**
 * The tokens of one generation, in order. It ends after an end-of-generation token (not included), when
 * `maxTokens` have been sampled, or soon after `stop()`; iterating throws if decoding failed.
 */
export interface TokenStream extends AsyncIterable<Sampled> {
    /** Asks the generation to end; tokens already sampled may still arrive. Safe to call at any time. */
    stop(): void;
    /** Settles once the generation has ended and its sequence's `contextTokens` match the KV cache. */
    readonly finished: Promise<void>;
    /** How its drafts fared, once it has ended; undefined when it did not draft. */
    readonly drafts: DraftCounts | undefined;
}

/**
 * Decodes and samples the sequences of one context with continuous batching. Two implementations:
 * NativeDecodeLoop (a native thread, the default where it is built) and DecodeLoop (JavaScript).
 */
export interface SlotDecoder {
    /** Starts generating on a sequence after its cached tokens: evaluates `input`, then samples token after token. */
    generate(sequence: KvSequence, input: readonly Token[], request: GenerateRequest): TokenStream;
    /**
     * Keeps the first `length` cached tokens of a sequence that is not generating and drops the rest from the
     * KV cache. Resolves with the tokens kept: `length`, or 0 when the cache cannot drop part of a sequence
     * (recurrent models) and the whole sequence was dropped instead.
     */
    truncate(sequence: KvSequence, length: number): Promise<number>;
    /**
     * Whether the loop can copy a prefix from one sequence into another and save and restore a sequence's state
     * (`copyPrefix`, `save`, `restore`): it needs Hearth's native addon, with either loop.
     */
    readonly sharesState: boolean;
    /**
     * Replaces what `target` (not generating) holds with the first `length` cached tokens of `source`, which may be
     * generating: only what it had evaluated when this was asked is copied. Resolves with the tokens `target` holds.
     */
    copyPrefix(target: KvSequence, source: KvSequence, length: number): Promise<number>;
    /** The state of a sequence that is not generating, or undefined when it is larger than `maxBytes` or cannot be saved now. */
    save(sequence: KvSequence, maxBytes: number): Promise<SavedSequence | undefined>;
    /**
     * Replaces what `sequence` (not generating) holds with the first `length` of `tokens`, from a state saved when it
     * held them. Resolves with the tokens it holds: 0 when the state could not be restored.
     */
    restore(sequence: KvSequence, state: SavedSequence, tokens: readonly Token[], length: number): Promise<number>;
    /** Refuses new work, ends what runs and waits for the batch in flight: the context can then go. */
    close(): Promise<void>;
    /** Lets generations carry images of this projector. */
    setProjector(projector: ProjectorBinding): void;
}

/** A model's projector as the decode loops use it: the native loop hands chunks to it, the JavaScript one calls `evaluate`. */
export type ProjectorBinding = {
    native: AddonProjector,
    /** Encodes an image chunk and decodes it into a sequence at `position`; resolves with the position after it. */
    evaluate(chunk: object, sequence: number, position: number): Promise<number>
};

/** A TokenStream fed by a producer: `push` tokens, then `end` or `fail`. */
export class TokenQueue implements TokenStream {
    readonly finished: Promise<void>;
    readonly #onStop: () => void;
    readonly #onTaken: (() => void) | undefined;
    readonly #items: Sampled[] = [];
    #ended = false;
    #error: {reason: unknown} | undefined;
    #wake: (() => void) | undefined;
    #settle!: () => void;
    /** Set by the producer before `end`. */
    drafts: DraftCounts | undefined;

    /** `onTaken`: told each time the reader takes a token, for a producer that stays a bounded distance ahead. */
    constructor(onStop: () => void, onTaken?: () => void) {
        this.#onStop = onStop;
        this.#onTaken = onTaken;
        this.finished = new Promise((resolve) => {
            this.#settle = resolve;
        });
    }

    get ended(): boolean {
        return this.#ended;
    }

    push(item: Sampled): void {
        if (this.#ended)
            return;
        this.#items.push(item);
        this.#notify();
    }

    end(): void {
        if (this.#ended)
            return;
        this.#ended = true;
        this.#settle();
        this.#notify();
    }

    fail(reason: unknown): void {
        if (this.#ended)
            return;
        this.#error = {reason};
        this.end();
    }

    stop(): void {
        if (!this.#ended)
            this.#onStop();
    }

    async* [Symbol.asyncIterator](): AsyncGenerator<Sampled> {
        for (;;) {
            const item = this.#items.shift();
            if (item != null) {
                this.#onTaken?.();
                yield item;
                continue;
            }
            if (this.#error != null)
                throw this.#error.reason;
            if (this.#ended)
                return;
            await new Promise<void>((resolve) => {
                this.#wake = resolve;
            });
        }
    }

    #notify(): void {
        const wake = this.#wake;
        this.#wake = undefined;
        wake?.();
    }
}
