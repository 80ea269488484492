import type {Token} from "node-llama-cpp";
import type {DraftCounts, DraftRequest} from "./speculation.js";

// Drafts for the JavaScript decode loop. native/addon/drafting.cpp holds the same drafter for the native loop, where it
// runs on the loop's own thread with no call into JavaScript per token; the JavaScript loop runs where that addon is not
// built, so it cannot call it. Both must propose the same drafts and pause at the same points (their constants and
// steps mirror each other): a change to one is a change to the other.

/** The longest and shortest tail of the history looked up (a prediction is also drafted from its start, before the reply has a token). */
const longestMatch = 4;
const shortestMatch = 2;
/** Auto drafts from the history only after a match of 3 tokens: two-token matches are common in any text, and mostly refused. */
const shortestAutoMatch = 3;
/** The latest occurrences of the history's last token that a lookup compares. */
const mostCandidates = 512;
/**
 * Auto: below this moving acceptance rate a generation stops drafting for a while, at first for `pause` tokens, twice
 * as long after each further fall (up to pause << mostStrikes): a draft must mostly be right to pay for its verification.
 */
const threshold = 0.5;
const pause = 16;
const mostStrikes = 5;
/** Auto starts with short drafts and doubles them while they are taken whole; the rate starts just above the threshold. */
const firstLength = 4;
const firstRate = 0.75;
const rateWeight = 0.4;

export type DraftSource = "prediction" | "ngram";

function sameRun(a: readonly Token[], aStart: number, b: readonly Token[], bStart: number, length: number): boolean {
    for (let index = 0; index < length; index++) {
        const token = a[aStart + index]!;
        if (token < 0 || token !== b[bStart + index])
            return false;
    }
    return true;
}

/** Proposes drafts for one generation from its prediction or from n-grams of its prompt and reply; tokens < 0 (image positions) never match. */
export class Drafter {
    readonly #auto: boolean;
    readonly #ngram: boolean;
    readonly #max: number;
    readonly #history: Token[];
    readonly #replyStart: number;
    /** The history as it was given, indexed by token on first use: each token's positions, in order. */
    readonly #givenSize: number;
    #positions: Map<Token, number[]> | undefined;
    readonly #prediction: readonly Token[];
    /** Where the reply stands in the prediction while they agree (the prediction's next token), else -1. */
    #cursor = -1;
    /** Where they last agreed: a realignment prefers a match after it (the tail of an edited text). */
    #hint = 0;
    readonly counts: DraftCounts = {predictionDrafted: 0, predictionAccepted: 0, ngramDrafted: 0, ngramAccepted: 0};
    #rate = firstRate;
    #length: number;
    #pause = 0;
    #strikes = 0;
    /** Not auto: how long the next n-gram draft may be, by how the last ones fared. */
    #ngramLength: number;

