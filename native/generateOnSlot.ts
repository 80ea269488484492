import {randomInt} from "node:crypto";
import {LlamaGrammarEvaluationState} from "node-llama-cpp";
import type {LlamaGrammar, LlamaModel, Token} from "node-llama-cpp";
import {createNativeSampler, nativeGrammarState} from "./addonAccess.js";
import type {NativeSamplerConfig} from "./addonAccess.js";
import type {DecodeLoop, Sampled} from "./DecodeLoop.js";
import {RequestAbortedError} from "./errors.js";
import type {SlotLease} from "./SlotScheduler.js";
import {StopDetector} from "./StopDetector.js";
import {stopTriggerStrings} from "./stopTriggerStrings.js";
import {TokenTextDecoder} from "./TokenTextDecoder.js";
import {TOOL_CALL_OPEN, ToolCallStreamParser, newToolCallId} from "./toolCalls.js";
import type {FinishReason, GenerationEvent, SamplingOptions, TokenLogprob, TopLogprob} from "./types.js";

/** Everything about one generation that was worked out before it got a slot. */
export type PreparedGeneration = {
    promptTokens: readonly Token[],
    /** New tokens allowed: `max_tokens` bounded by what is left of the slot's context. */
    maxNewTokens: number,
    sampling: SamplingOptions,
    stops: readonly string[],
    ignoreEos?: boolean,
    /** Constrains the reply (`response_format`). */
    grammar?: LlamaGrammar,
    /** `forced`: the reply is one tool call; `auto`: a call starts when the model writes `<tool_call>`. */
    toolCall?: {mode: "forced" | "auto", grammar: LlamaGrammar},
    logprobsTop?: number,
    signal?: AbortSignal,
    deadline?: AbortSignal,
    queueMs: number
};

const recentTokensForPenalty = 64;

/** The sampler's settings for the next token; with penalties, they change as tokens are generated. */
function samplerConfig(model: LlamaModel, sampling: SamplingOptions, grammar: LlamaGrammar | undefined,
    recentTokens: () => Token[]): () => NativeSamplerConfig {
    const penalized = sampling.repeatPenalty != null || sampling.presencePenalty != null || sampling.frequencyPenalty != null;
    const fixed: NativeSamplerConfig = {
        temperature: sampling.temperature ?? 0.8,
        topK: sampling.topK ?? 40,
        topP: sampling.topP ?? 0.95,
        minP: sampling.minP ?? 0.05,
        seed: Math.max(0, Math.floor(sampling.seed ?? randomInt(2 ** 31))),
        ...(grammar != null ? {grammarEvaluationState: nativeGrammarState(new LlamaGrammarEvaluationState({model, grammar}))} : {})
    };
    if (!penalized)
        return () => fixed;
    return () => {
        const tokens = recentTokens();
        return {
            ...fixed,
            repeatPenalty: sampling.repeatPenalty ?? 1,
            repeatPenaltyMaxTokens: Math.max(recentTokensForPenalty, tokens.length),
            repeatPenaltyTokens: Uint32Array.from(tokens),
            repeatPenaltyPresencePenalty: sampling.presencePenalty ?? 0,
            repeatPenaltyFrequencyPenalty: sampling.frequencyPenalty ?? 0
        };
    };
}

function toTopLogprob(text: string, probability: number): TopLogprob {
    return {token: text, logprob: probability > 0 ? Math.log(probability) : -9999, bytes: [...Buffer.from(text, "utf8")]};
}

/**
 * Generates one reply on a leased slot, as a stream of events ending in `done`.
 * Reuses the slot's cached prefix, evaluates the rest of the prompt, samples until a stop string,
 * an end-of-generation token, the token budget or a finished tool call, and checks the abort
 * signal after every token. It never releases the lease; its caller does.
 */
export async function* generateOnSlot(model: LlamaModel, loop: DecodeLoop, lease: SlotLease, job: PreparedGeneration): AsyncGenerator<GenerationEvent> {
    const leave = loop.join();
    try {
        yield* generate(model, loop, lease, job);
    } finally {
        leave();
    }
}

