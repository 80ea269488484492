import {LlamaGrammarEvaluationState} from "node-llama-cpp";
import type {LlamaGrammar, LlamaModel, Token} from "node-llama-cpp";
import {createNativeSampler, nativeGrammarState} from "../addonAccess.js";
import type {NativeContext, NativeSampler, NativeSamplerConfig} from "../addonAccess.js";
import {TokenQueue, penaltyWindow} from "./SlotDecoder.js";
import type {GenerateRequest, KvSequence, ProjectorBinding, Sampled, SavedSequence, SlotDecoder, TokenStream} from "./SlotDecoder.js";
import {replaceTokens, savedSequence} from "./NativeDecodeLoop.js";
import type {AddonSequenceState} from "./NativeDecodeLoop.js";
import type {ProjectedImage} from "../vision/ImageProjector.js";

/** What node-llama-cpp's sampler returns: a token (null when nothing could be sampled) and the candidates' probabilities when asked. */
type RawSampled = {token: Token | null, probabilities?: Map<Token, number>};

/** The native addon's sequence state functions, bound to this loop's context (see sequenceStateAddonFor). */
export type SequenceStates = {
    create(): AddonSequenceState,
    copy(target: number, source: number, keep: number): number,
    save(sequence: number, state: AddonSequenceState, maxBytes: number): boolean,
    restore(sequence: number, state: AddonSequenceState, keep: number): number
};

type Evaluation = {
    sequence: KvSequence,
    /** Tokens still to evaluate; the last one's logits are sampled (none without a sampler: input before an image). */
    tokens: Token[],
    /** An image to evaluate instead of tokens, alone between two batches. */
    image?: ProjectedImage,
    sampler: NativeSampler | null,
    probabilities: boolean,
    resolve(sampled: RawSampled): void,
    reject(error: unknown): void
};

/**
 * Continuous batching on one context in JavaScript, driving node-llama-cpp's native calls directly: the
 * decode loop Hearth falls back on where its native one (NativeDecodeLoop) is not built.
 *
 * Each generation joins the loop and asks it to evaluate tokens (a prompt, then one token at a time);
 * the loop puts every waiting request into one batch (decoding slots first, then prompt chunks, up to
 * the batch size), decodes it, samples every finished request at once, and hands out the tokens. It
 * dispatches the next batch as soon as every member generation has asked again, or after one turn of the
 * event loop for one that has not, so a single stream never waits on a timer and parallel streams share
 * each decode. Everything a reply does with its token (text, stop strings, the socket) happens while the
 * next batch is already decoding.
 */
export class DecodeLoop implements SlotDecoder {
    readonly #model: LlamaModel;
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
    #projector: ProjectorBinding | undefined;
    readonly #states: SequenceStates | undefined;
    /** Sequences that took a copy no decode has made yet (see NativeDecodeLoop's own). */
    readonly #copied = new Set<number>();

    /** `states`: where Hearth's native addon is loaded, with which prefixes are copied and states saved. */
    constructor(model: LlamaModel, native: NativeContext, batchSize: number, states?: SequenceStates) {
        this.#model = model;
        this.#native = native;
        this.#batchSize = batchSize;
        this.#states = states;
    }

