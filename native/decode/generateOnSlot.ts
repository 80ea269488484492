import {randomInt} from "node:crypto";
import type {ChatModelResponse, LlamaGrammar, LlamaModel, LlamaText, Token} from "node-llama-cpp";
import type {CallStart, ChatTurn} from "../chat/ChatFormat.js";
import {MarkerScanner} from "../chat/MarkerScanner.js";
import {parseJsonOrText} from "../chat/nativeHistory.js";
import {ReplyText} from "../chat/ReplyText.js";
import {RequestAbortedError} from "../errors.js";
import type {SlotLease} from "./SlotScheduler.js";
import {penaltyWindow} from "./SlotDecoder.js";
import type {SlotDecoder} from "./SlotDecoder.js";
import {addDraftCounts} from "./speculation.js";
import type {DraftTally, SpeculationMode, SpeculationSettings} from "./speculation.js";
import {stopTriggerStrings} from "./stopTriggerStrings.js";
import {TokenTextDecoder} from "./TokenTextDecoder.js";
import type {ProjectedImage} from "../vision/ImageProjector.js";
import {prefixOutsideImages, promptTokenCount} from "../vision/placeImages.js";
import {reusePrefix} from "./reusePrefix.js";
import type {PrefixSources} from "./reusePrefix.js";
import type {PlacedImage} from "../vision/placeImages.js";
import {newToolCallId} from "../toolCalls.js";
import type {FinishReason, GenerationEvent, SamplingOptions, TokenLogprob, TopLogprob, Usage} from "../types.js";

/** Grammars that keep a tool call in the model's own syntax: one for the function's name, one per function for its arguments. */
export type ToolGrammars = {
    /** `forced`: the reply is a call (`tool_choice` required or named); `auto`: the model chooses. */
    mode: "forced" | "auto",
    /** Whether one reply may hold several calls. */
    parallel: boolean,
    names: LlamaGrammar,
    params: ReadonlyMap<string, LlamaGrammar>
};

/** Everything about one generation that was worked out before it got a slot. */
export type PreparedGeneration = {
    /** The prompt's tokens; an image's positions hold its placeholder (see `images`). */
    promptTokens: readonly Token[],
    /** The prompt's images, where they lie in `promptTokens`. */
    images?: readonly PlacedImage[],
    /** New tokens the request allows (`max_tokens`); undefined: as many as the slot's context takes. */
    maxNewTokens: number | undefined,
    /**
     * The slot's context, in tokens. Every token committed to the slot counts against it: the prompt, the sampled
     * tokens and those injected (a call's opening, its arguments' prefix and suffix, a re-rendered turn).
     */
    contextTokens: number,
    sampling: SamplingOptions,
    stops: readonly string[],
    ignoreEos?: boolean,
    /** Constrains the reply (`response_format`). */
    grammar?: LlamaGrammar,
    /** How the model marks up its reply (reasoning, calls); none for a raw prompt. */
    turn?: ChatTurn,
    tools?: ToolGrammars,
    /** Never sampled while a grammar holds (names, arguments, `response_format`): see markupTokens. */
    markupTokens?: Uint32Array,
    logprobsTop?: number,
    /** Drafting several tokens at a time (speculative decoding); none: one token per evaluation. */
    speculation?: SpeculationSettings & {mode: Exclude<SpeculationMode, "off">},
    /** The reply's expected tokens (OpenAI's `prediction`): drafted from when speculation is on, counted in `usage` always. */
    prediction?: readonly Token[],
    signal?: AbortSignal,
    deadline?: AbortSignal,
    queueMs: number,
    /** Where else the prompt's prefix may be cached (other slots, the RAM cache); without it, only the slot's own cache is reused. */
    prefixSources?: PrefixSources
};

/** Which tokens are special, per model: asked once per token, since asking crosses into native code twice. */
const specialTokens = new WeakMap<LlamaModel, Map<Token, boolean>>();

function isSpecialToken(model: LlamaModel, token: Token): boolean {
    let known = specialTokens.get(model);
    if (known == null) {
        known = new Map();
        specialTokens.set(model, known);
    }
    let special = known.get(token);
    if (special == null) {
        special = model.isSpecialToken(token);
        known.set(token, special);
    }
    return special;
}

function toTopLogprob(text: string, logprob: number): TopLogprob {
    return {token: text, logprob: Number.isFinite(logprob) ? logprob : -9999, bytes: [...Buffer.from(text, "utf8")]};
}

