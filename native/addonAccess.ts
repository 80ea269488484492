import type {Llama, LlamaContext, LlamaGrammarEvaluationState, LlamaModel} from "node-llama-cpp";

/**
 * The parts of node-llama-cpp's native addon that Hearth's decode loop drives directly: batch building,
 * decoding and sampling on one context. node-llama-cpp's public `LlamaContextSequence.evaluate` wraps
 * the same calls in a lock, a batch queue and a generator per sequence, and on small models that
 * bookkeeping costs as much as the decode itself; Hearth keeps each sequence's tokens itself and calls
 * the context's and the sampler's native methods in its own loop (see DecodeLoop).
 *
 * These are internal to node-llama-cpp (the version is pinned in package.json); every access is in this
 * file and is checked where it is first used (the context when a model loads, the sampler and a grammar's
 * state when a generation starts), so an upgrade that changes them fails at once with this name.
 */

export type NativeContext = {
    /** Starts a batch of up to `tokens` tokens (at most the context's batch size). */
    initBatch(tokens: number): void,
    /** Adds tokens of a sequence at consecutive positions; returns the batch indexes of `logitIndexes`. */
    addToBatch(sequenceId: number, firstPosition: number, tokens: Uint32Array, logitIndexes: Uint32Array): Uint32Array,
    /** Evaluates the batch on a worker thread. */
    decodeBatch(): Promise<void>,
    /** Samples from the logits at a batch index (on a worker thread) and accepts the token into the sampler. */
    sampleToken(batchIndex: number, sampler: NativeSampler, probabilities?: boolean): Promise<number | [number, number[] | undefined]>,
    /** Drops positions [start, end) of a sequence from the KV cache; false when the cache cannot drop part of it. */
    removeTokenCellsFromSequence(sequenceId: number, start: number, end: number): boolean,
    /** Drops a whole sequence from the KV cache. */
    disposeSequence(sequenceId: number): void,
    /** The first position a sequence still has in the KV cache (a sliding-window cache drops older ones); -1 when empty. */
    getSequenceKvCacheMinPosition(sequenceId: number): number
};

export type NativeSampler = {
    applyConfig(config: NativeSamplerConfig): void,
    dispose(): void
};

/** What node-llama-cpp's sampler accepts; greedy when temperature is 0. */
export type NativeSamplerConfig = {
    temperature: number,
    minP: number,
    topK: number,
    topP: number,
    seed: number,
    repeatPenalty?: number,
    repeatPenaltyMaxTokens?: number,
    repeatPenaltyTokens?: Uint32Array,
    repeatPenaltyPresencePenalty?: number,
    repeatPenaltyFrequencyPenalty?: number,
    grammarEvaluationState?: unknown,
    /** Added to the logits of these tokens before any other step of the chain; -Infinity bans a token. */
    tokenBiasKeys?: Uint32Array,
    tokenBiasValues?: Float32Array
};

/** node-llama-cpp's checks of a token against a grammar's state, outside sampling. */
type GrammarChecks = {
    /** Whether the grammar allows the token next. */
    canBeNextTokenForGrammarEvaluationState(state: unknown, token: number): boolean,
    /** Moves the grammar's state past the token. */
    acceptGrammarEvaluationStateToken(state: unknown, token: number): void
};

type Bindings = {
    AddonSampler?: (new (model: unknown) => NativeSampler) & Partial<GrammarChecks>,
    AddonContext?: abstract new (...args: never[]) => unknown,
    AddonModel?: abstract new (...args: never[]) => unknown
};

type Internals = {
    _ctx?: Partial<NativeContext> & {getContextSize?: () => number},
    _llama?: {_bindings?: Bindings},
    _bindings?: Bindings,
    _model?: unknown,
    _state?: unknown
};

class AddonAccessError extends Error {
    constructor(what: string) {
        super(`node-llama-cpp's ${what} is not what Hearth expects: this node-llama-cpp version is not supported (use the version in package.json)`);
    }
}

const contextMethods = ["initBatch", "addToBatch", "decodeBatch", "sampleToken", "removeTokenCellsFromSequence", "disposeSequence", "getSequenceKvCacheMinPosition"] as const;