    constructor(request: DraftRequest) {
        this.#auto = request.mode === "auto";
        this.#ngram = request.ngram !== false;
        this.#max = Math.max(1, request.max);
        this.#history = [...request.context];
        this.#replyStart = Math.min(request.replyStart, this.#history.length);
        this.#givenSize = this.#history.length;
        this.#prediction = request.prediction ?? [];
        this.#length = Math.min(this.#max, firstLength);
        this.#ngramLength = this.#length;
        if (this.#history.length === this.#replyStart && this.#prediction.length > 0)
            this.#cursor = 0;
    }

    /** A token the generation sampled (and kept), which joins the history. */
    append(token: Token): void {
        this.#history.push(token);
        if (this.#cursor >= 0) {
            if (this.#cursor < this.#prediction.length && this.#prediction[this.#cursor] === token) {
                this.#cursor++;
                this.#hint = this.#cursor;
            } else {
                this.#cursor = -1;
            }
        }
        if (this.#pause > 0)
            this.#pause--;
    }

    /** Up to `limit` tokens (and at most the drafter's max) that may follow the history, and where they came from. */
    propose(limit: number): {source: DraftSource, tokens: Token[]} | undefined {
        if (this.#auto) {
            if (this.#pause > 0)
                return undefined;
            limit = Math.min(limit, this.#length);
        }
        limit = Math.min(limit, this.#max);
        if (limit <= 0)
            return undefined;
        let start = this.#predictionStart();
        let source: DraftSource = "prediction";
        let from: readonly Token[] = this.#prediction;
        if (start == null && this.#ngram) {
            start = this.#ngramStart();
            source = "ngram";
            from = this.#history;
            // Not auto: an n-gram draft is as long as the last ones were taken (see verified); a prediction's is not cut.
            if (!this.#auto)
                limit = Math.min(limit, this.#ngramLength);
        }
        if (start == null)
            return undefined;
        const tokens: Token[] = [];
        // An n-gram's continuation goes on into the draft itself where it reaches the end of the history (an
        // overlapping copy): the latest match of a reply that repeats itself is usually a period back.
        const size = from.length;
        for (let position = start; tokens.length < limit; position++) {
            if (position >= size && source !== "ngram")
                break;
            const token = position < size ? from[position]! : tokens[position - size]!;
            if (token < 0)
                break;
            tokens.push(token);
        }
        return tokens.length > 0 ? {source, tokens} : undefined;
    }

    /** How the last proposal fared: `accepted` of its `drafted` tokens were what the sampler picked. */
    verified(source: DraftSource, drafted: number, accepted: number): void {
        if (drafted <= 0)
            return;
        if (source === "prediction") {
            this.counts.predictionDrafted += drafted;
            this.counts.predictionAccepted += accepted;
        } else {
            this.counts.ngramDrafted += drafted;
            this.counts.ngramAccepted += accepted;
        }
        if (!this.#auto) {
            // Every refused token costs a verified position: n-gram drafts grow while taken whole and shrink to what
            // was taken after a refusal, as the addon's drafter does (drafting.cpp).
            if (source === "ngram")
                this.#ngramLength = accepted === drafted ? Math.min(this.#max, this.#ngramLength * 2) : Math.max(1, accepted + 1);
            return;
        }
        this.#rate = (1 - rateWeight) * this.#rate + rateWeight * accepted / drafted;
        // A draft taken whole may grow; one cut short is as long as what was taken of it next time (and one more).
        this.#length = accepted === drafted ? Math.min(this.#max, this.#length * 2) : Math.max(1, accepted + 1);
        if (this.#rate < threshold) {
            this.#pause = pause << Math.min(this.#strikes, mostStrikes);
            this.#strikes++;
            this.#rate = firstRate;
            this.#length = Math.min(this.#max, firstLength);
        }
    }

    /**
     * Where to draft from in the prediction: where the reply stands in it, else after the latest tail of the reply found
     * in it (the first occurrence after where they last agreed, else the last one before).
     */
    #predictionStart(): number | undefined {
        const prediction = this.#prediction;
        const history = this.#history;
        if (prediction.length === 0)
            return undefined;
        if (this.#cursor < 0) {
            const reply = history.length - this.#replyStart;
            for (let length = Math.min(longestMatch, reply); length >= shortestMatch && this.#cursor < 0; length--) {
                const tail = history.length - length;
                let before = -1;
                for (let position = 0; position + length <= prediction.length; position++) {
                    if (!sameRun(history, tail, prediction, position, length))
                        continue;
                    if (position + length >= this.#hint) {
                        this.#cursor = position + length;
                        break;
                    }
                    before = position + length;
                }
                if (this.#cursor < 0)
                    this.#cursor = before;
            }
        }
        if (this.#cursor < 0 || this.#cursor >= prediction.length)
            return undefined;
        return this.#cursor;
    }

    /** The positions of the history as it was given, by token, once, the first time a lookup needs them. */
    #indexGiven(): Map<Token, number[]> {
        const positions = new Map<Token, number[]>();
        for (let position = 0; position < this.#givenSize; position++) {
            const token = this.#history[position]!;
            if (token < 0)
                continue;
            const list = positions.get(token);
            if (list == null)
                positions.set(token, [position]);
            else
                list.push(position);
        }
        return positions;
    }

    /**
     * Where to draft from in the history: after the earlier occurrence of its tail that matches longest (the latest of
     * those), looked up among the latest occurrences of its last token.
     */
    #ngramStart(): number | undefined {
        const history = this.#history;
        const shortest = this.#auto ? shortestAutoMatch : shortestMatch;
        if (history.length <= shortest || history.at(-1)! < 0)
            return undefined;
        this.#positions ??= this.#indexGiven();
        const token = history.at(-1)!;
        const last = history.length - 1;
        let bestLength = 0;
        let start = 0;
        let examined = 0;
        // True when the search can end: a longest match, or enough candidates compared.
        const consider = (position: number): boolean => {
            examined++;
            let length = 1;
            while (length < longestMatch && length <= position && history[position - length]! >= 0
                    && history[position - length] === history[last - length])
                length++;
            if (length > bestLength) {
                bestLength = length;
                start = position + 1;
            }
            return length === longestMatch || examined >= mostCandidates;
        };
        let done = false;
        // The reply (appended since) first, latest first; then the history as given, from its index.
        for (let position = last - 1; !done && position >= this.#givenSize; position--)
            if (history[position] === token)
                done = consider(position);
        const given = this.#positions.get(token);
        for (let index = (given?.length ?? 0) - 1; !done && index >= 0; index--)
            if (given![index]! < last)
                done = consider(given![index]!);
        return bestLength >= shortest ? start : undefined;
    }
}
