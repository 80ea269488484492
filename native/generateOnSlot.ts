import {randomInt} from "node:crypto";
import type {LlamaGrammar, LlamaModel, Token} from "node-llama-cpp";
import {RequestAbortedError} from "./errors.js";
import type {SlotLease} from "./SlotScheduler.js";
import {penaltyWindow} from "./SlotDecoder.js";
import type {SlotDecoder} from "./SlotDecoder.js";
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

function toTopLogprob(text: string, logprob: number): TopLogprob {
    return {token: text, logprob: Number.isFinite(logprob) ? logprob : -9999, bytes: [...Buffer.from(text, "utf8")]};
}

/**
 * Generates one reply on a leased slot, as a stream of events ending in `done`.
 * Reuses the slot's cached prefix, evaluates the rest of the prompt, samples until a stop string,
 * an end-of-generation token, the token budget or a finished tool call, and checks the abort
 * signal after every token. It never releases the lease; its caller does.
 */
export async function* generateOnSlot(model: LlamaModel, loop: SlotDecoder, lease: SlotLease, job: PreparedGeneration): AsyncGenerator<GenerationEvent> {
    const sequence = lease.slot.sequence;
    const prompt = job.promptTokens;
    // At least one prompt token is evaluated again, to get the logits of the first new token.
    const reused = await loop.truncate(sequence, Math.min(lease.cachedPrefixTokens, prompt.length - 1));

    const started = performance.now();
    let firstTokenAt: number | undefined;
    const generated: Token[] = [];
    let finishReason: FinishReason = "stop";
    // Without a seed, each reply gets a random one; the loop then samples the same way for either decode loop.
    const sampling = {...job.sampling, seed: Math.max(0, Math.floor(job.sampling.seed ?? randomInt(2 ** 31)))};

    /** Runs one generation from `input`, handing each decoded piece to `onText`, which may end it. */
    async function* sample(input: Token[], grammar: LlamaGrammar | undefined,
        onText: (text: string, logprob: TokenLogprob | undefined) => {events: GenerationEvent[], end?: boolean}): AsyncGenerator<GenerationEvent> {
        if (generated.length >= job.maxNewTokens) {
            finishReason = "length";
            return;
        }
        const decoder = new TokenTextDecoder(model, [...prompt, ...generated]);
        // The loop samples ahead while the text of earlier tokens is streamed; it is stopped once the reply ends.
        const stream = loop.generate(sequence, input, {
            sampling,
            grammar,
            history: [...prompt.slice(-penaltyWindow), ...generated].slice(-penaltyWindow),
            maxTokens: job.maxNewTokens - generated.length,
            ignoreEos: job.ignoreEos === true,
            topLogprobs: job.logprobsTop
        });
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
                generated.push(token);
                const {events, end} = onText(decoder.push(token), logprob);
                yield* events;
                if (end)
                    return;
                if (generated.length >= job.maxNewTokens || job.deadline?.aborted === true) {
                    finishReason = "length";
                    return;
                }
            }
        } finally {
            // The slot is handed back only once the loop has let go of the sequence.
            stream.stop();
            await stream.finished;
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
        usage: {promptTokens: prompt.length, completionTokens: generated.length, cachedPromptTokens: reused, reasoningTokens: 0},
        timings: {
            queueMs: job.queueMs,
            promptMs: (firstTokenAt ?? finished) - started,
            generationMs: firstTokenAt != null ? finished - firstTokenAt : 0
        }
    };
}
