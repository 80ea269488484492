import type {DoneEvent, Encoder} from "../generation/index.js";
import {NDJSON} from "../sse.js";
import type {ConversationStore} from "./ConversationStore.js";
import type {Message, ReplyStats} from "./conversationTypes.js";

/**
 * The conversation reply's NDJSON lines: `{"type":"message"}` with the new message, then per event `text`,
 * `reasoning`, `tool_call` and `tool_call_arguments` lines, then `done` with the message as stored, or `error`.
 * Each piece is written to the store before its line is sent, so a client was never shown what a crash loses;
 * a client that goes away leaves the reply `stopped`.
 */
export function replyEncoder(conversations: ConversationStore, message: Message): Encoder {
    const id = message.id;
    return {
        stream: {
            format: NDJSON,
            start: () => [{type: "message", message}],
            event: (_index, event) => {
                switch (event.type) {
                    case "text":
                        conversations.appendToReply(id, event.text);
                        return [{type: "text", text: event.text}];
                    case "reasoning":
                        conversations.appendReasoningToReply(id, event.text);
                        return [{type: "reasoning", text: event.text}];
                    case "toolCall":
                        conversations.addToolCallToReply(id, {id: event.id, name: event.name});
                        return [{type: "tool_call", index: event.index, id: event.id, name: event.name}];
                    case "toolCallArguments":
                        conversations.appendToolCallArguments(id, event.index, event.text);
                        return [{type: "tool_call_arguments", index: event.index, text: event.text}];
                    case "done":
                        return [];
                }
            },
            end: ([reply]) => [{type: "done", message: conversations.finishReply(id, "complete", {stats: replyStats(reply!.done)})}],
            error: ({body}) => [{type: "error", error: body.error.message, message: conversations.finishReply(id, "error", {error: body.error.message})}],
            abandoned: () => {
                conversations.finishReply(id, "stopped");
            }
        }
    };
}

function replyStats({usage, timings}: DoneEvent): ReplyStats {
    return {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        tokens_per_second: timings.generationMs > 0 ? Math.round(usage.completionTokens / (timings.generationMs / 1000) * 10) / 10 : 0,
        time_to_first_token_ms: Math.round(timings.promptMs),
        reasoning_tokens: usage.reasoningTokens,
        reasoning_ms: usage.completionTokens > 0 ? Math.round(timings.generationMs * usage.reasoningTokens / usage.completionTokens) : 0
    };
}
