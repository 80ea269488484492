import type {FinishReason, TokenLogprob} from "../../native/types.js";
import {requestedStop} from "../generation/index.js";
import type {Encoder} from "../generation/index.js";
import {OPENAI_SSE} from "../sse.js";
import {SYSTEM_FINGERPRINT, toOpenAIUsage} from "./translate.js";

/** The legacy completions log-probability shape: parallel arrays and one `{token: logprob}` map per token. */
type LegacyLogprobs = {tokens: string[], token_logprobs: number[], top_logprobs: Record<string, number>[], text_offset: number[]};

function legacyLogprobs(logprobs: readonly TokenLogprob[], textOffset: number): LegacyLogprobs {
    const result: LegacyLogprobs = {tokens: [], token_logprobs: [], top_logprobs: [], text_offset: []};
    let offset = textOffset;
    for (const entry of logprobs) {
        result.tokens.push(entry.token);
        result.token_logprobs.push(entry.logprob);
        result.top_logprobs.push(Object.fromEntries(entry.topLogprobs.map((top) => [top.token, top.logprob])));
        result.text_offset.push(offset);
        offset += entry.token.length;
    }
    return result;
}

export type CompletionMeta = {
    id: string, created: number, model: string,
    /** Completions per prompt: generation `i` is completion `i % n` of prompt `floor(i / n)`, as in OpenAI's API. */
    n: number,
    generations: number,
    logprobs: boolean,
    includeUsage: boolean,
    /** The request's stop strings: the one that ended a completion is its choice's `stop_reason` (vLLM's field). */
    stops: readonly string[],
    /** What each generation's text starts with: its prompt with `echo`, else nothing. */
    echo(index: number): string
};

/** `/v1/completions` in OpenAI's shapes: a `text_completion`, or its chunks. */
export function completionEncoder(meta: CompletionMeta): Encoder {
    const base = {id: meta.id, object: "text_completion", created: meta.created, model: meta.model, system_fingerprint: SYSTEM_FINGERPRINT};
    const chunk = (index: number, text: string, finishReason: FinishReason | null, logprobs: LegacyLogprobs | null, stopReason?: string | null) => ({
        ...base,
        choices: [{index, text, logprobs, finish_reason: finishReason, ...stopReason !== undefined ? {stop_reason: stopReason} : {}}],
        ...meta.includeUsage ? {usage: null} : {}
    });
    const indexes = Array.from({length: meta.generations}, (_, index) => index);
    return {
        stream: {
            format: OPENAI_SSE,
            start: () => indexes.filter((index) => meta.echo(index) !== "").map((index) => chunk(index, meta.echo(index), null, null)),
            event: (index, event, reply) => {
                if (event.type === "text") {
                    // The reply's text already holds this piece; its tokens start where the text before it ended.
                    const offset = meta.echo(index).length + reply.text.length - event.text.length;
                    return [chunk(index, event.text, null, meta.logprobs ? legacyLogprobs(event.logprobs ?? [], offset) : null)];
                }
                return event.type === "done" ? [chunk(index, "", event.finishReason, null, requestedStop(event, meta.stops))] : [];
            },
            end: (replies) => meta.includeUsage ? [{...base, choices: [], usage: toOpenAIUsage(replies.map((reply) => reply.done.usage), false)}] : [],
            error: ({body}) => [body]
        },
        body: (replies) => {
            // Prompts are counted once each, however many completions they have.
            const usage = toOpenAIUsage(replies.filter((_, index) => index % meta.n === 0).map((reply) => reply.done.usage), false);
            const all = toOpenAIUsage(replies.map((reply) => reply.done.usage), false);
            return {
                ...base,
                choices: replies.map((reply, index) => ({
                    index,
                    text: meta.echo(index) + reply.text,
                    logprobs: meta.logprobs ? legacyLogprobs(reply.logprobs, meta.echo(index).length) : null,
                    finish_reason: reply.done.finishReason,
                    stop_reason: requestedStop(reply.done, meta.stops)
                })),
                usage: {
                    ...usage,
                    completion_tokens: all.completion_tokens,
                    total_tokens: usage.prompt_tokens + all.completion_tokens,
                    completion_tokens_details: all.completion_tokens_details
                }
            };
        }
    };
}
