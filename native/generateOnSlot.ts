import {randomInt} from "node:crypto";
import {LlamaGrammarEvaluationState} from "node-llama-cpp";
import type {LlamaGrammar, LlamaModel, SequenceEvaluateOptions, Token} from "node-llama-cpp";
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

function evaluateOptions(model: LlamaModel, sampling: SamplingOptions, grammar: LlamaGrammar | undefined,
    recentTokens: () => Token[]): SequenceEvaluateOptions {
    const penalized = sampling.repeatPenalty != null || sampling.presencePenalty != null || sampling.frequencyPenalty != null;
    return {
        temperature: sampling.temperature ?? 0.8,
        topK: sampling.topK ?? 40,
        topP: sampling.topP ?? 0.95,
        minP: sampling.minP ?? 0.05,
        seed: sampling.seed ?? randomInt(2 ** 31),
        repeatPenalty: penalized
            ? {
                punishTokens: recentTokens,
                maxPunishTokens: recentTokensForPenalty,
                penalty: sampling.repeatPenalty ?? 1,
                presencePenalty: sampling.presencePenalty ?? 0,
                frequencyPenalty: sampling.frequencyPenalty ?? 0
            }
            : undefined,
        grammarEvaluationState: grammar != null ? new LlamaGrammarEvaluationState({model, grammar}) : undefined
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
export async function* generateOnSlot(model: LlamaModel, lease: SlotLease, job: PreparedGeneration): AsyncGenerator<GenerationEvent> {
    const sequence = lease.slot.sequence;
    const prompt = job.promptTokens;
    // At least one prompt token is evaluated again, to get the logits of the first new token.
    const reused = Math.min(lease.cachedPrefixTokens, prompt.length - 1);
    if (sequence.nextTokenIndex > reused)
        await sequence.eraseContextTokenRanges([{start: reused, end: sequence.nextTokenIndex}]);

    const started = performance.now();
    let firstTokenAt: number | undefined;
    const generated: Token[] = [];
    let finishReason: FinishReason = "stop";
    const recentTokens = () => [...prompt.slice(-recentTokensForPenalty), ...generated].slice(-recentTokensForPenalty);

    /** Runs one evaluation from `input`, handing each decoded piece to `onText`, which may end it. */
    async function* sample(input: Token[], grammar: LlamaGrammar | undefined,
        onText: (text: string, logprob: TokenLogprob | undefined) => {events: GenerationEvent[], end?: boolean}): AsyncGenerator<GenerationEvent> {
        const decoder = new TokenTextDecoder(model, [...prompt, ...generated]);
        const options = evaluateOptions(model, job.sampling, grammar, recentTokens);
        const wantLogprobs = job.logprobsTop != null;
        const tokens = wantLogprobs
            ? sequence.evaluateWithMetadata(input, {probabilities: true}, options)
            : sequence.evaluate(input, options);
        for await (const item of tokens) {
            if (job.signal?.aborted)
                throw new RequestAbortedError();
            firstTokenAt ??= performance.now();
            const token = typeof item === "number" ? item : item.token;
            let logprob: TokenLogprob | undefined;
            if (wantLogprobs && typeof item !== "number" && "probabilities" in item) {
                const top: TopLogprob[] = [];
                for (const [candidate, probability] of item.probabilities) {
                    if (top.length >= (job.logprobsTop ?? 0))
                        break;
                    top.push(toTopLogprob(decoder.tokenText(candidate), probability));
                }
                logprob = {...toTopLogprob(decoder.tokenText(token), item.probabilities.get(token) ?? 0), topLogprobs: top};
            }
            generated.push(token);
            const {events, end} = onText(decoder.push(token), logprob);
            yield* events;
            if (end)
                return;
            if (generated.length >= job.maxNewTokens || job.deadline?.aborted) {
                finishReason = "length";
                return;
            }
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
            await sequence.eraseContextTokenRanges([{start: prompt.length, end: sequence.nextTokenIndex}]);
            yield* toolCall(model.tokenize(`${content}${TOOL_CALL_OPEN}\n`, false, "trimLeadingSpace"), autoCall.grammar);
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