export function nativeContextOf(context: LlamaContext): NativeContext {
    const native = (context as unknown as Internals)._ctx;
    if (native == null || contextMethods.some((method) => typeof native[method] !== "function"))
        throw new AddonAccessError("context");
    return native as NativeContext;
}

/**
 * node-llama-cpp's native context object itself, for Hearth's native decode loop, which reads the
 * llama_context it wraps; checked to be an instance of node-llama-cpp's context class.
 */
export function nativeAddonContextOf(context: LlamaContext): object {
    const internals = context as unknown as Internals;
    const AddonContext = internals._llama?._bindings?.AddonContext;
    const native = internals._ctx;
    if (AddonContext == null || native == null || !(native instanceof AddonContext))
        throw new AddonAccessError("context");
    return native;
}

/**
 * node-llama-cpp's native model and context objects and what node-llama-cpp knows of the context, for
 * Hearth's native decode loop, which checks its own view of them against these numbers.
 */
export function nativeDecodeLoopTarget(model: LlamaModel, context: LlamaContext): {
    model: object, context: object, expected: {contextSize: number, sequences: number, batchSize: number}
} {
    const internals = model as unknown as Internals;
    const AddonModel = internals._llama?._bindings?.AddonModel;
    const native = internals._model;
    if (AddonModel == null || native == null || !(native instanceof AddonModel))
        throw new AddonAccessError("model");
    const contextSize = (context as unknown as Internals)._ctx?.getContextSize?.();
    if (typeof contextSize !== "number")
        throw new AddonAccessError("context");
    return {
        model: native,
        context: nativeAddonContextOf(context),
        // node-llama-cpp gives a model with a sliding-window cache (Gemma) one more token of batch than it reports.
        expected: {contextSize, sequences: context.totalSequences, batchSize: context.batchSize + (slidingWindowBatchExtra(model, context) ? 1 : 0)}
    };
}

/** Whether node-llama-cpp added a token to the context's batch for its sliding-window cache (as its LlamaContext does). */
function slidingWindowBatchExtra(model: LlamaModel, context: LlamaContext): boolean {
    const swaSize = model.fileInsights.swaSize;
    return swaSize != null && swaSize > 0 && (context as unknown as {_swaFullCache?: boolean})._swaFullCache !== true;
}

/** The module object of node-llama-cpp's native addon that a Llama runs on. */
export function nativeBindingsOf(llama: Llama): object {
    const bindings = (llama as unknown as Internals)._bindings;
    if (bindings == null || typeof bindings !== "object")
        throw new AddonAccessError("bindings");
    return bindings;
}

/** A native sampler for one generation; dispose it when the generation ends. */
export function createNativeSampler(model: LlamaModel): NativeSampler {
    const internals = model as unknown as Internals;
    const Sampler = internals._llama?._bindings?.AddonSampler;
    if (Sampler == null || internals._model == null)
        throw new AddonAccessError("sampler");
    return new Sampler(internals._model);
}

/** The native state of a grammar, as the sampler's config takes it. */
export function nativeGrammarState(state: LlamaGrammarEvaluationState): unknown {
    const native = (state as unknown as Internals)._state;
    if (native == null)
        throw new AddonAccessError("grammar state");
    return native;
}

/** A grammar's state that a draft is checked against: a copy of the generation's own, moved past each token it allows. */
export type DraftGrammar = {
    /** Whether the grammar allows `token` next; when it does, the copy moves past it. */
    take(token: number): boolean
};

/** A copy of a generation's grammar state for checking a draft, which leaves the generation's own state as it is. */
export function draftGrammar(model: LlamaModel, state: LlamaGrammarEvaluationState): DraftGrammar {
    const Sampler = (model as unknown as Internals)._llama?._bindings?.AddonSampler;
    if (Sampler?.canBeNextTokenForGrammarEvaluationState == null || Sampler.acceptGrammarEvaluationStateToken == null)
        throw new AddonAccessError("sampler's grammar checks");
    const copy = nativeGrammarState(state.clone());
    return {
        take(token: number): boolean {
            if (!Sampler.canBeNextTokenForGrammarEvaluationState!(copy, token))
                return false;
            Sampler.acceptGrammarEvaluationStateToken!(copy, token);
            return true;
        }
    };
}
