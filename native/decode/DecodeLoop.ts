import {LlamaGrammarEvaluationState} from "node-llama-cpp";
import type {LlamaModel, Token} from "node-llama-cpp";
import {createNativeSampler} from "../addonAccess.js";
import type {NativeContext, NativeSampler} from "../addonAccess.js";
import {Drafter} from "./Drafter.js";
import {allowedDraft, samplerConfig, toRawSampled, toSampled} from "./loopSampling.js";
import type {RawSampled} from "./loopSampling.js";
import {TokenQueue, penaltyWindow} from "./SlotDecoder.js";
import type {GenerateRequest, KvSequence, ProjectorBinding, SavedSequence, SlotDecoder, TokenStream} from "./SlotDecoder.js";
import {replaceTokens, savedSequence} from "./NativeDecodeLoop.js";
import type {AddonSequenceState} from "./NativeDecodeLoop.js";
import type {ProjectedImage} from "../vision/ImageProjector.js";

/** The native addon's sequence state functions, bound to this loop's context (see sequenceStateAddonFor). */
export type SequenceStates = {
    create(): AddonSequenceState,
    copy(target: number, source: number, keep: number): number,
    save(sequence: number, state: AddonSequenceState, maxBytes: number): boolean,
    restore(sequence: number, state: AddonSequenceState, keep: number): number
};

/**
 * What an evaluation sampled: the next token and, after a draft, one more for each drafted token the sampler picked
 * (the last one is then the first it did not, or the one after the whole draft). Empty without a sampler.
 */
type Outcome = {sampled: RawSampled[], drafted: number};