    generate(sequence: KvSequence, input: readonly Token[], request: GenerateRequest): TokenStream {
        let stopped = false;
        const queue = new TokenQueue(() => {
            stopped = true;
        });
        const generated: Token[] = [];
        const history = () => [...request.history, ...generated].slice(-penaltyWindow);
        const run = async (sampler: NativeSampler) => {
            const config = samplerConfig(this.#model, request, history);
            // The input before each image, then the image; sampling starts after the input that follows the last one.
            let done = 0;
            for (const {offset, image} of request.images ?? []) {
                if (offset > done)
                    await this.#evaluate(sequence, input.slice(done, offset), null, false);
                await this.#evaluateImage(sequence, image);
                done = offset + image.positions;
            }
            let tokens = input.slice(done);
            for (;;) {
                sampler.applyConfig(config());
                const {token, probabilities} = await this.#evaluate(sequence, tokens, sampler, request.topLogprobs != null);
                if (token == null || (!request.ignoreEos && this.#model.isEogToken(token)))
                    return;
                generated.push(token);
                queue.push(toSampled(token, probabilities, request.topLogprobs));
                if (stopped || generated.length >= request.maxTokens)
                    return;
                tokens = [token];
            }
        };
        // Registered at once, so that batches wait for this generation's first evaluation.
        const leave = this.#join();
        let sampler: NativeSampler | undefined;
        (async () => {
            sampler = createNativeSampler(this.#model);
            await run(sampler);
        })().then(() => queue.end(), (error: unknown) => queue.fail(error)).finally(() => {
            sampler?.dispose();
            leave();
        });
        return queue;
    }

    /** Registers a generation that will evaluate; call the returned function when it is done. */
    #join(): () => void {
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

    setProjector(projector: ProjectorBinding): void {
        this.#projector = projector;
    }

    /** Evaluates an image on a sequence after its cached tokens, alone between two batches. */
    #evaluateImage(sequence: KvSequence, image: ProjectedImage): Promise<RawSampled> {
        if (this.#projector == null)
            return Promise.reject(new Error("The model has no projector to evaluate images with"));
        return this.#enqueue({sequence, tokens: [], image, sampler: null, probabilities: false});
    }

    /**
     * Evaluates `tokens` on a sequence after its cached ones and samples the next token with `sampler` (without one,
     * it only evaluates them).
     */
    #evaluate(sequence: KvSequence, tokens: readonly Token[], sampler: NativeSampler | null, probabilities: boolean): Promise<RawSampled> {
        if (tokens.length === 0)
            return Promise.reject(new Error("Nothing to evaluate"));
        return this.#enqueue({sequence, tokens: [...tokens], sampler, probabilities});
    }

    #enqueue(evaluation: Omit<Evaluation, "resolve" | "reject">): Promise<RawSampled> {
        if (this.#closed)
            return Promise.reject(new Error("The model was unloaded"));
        return new Promise<RawSampled>((resolve, reject) => {
            this.#queue.push({...evaluation, resolve, reject});
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

    /** Runs between batches, so it never races a decode. */
    truncate(sequence: KvSequence, length: number): Promise<number> {
        if (length >= sequence.contextTokens.length)
            return Promise.resolve(sequence.contextTokens.length);
        // What lies past `length` is going: from now on nothing may be copied from it.
        sequence.contextTokens.length = length;
        return this.#betweenBatches(() => {
            if (!(this.#prefixKept(sequence.id, length) && this.#native.removeTokenCellsFromSequence(sequence.id, length, -1))) {
                this.#native.disposeSequence(sequence.id);
                sequence.contextTokens.length = 0;
            }
            return sequence.contextTokens.length;
        });
    }

    get sharesState(): boolean {
        return this.#states != null;
    }

    copyPrefix(target: KvSequence, source: KvSequence, length: number): Promise<number> {
        const tokens = source.contextTokens.slice(0, length);
        target.contextTokens.length = 0;
        return this.#betweenBatches(() => {
            const kept = this.#states!.copy(target.id, source.id, tokens.length);
            replaceTokens(target, tokens.slice(0, kept));
            if (kept > 0)
                this.#copied.add(target.id);
            return kept;
        });
    }

    save(sequence: KvSequence, maxBytes: number): Promise<SavedSequence | undefined> {
        const states = this.#states;
        if (states == null || this.#copied.has(sequence.id))
            return Promise.resolve(undefined);
        return this.#betweenBatches(() => {
            const state = states.create();
            if (states.save(sequence.id, state, maxBytes))
                return savedSequence(state);
            state.free();
            return undefined;
        });
    }

    restore(sequence: KvSequence, state: SavedSequence, tokens: readonly Token[], length: number): Promise<number> {
        if (this.#copied.has(sequence.id))
            return this.truncate(sequence, 0);
        sequence.contextTokens.length = 0;
        return this.#betweenBatches(() => {
            const kept = this.#states!.restore(sequence.id, state.handle as AddonSequenceState, length);
            replaceTokens(sequence, tokens.slice(0, kept));
            return kept;
        });
    }

    /** Runs an edit of the cache now, or after the batch in flight: never while a decode runs, and in the order asked. */
    #betweenBatches<T>(edit: () => T): Promise<T> {
        return new Promise((resolve, reject) => {
            const run = () => {
                try {
                    resolve(edit());
                } catch (error) {
                    reject(error as Error);
                }
            };
            if (this.#busy)
                this.#edits.push(run);
            else
                run();
        });
    }

    /**
     * A sliding-window cache (Gemma) drops positions that fell out of the window: a prefix is only of use when the
     * window before its end is still there (the addon's loop and llama-server test the same).
     */
    #prefixKept(sequenceId: number, length: number): boolean {
        const window = this.#model.fileInsights.swaSize ?? 0;
        if (window <= 0 || length <= 0)
            return true;
        const first = this.#native.getSequenceKvCacheMinPosition(sequenceId);
        return first <= 0 || first < length - window;
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

    /** Evaluates one image alone: the whole context may attend to it non-causally while it decodes. */
    async #stepImage(evaluation: Evaluation & {image: ProjectedImage}): Promise<void> {
        this.#queue = this.#queue.filter((queued) => queued !== evaluation);
        this.#busy = true;
        try {
            const {sequence, image} = evaluation;
            const position = sequence.contextTokens.length;
            await this.#projector!.evaluate(image.chunk, sequence.id, position);
            for (let index = 0; index < image.positions; index++)
                sequence.contextTokens.push(image.placeholder);
            evaluation.resolve({token: null});
        } catch (error) {
            this.#native.disposeSequence(evaluation.sequence.id);
            evaluation.sequence.contextTokens.length = 0;
            evaluation.reject(error);
        } finally {
            this.#busy = false;
            for (const edit of this.#edits.splice(0))
                edit();
        }
    }

    /** One batch: build, decode, sample, hand out. */
    async #step(): Promise<void> {
        const image = this.#queue.find((evaluation) => evaluation.image != null);
        if (image != null)
            return this.#stepImage(image as Evaluation & {image: ProjectedImage});
        // Slots that are decoding go first, one token each; prompt chunks fill the rest of the batch.
        const ordered = [...this.#queue.filter((evaluation) => evaluation.tokens.length === 1),
            ...this.#queue.filter((evaluation) => evaluation.tokens.length > 1)];
        const items: BatchItem[] = [];
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
            let finished: Finished[];
            try {
                finished = await this.#decode(items);
            } catch (error) {
                if (items.length === 1) {
                    this.#fail(items[0]!.evaluation, error);
                    return;
                }
                // llama.cpp refuses a whole batch for one sequence it cannot take (its slot's context is full) and
                // keeps none of it: each is decoded again alone, so that only the one at fault fails.
                for (const item of items) {
                    let alone: Finished[];
                    try {
                        alone = await this.#decode([item]);
                    } catch (ownError) {
                        this.#fail(item.evaluation, ownError);
                        continue;
                    }
                    await this.#sample(alone);
                }
                return;
            }
            await this.#sample(finished);
        } finally {
            this.#busy = false;
            for (const edit of this.#edits.splice(0))
                edit();
        }
    }

    /**
     * Decodes `items` as one batch; resolves with those whose input it completed, to sample before the next decode.
     * When the decode fails, nothing has changed: the sequences and their evaluations are as they were.
     */
    async #decode(items: readonly BatchItem[]): Promise<Finished[]> {
        const native = this.#native;
        const finished: Finished[] = [];
        native.initBatch(items.reduce((total, item) => total + item.count, 0));
        for (const {evaluation, count} of items) {
            const last = count === evaluation.tokens.length && evaluation.sampler != null;
            const [batchIndex] = native.addToBatch(evaluation.sequence.id, evaluation.sequence.contextTokens.length,
                Uint32Array.from(evaluation.tokens.slice(0, count)), last ? Uint32Array.of(count - 1) : new Uint32Array(0));
            if (last)
                finished.push({evaluation, batchIndex: batchIndex!});
        }
        await native.decodeBatch();
        // The decode made every pending copy.
        this.#copied.clear();
        for (const {evaluation, count} of items) {
            evaluation.sequence.contextTokens.push(...evaluation.tokens.slice(0, count));
            evaluation.tokens = evaluation.tokens.slice(count);
            // Input before an image is only evaluated: its evaluation is done once all of it is in the cache.
            if (evaluation.tokens.length === 0 && evaluation.sampler == null)
                evaluation.resolve({token: null});
        }
        this.#queue = this.#queue.filter((evaluation) => evaluation.tokens.length > 0);
        return finished;
    }