/** How a sampling phase ended: at a marker (the tokens up to `at` were kept), at an end token, or out of tokens. */
type PhaseEnd = {kind: "marker" | "end", text: string, scanner: MarkerScanner};
type Verdict = {events?: GenerationEvent[], cutAt?: number, end?: boolean};
/** What the text phase saw that ends it. */
type TextEnd = "end" | "call" | "rerender";

const maxRerenders = 16;

/**
 * Generates one reply on a leased slot, as a stream of events ending in `done`. Reuses the slot's cached prefix,
 * evaluates the rest of the prompt, then samples, reading the reply in the model's own syntax: its thinking goes
 * out as `reasoning`, its tool calls as `toolCall` events, generated under grammars that keep them in that syntax;
 * special tokens never reach the text. Ends at a stop string, an end token, the token budget or the end of the
 * calls, and checks the abort signal after every token. It never releases the lease; its caller does.
 *
 * `usage` is counted in as the generation goes, so that a caller whose generation fails part way can report what it did;
 * `drafts` the same way, with the tokens drafted from any source and those kept.
 */
export async function* generateOnSlot(model: LlamaModel, loop: SlotDecoder, lease: SlotLease, job: PreparedGeneration,
    usage: Usage = {promptTokens: 0, completionTokens: 0, cachedPromptTokens: 0, reasoningTokens: 0},
    drafts: DraftTally = {drafted: 0, accepted: 0}): AsyncGenerator<GenerationEvent> {
    const sequence = lease.slot.sequence;
    const prompt = job.promptTokens;
    /** Where the images lie in `committed`. */
    let committedImages: readonly PlacedImage[] = job.images ?? [];
    // As llama.cpp counts them: an image's tokens, which can be more than the positions it takes (M-RoPE).
    usage.promptTokens = promptTokenCount(prompt, committedImages);
    usage.cachedPromptTokens = await reusePrefix(loop, lease, prompt, committedImages, job.prefixSources);
    /** The tokens the slot's cache should hold: the prompt, then what was kept of the reply and what was injected. */
    let committed: Token[] = [...prompt];
    const penaltyHistory: Token[] = prompt.filter((token) => token >= 0).slice(-penaltyWindow);
    if (job.prediction != null) {
        usage.acceptedPredictionTokens = 0;
        usage.rejectedPredictionTokens = 0;
    }

    const started = performance.now();
    let firstTokenAt: number | undefined;
    let finishReason: FinishReason = "stop";
    /** The stop string that ended the reply, if one did (Anthropic's `stop_sequence` names it). */
    let stopSequence: string | undefined;
    let outOfTokens = false;
    /** The slot's context, not the request's token limit, ended the reply. */
    let contextFull = false;
    // Without a seed, each reply gets a random one; the loop then samples the same way for either decode loop.
    const sampling = {...job.sampling, seed: Math.max(0, Math.floor(job.sampling.seed ?? randomInt(2 ** 31)))};
    const syntax = job.turn?.syntax;
    const tools = job.tools;
    const call = tools != null ? syntax?.call : undefined;
    const reply = new ReplyText(job.logprobsTop != null);
    /** What the reply holds so far, for formats that render the template again mid-reply. */
    const response: ChatModelResponse["response"] = [];
    let segment: "thought" | "comment" | undefined = syntax?.thought?.openOnStart === true ? "thought" : undefined;
    let calls = 0;

    const deadlinePassed = () => job.deadline?.aborted === true;
    const maxNewTokens = job.maxNewTokens ?? Number.POSITIVE_INFINITY;

    /**
     * Whether the reply must end before its next token: the request's tokens ran out, its time did, or the slot's
     * context did (`room`: the tokens the context still takes). Sets why.
     */
    function runsOut(room: number): boolean {
        if (usage.completionTokens >= maxNewTokens || deadlinePassed())
            outOfTokens = true;
        else if (room < 1)
            outOfTokens = contextFull = true;
        return outOfTokens;
    }

    const tokenize = (text: LlamaText) => text.tokenize(model.tokenizer, "trimLeadingSpace");

    /** Drops what the cache holds past its agreement with `committed`; the rest of `committed` is the next input. */
    async function nextInput(): Promise<{tokens: Token[], images: {offset: number, image: ProjectedImage}[]}> {
        const cache = sequence.contextTokens;
        const limit = Math.min(cache.length, committed.length - 1);
        let common = 0;
        while (common < limit && cache[common] === committed[common])
            common++;
        const kept = await loop.truncate(sequence, prefixOutsideImages(common, committedImages));
        return {
            tokens: committed.slice(kept),
            images: committedImages.filter(({start}) => start >= kept).map(({start, image}) => ({offset: start - kept, image}))
        };
    }

    /**
     * Samples from the end of `committed` under `grammar`, giving `onToken` the scanner after every token, until
     * it cuts (the tokens before the cut are committed, the rest dropped from the cache), an end token, or the budget.
     */
    async function* phase(grammar: LlamaGrammar | undefined, onToken: (scanner: MarkerScanner, logprob: TokenLogprob | undefined) => Verdict): AsyncGenerator<GenerationEvent, PhaseEnd> {
        const scanner = new MarkerScanner();
        // What the context takes of this phase: the rest of `committed` goes in first, then each sampled token but
        // the last; so the phase may sample as many tokens as `committed` leaves room for, and no decode overflows.
        const room = job.contextTokens - committed.length;
        if (runsOut(room))
            return {kind: "end", text: "", scanner};
        const decoder = new TokenTextDecoder(model, committed);
        const input = await nextInput();
        const stream = loop.generate(sequence, input.tokens, {
            ...input.images.length > 0 ? {images: input.images} : {},
            sampling,
            grammar,
            ...grammar != null && job.markupTokens != null ? {bannedTokens: job.markupTokens} : {},
            history: penaltyHistory.slice(-penaltyWindow),
            maxTokens: Math.min(maxNewTokens - usage.completionTokens, room),
            ignoreEos: job.ignoreEos === true,
            topLogprobs: job.logprobsTop,
            ...job.speculation != null ? {draft: {
                mode: job.speculation.mode,
                max: job.speculation.draftMax,
                context: committed,
                replyStart: Math.min(prompt.length, committed.length),
                ...job.speculation.ngram === false ? {ngram: false} : {},
                ...job.prediction != null ? {prediction: job.prediction} : {},
                ...job.speculation.draftModel === true ? {model: true} : {}
            }} : {}
        });
        const sampled: {token: Token, end: number}[] = [];
        let cutAt: number | undefined;
        // A client that goes away stops the loop at once, not when its reader next takes a token: the loop runs ahead.
        const stopOnAbort = () => stream.stop();
        job.signal?.addEventListener("abort", stopOnAbort, {once: true});
        try {
            for await (const {token, logprob: tokenLogprob, top} of stream) {
                if (job.signal?.aborted)
                    throw new RequestAbortedError();
                firstTokenAt ??= performance.now();
                let logprob: TokenLogprob | undefined;
                if (tokenLogprob != null) {
                    const topLogprobs = (top ?? []).map(([candidate, value]) => toTopLogprob(decoder.tokenText(candidate), value));
                    logprob = {...toTopLogprob(decoder.tokenText(token), tokenLogprob), topLogprobs};
                }
                usage.completionTokens++;
                if (segment === "thought")
                    usage.reasoningTokens++;
                penaltyHistory.push(token);
                scanner.push(decoder.push(token), isSpecialToken(model, token));
                sampled.push({token, end: scanner.text.length});
                const verdict = onToken(scanner, logprob);
                if (verdict.events != null)
                    yield* verdict.events;
                if (verdict.cutAt != null) {
                    cutAt = verdict.cutAt;
                    break;
                }
                if (verdict.end === true)
                    break;
                if (runsOut(room - sampled.length))
                    break;
            }
        } finally {
            job.signal?.removeEventListener("abort", stopOnAbort);
            // The slot is handed back only once the loop has let go of the sequence.
            stream.stop();
            await stream.finished;
            const counts = stream.drafts;
            if (counts != null) {
                addDraftCounts(drafts, counts);
                if (usage.acceptedPredictionTokens != null && usage.rejectedPredictionTokens != null) {
                    usage.acceptedPredictionTokens += counts.predictionAccepted;
                    usage.rejectedPredictionTokens += counts.predictionDrafted - counts.predictionAccepted;
                }
            }
        }
        if (cutAt == null) {
            committed = [...committed, ...sampled.map((entry) => entry.token)];
            return {kind: "end", text: scanner.text, scanner};
        }
        // Keep the tokens before the cut; a token the cut falls inside is replaced by the text before the cut.
        let kept = 0;
        while (kept < sampled.length && sampled[kept]!.end <= cutAt)
            kept++;
        const keptEnd = kept > 0 ? sampled[kept - 1]!.end : 0;
        const rest = scanner.text.slice(keptEnd, cutAt);
        committed = [...committed, ...sampled.slice(0, kept).map((entry) => entry.token), ...(rest !== "" ? model.tokenize(rest, false, "trimLeadingSpace") : [])];
        return {kind: "marker", text: scanner.text.slice(0, cutAt), scanner};
    }

    /** Closes the open segment: its text joins the reply so far. */
    function closeSegment(): GenerationEvent[] {
        const {reasoning, content} = reply.endItem();
        if (segment != null)
            response.push({type: "segment", segmentType: segment, text: segment === "thought" ? reasoning : content, ended: true});
        segment = undefined;
        return [];
    }

    /** What starts a call now: the first one in free text (where the format allows it), or the next one after a call. */
    function callStarts(afterCall: boolean): readonly CallStart[] {
        if (call == null)
            return [];
        return afterCall ? call.next : call.detectInText ? call.starts : [];
    }

    /** The markers that matter now: stops, the open segment's end, what may open one, and a call's start. */
    function markers(afterCall: boolean): string[] {
        const list = [...job.stops, ...(syntax?.rerender ?? [])];
        if (syntax == null)
            return list;
        if (segment === "thought")
            list.push(syntax.thought!.suffix);
        else if (segment === "comment")
            list.push(syntax.comment!.suffix);
        else if (!afterCall) {
            if (syntax.thought != null && syntax.thought.prefix !== "")
                list.push(syntax.thought.prefix);
            if (syntax.comment != null)
                list.push(syntax.comment.prefix);
        }
        if (syntax.closeAllSegments != null && segment != null)
            list.push(syntax.closeAllSegments);
        if (call != null && segment !== "thought")
            list.push(...callStarts(afterCall).map((start) => start.text));
        return list;
    }

    /** What replaces the text that started the next call: the format's own opening of it. */
    let callStart: LlamaText | undefined;

    /** Free text: the answer and the thinking, until a stop, an end token, a call's start or a re-render. */
    async function* textPhase(afterCall: boolean): AsyncGenerator<GenerationEvent, TextEnd> {
        let result: TextEnd = "end";
        const emit = (text: string, logprob: TokenLogprob | undefined): GenerationEvent[] | "stop" => {
            if (afterCall)
                return text.trim() === "" ? [] : "stop";
            return segment === "thought" ? reply.reasoning(text) : reply.content(text, logprob);
        };
        const end = yield* phase(afterCall ? undefined : job.grammar, (scanner, logprob) => {
            const events: GenerationEvent[] = [];
            let pendingLogprob = logprob;
            for (;;) {
                const {text, found} = scanner.next(markers(afterCall));
                const emitted = emit(text, pendingLogprob);
                pendingLogprob = undefined;
                if (emitted === "stop")
                    return {events, end: true};
                events.push(...emitted);
                if (found == null)
                    return {events};
                const marker = found.marker;
                if (job.stops.includes(marker)) {
                    stopSequence = marker;
                    return {events, end: true};
                }
                if (syntax!.rerender.includes(marker)) {
                    if (segment == null)
                        return {events, end: true};
                    events.push(...closeSegment());
                    result = "rerender";
                    return {events, cutAt: found.end};
                }
                const start = segment !== "thought" ? callStarts(afterCall).find((entry) => entry.text === marker) : undefined;
                if (start != null) {
                    callStart = start.inject;
                    result = "call";
                    return {events, cutAt: found.start};
                }
                if (segment == null && (marker === syntax!.thought?.prefix || marker === syntax!.comment?.prefix)) {
                    reply.endItem();
                    segment = marker === syntax!.thought?.prefix ? "thought" : "comment";
                } else
                    events.push(...closeSegment());
            }
        });
        if (end.kind === "end" && !afterCall) {
            // Nothing more comes: what was held back as a possible marker is text after all.
            const rest = emit(end.scanner.next([], true).text, undefined);
            if (rest !== "stop")
                yield* rest;
        }
        return result;
    }

    /** The reply opens with one of the format's channel headers (gpt-oss); anything else takes the default one. */
    async function* openingPhase(): AsyncGenerator<GenerationEvent, "text" | "call" | "end"> {
        const opening = syntax!.opening!;
        let action = opening.otherwise;
        const end = yield* phase(undefined, (scanner) => {
            const text = scanner.text.trimStart();
            const skipped = scanner.text.length - text.length;
            const hit = opening.triggers.find((trigger) => text.startsWith(trigger.text));
            if (hit != null) {
                action = hit.action;
                return {cutAt: hit.action.type === "functionCall" && !hit.action.keepTrigger ? 0 : skipped + hit.text.length};
            }
            if (opening.triggers.some((trigger) => trigger.text.startsWith(text)))
                return {};
            return {cutAt: 0};
        });
        if (end.kind === "end")
            return "end";
        if (action == null)
            return "text";
        if (action.inject != null)
            committed = [...committed, ...tokenize(action.inject)];
        if (action.type === "segment")
            segment = action.segment;
        return action.type === "functionCall" ? "call" : "text";
    }

    /** One call: the format's prefix, the function's name under a grammar, its arguments under its schema's grammar. */
    async function* callPhase(): AsyncGenerator<GenerationEvent, boolean> {
        committed = [...committed, ...tokenize(callStart ?? call!.forced)];
        callStart = undefined;
        const nameEnd = yield* phase(tools!.names, (scanner) => {
            const newline = scanner.text.indexOf("\n");
            return newline >= 0 ? {cutAt: newline} : {};
        });
        const name = nameEnd.text.trim();
        if (nameEnd.kind !== "marker" || !tools!.params.has(name))
            return false;
        const index = calls++;
        const id = newToolCallId();
        yield {type: "toolCall", index, id, name};
        committed = [...committed, ...tokenize(call!.paramsPrefix(name))];
        const grammar = tools!.params.get(name)!;
        const stops = stopTriggerStrings(grammar.stopGenerationTriggers);
        let args = "";
        const paramsEnd = yield* phase(grammar, (scanner) => {
            const {text, found} = scanner.next(stops);
            args += text;
            const events: GenerationEvent[] = text !== "" ? [{type: "toolCallArguments", index, text}] : [];
            return found != null ? {events, cutAt: found.start} : {events};
        });
        response.push({type: "functionCall", name, params: parseJsonOrText(args), result: null, startsNewChunk: index === 0});
        if (paramsEnd.kind !== "marker")
            return false;
        committed = [...committed, ...tokenize(call!.suffix(name))];
        return true;
    }

    let rerenders = 0;
    let next: "opening" | "text" | "call" | "end" = syntax?.opening != null ? "opening" : "text";
    // A forced call starts at once: the format's call opening (gpt-oss's channel), then the call (callPhase).
    if (tools?.mode === "forced" && call != null) {
        const callOpening = syntax?.opening?.triggers.find((trigger) => trigger.action.type === "functionCall");
        if (callOpening?.action.inject != null)
            committed = [...committed, ...tokenize(callOpening.action.inject)];
        next = "call";
    }
    while (next !== "end") {
        if (next === "opening") {
            next = yield* openingPhase();
            continue;
        }
        if (next === "call") {
            const complete = yield* callPhase();
            if (!complete || !tools!.parallel || call!.next.length === 0) {
                next = "end";
                continue;
            }
            // Another call may follow, where the format allows several: only its start is read, any other text ends the reply.
            next = (yield* textPhase(true)) === "call" ? "call" : "end";
            continue;
        }
        const end = yield* textPhase(false);
        if (end === "rerender" && rerenders++ < maxRerenders) {
            const again = job.turn!.rerender(response);
            committed = again.tokens;
            committedImages = again.placed ?? [];
            next = syntax?.opening != null ? "opening" : "text";
        } else
            next = end === "call" ? "call" : "end";
    }
    yield* reply.finish();
    if (outOfTokens)
        finishReason = "length";
    else if (calls > 0)
        finishReason = "tool_calls";

    const finished = performance.now();
    yield {
        type: "done",
        finishReason,
        ...finishReason === "length" && contextFull ? {contextFull} : {},
        ...stopSequence != null && finishReason === "stop" ? {stopSequence} : {},
        usage: {...usage},
        timings: {
            queueMs: job.queueMs,
            promptMs: (firstTokenAt ?? finished) - started,
            generationMs: firstTokenAt != null ? finished - firstTokenAt : 0
        }
    };
}
