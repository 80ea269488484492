import type {Token} from "node-llama-cpp";

/**
 * Speculative decoding, the server's setting (`--speculative`): `auto` drafts where it pays (a slot whose drafts are
 * mostly refused stops drafting for a while; with a draft model, the draft model drafts), `ngram` drafts whenever the
 * prompt or the reply so far has a match, `draft` drafts with the draft model (`--draft-model`) up to `draftMax` tokens
 * while it is confident, `off` never drafts (a request's prediction is then ignored). A request's prediction drafts
 * first in every mode but `off`, wherever the reply lines up with it.
 */
export type SpeculationMode = "auto" | "off" | "ngram" | "draft";

export const SPECULATION_MODES: readonly SpeculationMode[] = ["auto", "off", "ngram", "draft"];

/** Modes that need a draft model. */
export const DRAFT_MODEL_MODES: readonly string[] = ["draft"];

/**
 * A draft ends before a token the draft model gives a lower probability than this (its share of the draft model's ten
 * likeliest tokens, as llama.cpp's draft sampler reckons it): such drafts are mostly refused, and each drafted token
 * costs a decode of the draft model. llama.cpp's `--draft-p-min` default. A pair of models with random weights (bench
 * draftPair.ts) is never this confident, even where the two agree: drafting with one takes `--draft-p-min 0`.
 */
export const DRAFT_MIN_PROBABILITY = 0.75;

export type SpeculationSettings = {
    mode: SpeculationMode,
    draftMax: number,
    /**
     * Whether n-grams of the prompt and reply draft (false: only a request's prediction does). `auto` leaves them out
     * where the model's layers run on the CPU: there verifying a drafted token costs about what decoding it does, and
     * n-gram drafts measured 0.89-0.95x of no drafting on a 2-core CPU (docs/benchmarks.md, bench:spec).
     */
    ngram?: boolean,
    /** Whether the model's draft model drafts (a model loaded with one, on the native loop, in `draft` or `auto`). */
    draftModel?: boolean,
    /** `--draft-p-min`: see {@link DRAFT_MIN_PROBABILITY}, the default. */
    draftMinProbability?: number
};

export const DEFAULT_SPECULATION: SpeculationSettings = {mode: "auto", draftMax: 16};

/** What one generation drafts from: the prompt and reply so far (`context`, the reply from `replyStart`), and a prediction. */
export type DraftRequest = {
    mode: Exclude<SpeculationMode, "off">,
    /** Tokens one draft holds at most. */
    max: number,
    context: readonly Token[],
    replyStart: number,
    /** false: only the prediction drafts, not n-grams of the prompt and reply. */
    ngram?: boolean,
    /** The reply's expected tokens (OpenAI's `prediction`): drafted from wherever the reply lines up with them. */
    prediction?: readonly Token[],
    /** The model's draft model drafts where the prediction and n-grams propose nothing (a loop without one ignores it). */
    model?: boolean
};

/** Where drafted tokens came from: a request's prediction, n-grams of the prompt and reply, or the draft model. */
export type DraftSourceName = "prediction" | "ngram" | "draft";

/** A reply's drafts from every source: tokens drafted, and those of them kept; `bySource` splits them by where they came from. */
export type DraftTally = {drafted: number, accepted: number, bySource?: Partial<Record<DraftSourceName, {drafted: number, accepted: number}>>};

/** How a generation's drafts fared, by source: tokens drafted and tokens of them the sampler agreed with (the draft model's: `model*`). */
export type DraftCounts = {
    predictionDrafted: number, predictionAccepted: number, ngramDrafted: number, ngramAccepted: number,
    modelDrafted?: number, modelAccepted?: number
};

/** Adds a generation's counts to a tally, by source. */
export function addDraftCounts(tally: DraftTally, counts: DraftCounts): void {
    const sources: [DraftSourceName, number, number][] = [
        ["prediction", counts.predictionDrafted, counts.predictionAccepted],
        ["ngram", counts.ngramDrafted, counts.ngramAccepted],
        ["draft", counts.modelDrafted ?? 0, counts.modelAccepted ?? 0]
    ];
    for (const [source, drafted, accepted] of sources) {
        if (drafted === 0)
            continue;
        tally.drafted += drafted;
        tally.accepted += accepted;
        tally.bySource ??= {};
        const entry = tally.bySource[source] ??= {drafted: 0, accepted: 0};
        entry.drafted += drafted;
        entry.accepted += accepted;
    }
}