    /** Samples and hands out the next token of each evaluation the last decode completed. */
    async #sample(finished: readonly Finished[]): Promise<void> {
        const native = this.#native;
        const samples = await Promise.allSettled(finished.map(({evaluation, batchIndex}) =>
            native.sampleToken(batchIndex, evaluation.sampler!, evaluation.probabilities || undefined)));
        samples.forEach((outcome, index) => {
            const {evaluation} = finished[index]!;
            if (outcome.status === "rejected")
                evaluation.reject(outcome.reason);
            else
                evaluation.resolve(toRawSampled(outcome.value));
        });
    }

    /** Ends an evaluation that could not be decoded; what its sequence held is dropped, since nobody can tell what the cache kept. */
    #fail(evaluation: Evaluation, error: unknown): void {
        this.#queue = this.#queue.filter((queued) => queued !== evaluation);
        this.#native.disposeSequence(evaluation.sequence.id);
        evaluation.sequence.contextTokens.length = 0;
        evaluation.reject(error);
    }
}

type BatchItem = {evaluation: Evaluation, count: number};
/** An evaluation whose last token a decode has just computed the logits of, at `batchIndex` of its batch. */
type Finished = {evaluation: Evaluation, batchIndex: number};

function toRawSampled(value: number | [number, number[] | undefined] | null | undefined): RawSampled {
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

/** node-llama-cpp's probabilities (its candidates, likeliest first) as log probabilities. */
function toSampled(token: Token, probabilities: Map<Token, number> | undefined, top: number | undefined): Sampled {
    if (probabilities == null || top == null)
        return {token};
    return {
        token,
        logprob: Math.log(probabilities.get(token) ?? 0),
        top: [...probabilities].slice(0, top).map(([candidate, probability]) => [candidate, Math.log(probability)] as const)
    };
}

/** The sampler's settings for the next token; with penalties, they change as tokens are generated. */
function samplerConfig(model: LlamaModel, request: GenerateRequest, history: () => Token[]): () => NativeSamplerConfig {
    const {sampling, grammar, bannedTokens} = request;
    const penalized = sampling.repeatPenalty != null || sampling.presencePenalty != null || sampling.frequencyPenalty != null;
    const fixed: NativeSamplerConfig = {
        temperature: sampling.temperature ?? 0.8,
        topK: sampling.topK ?? 40,
        topP: sampling.topP ?? 0.95,
        minP: sampling.minP ?? 0.05,
        seed: sampling.seed ?? 0,
        ...(grammar != null ? {grammarEvaluationState: grammarState(model, grammar)} : {}),
        ...(bannedTokens != null && bannedTokens.length > 0
            ? {tokenBiasKeys: bannedTokens, tokenBiasValues: new Float32Array(bannedTokens.length).fill(-Infinity)}
            : {})
    };
    if (!penalized)
        return () => fixed;
    return () => {
        const tokens = history();
        return {
            ...fixed,
            repeatPenalty: sampling.repeatPenalty ?? 1,
            repeatPenaltyMaxTokens: Math.max(penaltyWindow, tokens.length),
            repeatPenaltyTokens: Uint32Array.from(tokens),
            repeatPenaltyPresencePenalty: sampling.presencePenalty ?? 0,
            repeatPenaltyFrequencyPenalty: sampling.frequencyPenalty ?? 0
        };
    };
}

function grammarState(model: LlamaModel, grammar: LlamaGrammar): unknown {
    return nativeGrammarState(new LlamaGrammarEvaluationState({model, grammar}));
}