async function* generate(model: LlamaModel, loop: DecodeLoop, lease: SlotLease, job: PreparedGeneration): AsyncGenerator<GenerationEvent> {
    const sequence = lease.slot.sequence;
    const prompt = job.promptTokens;
    // At least one prompt token is evaluated again, to get the logits of the first new token.
    const reused = await loop.truncate(sequence, Math.min(lease.cachedPrefixTokens, prompt.length - 1));

    const started = performance.now();
    let firstTokenAt: number | undefined;
    const generated: Token[] = [];
    let finishReason: FinishReason = "stop";
    const recentTokens = () => [...prompt.slice(-recentTokensForPenalty), ...generated].slice(-recentTokensForPenalty);

    /** Runs one evaluation from `input`, handing each decoded piece to `onText`, which may end it. */
    async function* sample(input: Token[], grammar: LlamaGrammar | undefined,
        onText: (text: string, logprob: TokenLogprob | undefined) => {events: GenerationEvent[], end?: boolean}): AsyncGenerator<GenerationEvent> {
        const decoder = new TokenTextDecoder(model, [...prompt, ...generated]);
        const config = samplerConfig(model, job.sampling, grammar, recentTokens);
        const sampler = createNativeSampler(model);
        const wantLogprobs = job.logprobsTop != null;
        // The next token is asked for as soon as this one is known to continue the reply, before its
        // text goes anywhere, so the next decode runs while the text is streamed.
        const evaluate = (tokens: readonly Token[]) => {
            sampler.applyConfig(config());
            const sampled = loop.evaluate(sequence, tokens, sampler, wantLogprobs);
            // Its failure is read where it is awaited; until then it must not count as unhandled.
            sampled.catch(() => undefined);
            return sampled;
        };
        let pending: Promise<Sampled> | undefined = evaluate(input);
        try {
            for (;;) {
                const {token, probabilities}: Sampled = await pending!;
                pending = undefined;
                if (job.signal?.aborted)
                    throw new RequestAbortedError();
                firstTokenAt ??= performance.now();
                if (token == null || (job.ignoreEos !== true && model.isEogToken(token)))
                    return;
                let logprob: TokenLogprob | undefined;
                if (probabilities != null) {
                    const top: TopLogprob[] = [];
                    for (const [candidate, probability] of probabilities) {
                        if (top.length >= (job.logprobsTop ?? 0))
                            break;
                        top.push(toTopLogprob(decoder.tokenText(candidate), probability));
                    }
                    logprob = {...toTopLogprob(decoder.tokenText(token), probabilities.get(token) ?? 0), topLogprobs: top};
                }
                generated.push(token);
                const {events, end} = onText(decoder.push(token), logprob);
                const full = generated.length >= job.maxNewTokens || job.deadline?.aborted === true;
                if (!end && !full)
                    pending = evaluate([token]);
                yield* events;
                if (end)
                    return;
                if (full) {
                    finishReason = "length";
                    return;
                }
            }
        } finally {
            // A token asked for ahead is still being sampled with this sampler: let it finish first.
            await pending?.catch(() => undefined);
            sampler.dispose();
        }
    }

    async function* toolCall(input: Token[], grammar: LlamaGrammar): AsyncGenerator<GenerationEvent> {
        const parser = new ToolCallStreamParser();
        const id = newToolCallId();
        // The grammar ends a call with its own stop text (blank lines); the call is complete there.
        const end = new StopDetector(stopTriggerStrings(grammar.stopGenerationTriggers));
        yield* sample(input, grammar, (piece) => {
            const {text, stop} = end.push(piece);
            const update = parser.push(text);
            const events: GenerationEvent[] = [];
            if (update.name != null)
                events.push({type: "toolCall", index: 0, id, name: update.name});
            if (update.arguments)
                events.push({type: "toolCallArguments", index: 0, text: update.arguments});
            return {events, end: stop != null};
        });
        if (parser.name != null && finishReason !== "length")
            finishReason = "tool_calls";
    }

    const openCallTokens = () => model.tokenize(`${TOOL_CALL_OPEN}\n`, false, "trimLeadingSpace");
    const input = prompt.slice(reused);
    if (job.toolCall?.mode === "forced") {
        yield* toolCall([...input, ...openCallTokens()], job.toolCall.grammar);
    } else {
        const autoCall = job.toolCall?.mode === "auto" ? job.toolCall : undefined;
        const stops = new StopDetector(autoCall != null ? [...job.stops, TOOL_CALL_OPEN] : job.stops);
        let content = "";
        let pendingLogprobs: TokenLogprob[] = [];
        let stoppedBy: string | undefined;
        const textEvents = (text: string): GenerationEvent[] => {
            if (text.length === 0)
                return [];
            content += text;
            const logprobs = pendingLogprobs;
            pendingLogprobs = [];
            return [{type: "text", text, ...(job.logprobsTop != null ? {logprobs} : {})}];
        };
        yield* sample(input, job.grammar, (text, logprob) => {
            if (logprob != null)
                pendingLogprobs.push(logprob);
            const result = stops.push(text);
            stoppedBy = result.stop;
            return {events: textEvents(result.text), end: stoppedBy != null};
        });
        if (stoppedBy == null)
            yield* textEvents(stops.flush());
        if (stoppedBy === TOOL_CALL_OPEN && autoCall != null && (finishReason as FinishReason) !== "length") {
            // Replace what was sampled with the content and the opening tag, then generate the call under its grammar.
            const kept = await loop.truncate(sequence, prompt.length);
            yield* toolCall([...prompt.slice(kept), ...model.tokenize(`${content}${TOOL_CALL_OPEN}\n`, false, "trimLeadingSpace")], autoCall.grammar);
        }
    }

    const finished = performance.now();
    yield {
        type: "done",
        finishReason,
        usage: {promptTokens: prompt.length, completionTokens: generated.length, cachedPromptTokens: reused},
        timings: {
            queueMs: job.queueMs,
            promptMs: (firstTokenAt ?? finished) - started,
            generationMs: firstTokenAt != null ? finished - firstTokenAt : 0
        }
    };
}
