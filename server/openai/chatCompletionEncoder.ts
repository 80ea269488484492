import type {FinishReason, TokenLogprob} from "../../native/types.js";
import {requestedStop} from "../generation/index.js";
import type {Encoder} from "../generation/index.js";
import {OPENAI_SSE} from "../sse.js";
import {SYSTEM_FINGERPRINT, toOpenAIUsage, toTimings} from "./translate.js";

type OpenAILogprob = {token: string, logprob: number, bytes: number[], top_logprobs: {token: string, logprob: number, bytes: number[]}[]};

export function toOpenAILogprobs(logprobs: readonly TokenLogprob[]): OpenAILogprob[] {
    return logprobs.map((entry) => ({
        token: entry.token,
        logprob: entry.logprob,
        bytes: entry.bytes,
        top_logprobs: entry.topLogprobs.map((top) => ({token: top.token, logprob: top.logprob, bytes: top.bytes}))
    }));
}

export type ChatCompletionMeta = {
    id: string, created: number, model: string, choices: number, logprobs: boolean, includeUsage: boolean,
    /** The request's stop strings: the one that ended a reply is its choice's `stop_reason`. */
    stops: readonly string[]
};

/**
 * `/v1/chat/completions` in OpenAI's shapes: a `chat.completion`, or `chat.completion.chunk`s whose deltas carry
 * the answer (`content`), the thinking (`reasoning_content`, as llama-server, LM Studio and DeepSeek send it) and
 * the tool calls (the first delta of a call has its index, id, type and name with empty arguments; later ones
 * only the index and a piece of the arguments). A choice that a stop string ended names it in `stop_reason`, as
 * vLLM does (null otherwise).
 */
export function chatCompletionEncoder(meta: ChatCompletionMeta): Encoder {
    const base = {id: meta.id, created: meta.created, model: meta.model, system_fingerprint: SYSTEM_FINGERPRINT};
    const chunk = (index: number, delta: object, extra: {logprobs?: object | null, finish_reason?: FinishReason | null, stop_reason?: string | null} = {}) => ({
        ...base,
        object: "chat.completion.chunk",
        choices: [{index, delta, logprobs: extra.logprobs ?? null, finish_reason: extra.finish_reason ?? null, ...extra.stop_reason !== undefined ? {stop_reason: extra.stop_reason} : {}}],
        ...meta.includeUsage ? {usage: null} : {}
    });
    return {
        stream: {
            format: OPENAI_SSE,
            start: () => Array.from({length: meta.choices}, (_, index) => chunk(index, {role: "assistant", content: ""})),
            event: (index, event) => {
                switch (event.type) {
                    case "text":
                        return [chunk(index, {content: event.text}, {logprobs: meta.logprobs ? {content: toOpenAILogprobs(event.logprobs ?? [])} : null})];
                    case "reasoning":
                        return [chunk(index, {reasoning_content: event.text})];
                    case "toolCall":
                        return [chunk(index, {tool_calls: [{index: event.index, id: event.id, type: "function", function: {name: event.name, arguments: ""}}]})];
                    case "toolCallArguments":
                        return [chunk(index, {tool_calls: [{index: event.index, function: {arguments: event.text}}]})];
                    case "done":
                        return [{...chunk(index, {}, {finish_reason: event.finishReason, stop_reason: requestedStop(event, meta.stops)}), ...index === 0 ? {timings: toTimings(event.usage, event.timings)} : {}}];
                }
            },
            end: (replies) => meta.includeUsage
                ? [{...base, object: "chat.completion.chunk", choices: [], usage: toOpenAIUsage(replies.map((reply) => reply.done.usage), true)}]
                : [],
            error: ({body}) => [body]
        },
        body: (replies) => {
            const first = replies[0]!;
            return {
                ...base,
                object: "chat.completion",
                choices: replies.map((reply, index) => ({
                    index,
                    message: {
                        role: "assistant",
                        content: reply.toolCalls.length > 0 && reply.text === "" ? null : reply.text,
                        ...reply.reasoning !== "" ? {reasoning_content: reply.reasoning} : {},
                        refusal: null,
                        ...reply.toolCalls.length > 0
                            ? {tool_calls: reply.toolCalls.map((call) => ({id: call.id, type: "function", function: {name: call.name, arguments: call.arguments}}))}
                            : {}
                    },
                    logprobs: meta.logprobs ? {content: toOpenAILogprobs(reply.logprobs), refusal: null} : null,
                    finish_reason: reply.done.finishReason,
                    stop_reason: requestedStop(reply.done, meta.stops)
                })),
                usage: toOpenAIUsage(replies.map((reply) => reply.done.usage), true),
                timings: toTimings(first.done.usage, first.done.timings)
            };
        }
    };
}