type Evaluation = {
    sequence: KvSequence,
    /** Tokens still to evaluate; the last one's logits are sampled (none without a sampler: input before an image). */
    tokens: Token[],
    /** How many of `tokens`, at their end, are a draft: each is sampled after the one before while the sampler agrees. */
    drafted: number,
    /** Sets the sampler for the next token of a draft's verification, after `sampled` (those already verified). */
    prepare?: (sampled: readonly Token[]) => void,
    /** An image to evaluate instead of tokens, alone between two batches. */
    image?: ProjectedImage,
    sampler: NativeSampler | null,
    probabilities: boolean,
    resolve(outcome: Outcome): void,
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
 *
 * A generation that drafts (speculative decoding, see Drafter) puts its draft after its next token: the batch
 * computes the logits of every drafted position, and the sampler takes them in order while it picks the drafted
 * token, so the reply is what it would have been without the draft; the cache then drops the refused tail.
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
    /** Whether generations may draft: a recurrent state cannot drop the positions of a refused draft. */
    readonly #canDraft: boolean;

    /** `states`: where Hearth's native addon is loaded, with which prefixes are copied and states saved. */
    constructor(model: LlamaModel, native: NativeContext, batchSize: number, states?: SequenceStates) {
        this.#model = model;
        this.#native = native;
        this.#batchSize = batchSize;
        this.#states = states;
        this.#canDraft = !model.fileInsights.isRecurrent && !model.fileInsights.isHybrid;
    }

    generate(sequence: KvSequence, input: readonly Token[], request: GenerateRequest): TokenStream {
        let stopped = false;
        const queue = new TokenQueue(() => {
            stopped = true;
        });
        const generated: Token[] = [];
        const history = (more: readonly Token[]) => [...request.history, ...generated, ...more].slice(-penaltyWindow);
        // A model that sees images does not draft, as on the native loop (see its CreateDrafter).
        const drafter = request.draft != null && this.#canDraft && this.#projector == null ? new Drafter(request.draft) : undefined;
        const run = async (sampler: NativeSampler) => {
            const grammar = request.grammar != null ? new LlamaGrammarEvaluationState({model: this.#model, grammar: request.grammar}) : undefined;
            const config = samplerConfig(request, grammar, history);
            // The input before each image, then the image; sampling starts after the input that follows the last one.
            let done = 0;
            for (const {offset, image} of request.images ?? []) {
                if (offset > done)
                    await this.#evaluate(sequence, input.slice(done, offset), null, false);
                await this.#evaluateImage(sequence, image);
                done = offset + image.positions;
            }
            let tokens = input.slice(done);
            const prepare = (sampled: readonly Token[]) => sampler.applyConfig(config(sampled));
            for (;;) {
                sampler.applyConfig(config([]));
                // A draft never takes the sequence past its budget: what it writes into the cache stays within what the
                // tokens the generation may still sample would have written.
                const draft = drafter != null && tokens.length === 1
                    ? allowedDraft(this.#model, request, grammar, drafter.propose(Math.min(request.maxTokens - generated.length - 1, this.#batchSize - 1)))
                    : undefined;
                const {sampled, drafted} = await this.#evaluate(sequence, tokens, sampler, request.topLogprobs != null, draft?.tokens, prepare);
                for (const {token} of sampled)
                    if (token != null && (request.ignoreEos || !this.#model.isEogToken(token)))
                        drafter?.append(token);
                if (draft != null)
                    drafter!.verified(draft.source, drafted, sampled.filter(({token}, step) => step < drafted && token === draft.tokens[step]).length);
                for (const {token, probabilities} of sampled) {
                    if (token == null || (!request.ignoreEos && this.#model.isEogToken(token)))
                        return;
                    generated.push(token);
                    queue.push(toSampled(token, probabilities, request.topLogprobs));
                    if (stopped || generated.length >= request.maxTokens)
                        return;
                    tokens = [token];
                }
            }
        };
        // Registered at once, so that batches wait for this generation's first evaluation.
        const leave = this.#join();
        let sampler: NativeSampler | undefined;
        (async () => {
            sampler = createNativeSampler(this.#model);
            await run(sampler);
        })().then(() => {
            queue.drafts = drafter?.counts;
            queue.end();
        }, (error: unknown) => queue.fail(error)).finally(() => {
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
    #evaluateImage(sequence: KvSequence, image: ProjectedImage): Promise<Outcome> {
        if (this.#projector == null)
            return Promise.reject(new Error("The model has no projector to evaluate images with"));
        return this.#enqueue({sequence, tokens: [], drafted: 0, image, sampler: null, probabilities: false});
    }

    /**
     * Evaluates `tokens` on a sequence after its cached ones and samples the next token with `sampler` (without one,
     * it only evaluates them); with a `draft`, evaluates it after them and verifies it (see Outcome).
     */
    #evaluate(sequence: KvSequence, tokens: readonly Token[], sampler: NativeSampler | null, probabilities: boolean,
        draft: readonly Token[] = [], prepare?: (sampled: readonly Token[]) => void): Promise<Outcome> {
        if (tokens.length === 0)
            return Promise.reject(new Error("Nothing to evaluate"));
        return this.#enqueue({sequence, tokens: [...tokens, ...draft], drafted: draft.length, ...prepare != null ? {prepare} : {}, sampler, probabilities});
    }

    #enqueue(evaluation: Omit<Evaluation, "resolve" | "reject">): Promise<Outcome> {
        if (this.#closed)
            return Promise.reject(new Error("The model was unloaded"));
        return new Promise<Outcome>((resolve, reject) => {
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
            evaluation.resolve({sampled: [], drafted: 0});
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
        // Slots that are decoding go first, one token each and their drafts; prompt chunks fill the rest of the batch.
        const decoding = this.#queue.filter((evaluation) => evaluation.tokens.length - evaluation.drafted === 1);
        const ordered = [...decoding, ...this.#queue.filter((evaluation) => evaluation.tokens.length - evaluation.drafted > 1)];
        // Drafts take the room left once every decoding slot has its one token; a draft is evaluated whole or not at all.
        let spare = this.#batchSize - decoding.length;
        const items: BatchItem[] = [];
        let room = this.#batchSize;
        for (const evaluation of ordered) {
            if (room === 0)
                break;
            if (evaluation.drafted > 0) {
                cutDraft(evaluation, Math.max(0, Math.min(evaluation.drafted, spare, room - 1)));
                spare -= evaluation.drafted;
            }
            const count = Math.min(evaluation.tokens.length, room);
            items.push({evaluation, count});
            room -= count;
        }

        this.#busy = true;
        try {
            let finished: Finished[] | undefined;
            let failure: unknown;
            try {
                finished = await this.#decode(items);
            } catch (error) {
                failure = error;
            }
            // A cache with no room for the drafts (each briefly takes cells of its own) may take the batch without them.
            if (finished == null && dropDrafts(items)) {
                try {
                    finished = await this.#decode(items);
                } catch (error) {
                    failure = error;
                }
            }
            if (finished != null) {
                await this.#sample(finished);
                return;
            }
            if (items.length === 1) {
                this.#fail(items[0]!.evaluation, failure);
                return;
            }
            // llama.cpp refuses a whole batch for one sequence it cannot take (its slot's context is full) and keeps
            // none of it: each is decoded again alone, so that only the one at fault fails.
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
            // The last input token's logits, and each drafted token's: every position of a draft is sampled.
            const logits = last ? Uint32Array.from({length: evaluation.drafted + 1}, (_, index) => count - 1 - evaluation.drafted + index) : new Uint32Array(0);
            const batchIndexes = native.addToBatch(evaluation.sequence.id, evaluation.sequence.contextTokens.length,
                Uint32Array.from(evaluation.tokens.slice(0, count)), logits);
            if (last)
                finished.push({evaluation, batchIndexes: [...batchIndexes], draft: evaluation.tokens.slice(count - evaluation.drafted, count)});
        }
        await native.decodeBatch();
        // The decode made every pending copy.
        this.#copied.clear();
        for (const {evaluation, count} of items) {
            evaluation.sequence.contextTokens.push(...evaluation.tokens.slice(0, count));
            evaluation.tokens = evaluation.tokens.slice(count);
            // Input before an image is only evaluated: its evaluation is done once all of it is in the cache.
            if (evaluation.tokens.length === 0 && evaluation.sampler == null)
                evaluation.resolve({sampled: [], drafted: 0});
        }
        this.#queue = this.#queue.filter((evaluation) => evaluation.tokens.length > 0);
        return finished;
    }

    /** Samples and hands out the next tokens of each evaluation the last decode completed, verifying their drafts. */
    async #sample(finished: readonly Finished[]): Promise<void> {
        const samples = await Promise.allSettled(finished.map((entry) => this.#verify(entry)));
        samples.forEach((outcome, index) => {
            const {evaluation, draft} = finished[index]!;
            if (outcome.status === "rejected") {
                evaluation.reject(outcome.reason);
                return;
            }
            // The cache keeps the token before the draft and the drafted tokens the sampler agreed with.
            const refused = draft.length - (outcome.value.length - 1);
            if (refused > 0) {
                const sequence = evaluation.sequence;
                sequence.contextTokens.length -= refused;
                if (!this.#native.removeTokenCellsFromSequence(sequence.id, sequence.contextTokens.length, -1)) {
                    this.#native.disposeSequence(sequence.id);
                    sequence.contextTokens.length = 0;
                    evaluation.reject(new Error("The cache could not drop a refused draft"));
                    return;
                }
            }
            evaluation.resolve({sampled: outcome.value, drafted: draft.length});
        });
    }

    /**
     * Samples an evaluation's next token and, when its input ended with a draft, one token for each drafted position after
     * it, as long as each sampled token is the drafted one (the sampler then saw the same tokens as without the draft).
     */
    async #verify({evaluation, batchIndexes, draft}: Finished): Promise<RawSampled[]> {
        const sampled: RawSampled[] = [];
        const tokens: Token[] = [];
        for (let step = 0; ; step++) {
            if (step > 0)
                evaluation.prepare?.(tokens);
            const value = await this.#native.sampleToken(batchIndexes[step]!, evaluation.sampler!, evaluation.probabilities || undefined);
            const next = toRawSampled(value);
            sampled.push(next);
            if (next.token == null || step >= draft.length || next.token !== draft[step])
                return sampled;
            tokens.push(next.token);
        }
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
/**
 * An evaluation whose last token a decode has just computed the logits of, and those of its draft: at `batchIndexes`
 * of its batch, in order.
 */
type Finished = {evaluation: Evaluation, batchIndexes: number[], draft: Token[]};

/** Keeps the first `keep` tokens of an evaluation's draft. */
function cutDraft(evaluation: Evaluation, keep: number): void {
    evaluation.tokens.length -= evaluation.drafted - keep;
    evaluation.drafted = keep;
}

/** Takes the drafts out of a batch's items: the batch is then what it would have been without them. False when there were none. */
function dropDrafts(items: BatchItem[]): boolean {
    let dropped = false;
    for (const item of items) {
        const {evaluation} = item;
        if (evaluation.drafted === 0)
            continue;
        item.count -= evaluation.drafted;
        cutDraft(evaluation, 0);
        dropped = true;
    }
    return dropped;
}
