import type {Token} from "node-llama-cpp";

/**
 * Speculative decoding, the server's setting (`--speculative`): `auto` drafts where it pays (a slot whose drafts are
 * mostly refused stops drafting for a while), `ngram` drafts whenever the prompt or the reply so far has a match, `off`
 * never drafts (a request's prediction is then ignored).
 */
export type SpeculationMode = "auto" | "off" | "ngram";

export const SPECULATION_MODES: readonly SpeculationMode[] = ["auto", "off", "ngram"];

/** Modes that need a draft model, which this build does not load yet. */
export const DRAFT_MODEL_MODES: readonly string[] = ["draft"];

export type SpeculationSettings = {
    mode: SpeculationMode,
    draftMax: number,
    /**
     * Whether n-grams of the prompt and reply draft (false: only a request's prediction does). `auto` leaves them out
     * where the model's layers run on the CPU: there verifying a drafted token costs about what decoding it does, and
     * n-gram drafts measured 0.89-0.95x of no drafting on a 2-core CPU (docs/benchmarks.md, bench:spec).
     */
    ngram?: boolean
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
    prediction?: readonly Token[]
};

/** A reply's drafts from every source: tokens drafted, and those of them kept. */
export type DraftTally = {drafted: number, accepted: number};

/** How a generation's drafts fared, by source: tokens drafted and tokens of them the sampler agreed with. */
export type DraftCounts = {predictionDrafted: number, predictionAccepted: number, ngramDrafted: number, ngramAccepted: number};
