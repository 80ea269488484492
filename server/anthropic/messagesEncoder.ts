import type {Encoder, FinishedReply} from "../generation/index.js";
import {NAMED_SSE} from "../sse.js";
import {anthropicErrorShape} from "./anthropicConventions.js";
import type {AppliedEdit} from "./contextEdits.js";
import {stopReason, toAnthropicUsage, toolInput, toolUseId} from "./translate.js";

export type MessagesMeta = {
    id: string,
    model: string,
    /** The rendered prompt's length, for `message_start` (what the slot had cached is known only at the end). */
    promptTokens: number,
    stopSequences: readonly string[],
    /** Whether thinking blocks are sent (not when the request turned thinking off). */
    thinking: boolean,
    /** The context edits that changed the prompt, where the request asked for `context_management`. */
    contextManagement?: {applied_edits: readonly AppliedEdit[]}
};

type ContentBlock =
    | {type: "thinking", thinking: string, signature: string}
    | {type: "text", text: string}
    | {type: "tool_use", id: string, name: string, input: Record<string, unknown>};

/** The open block of a stream: what the next event continues, or closes and starts another block. */
type OpenBlock = {index: number, kind: "thinking" | "text"} | {index: number, kind: "tool_use", call: number};

/**
 * `/v1/messages` in Anthropic's shapes: one `message`, or its stream of named events: `message_start` (the message
 * with no content yet), `ping`, then each content block as `content_block_start`, its `content_block_delta`s
 * (`thinking_delta`, `text_delta`, `input_json_delta`) and `content_block_stop`, and at the end `message_delta`
 * (why it stopped, the final usage) and `message_stop`. A block closes when an event of another kind comes.
 */
export function messagesEncoder(meta: MessagesMeta): Encoder {
    const message = (content: readonly ContentBlock[]) => ({id: meta.id, type: "message", role: "assistant", model: meta.model, content});
    const ending = (reply: FinishedReply) => ({...stopReason(reply.done, meta.stopSequences), usage: toAnthropicUsage(reply.done.usage)});
    const contextManagement = meta.contextManagement != null ? {context_management: meta.contextManagement} : {};
    let open: OpenBlock | undefined;
    let blocks = 0;
    const close = (): unknown[] => {
        if (open == null)
            return [];
        const stop = {type: "content_block_stop", index: open.index};
        open = undefined;
        return [stop];
    };
    const start = (block: ContentBlock, call?: number): unknown[] => {
        const chunks = close();
        const index = blocks++;
        open = block.type === "tool_use" ? {index, kind: "tool_use", call: call ?? 0} : {index, kind: block.type};
        chunks.push({type: "content_block_start", index: open.index, content_block: block});
        return chunks;
    };
    const delta = (delta: object) => ({type: "content_block_delta", index: open!.index, delta});
    return {
        stream: {
            format: NAMED_SSE,
            start: () => [
                {
                    type: "message_start",
                    message: {
                        ...message([]), stop_reason: null, stop_sequence: null,
                        usage: {input_tokens: meta.promptTokens, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0}
                    }
                },
                {type: "ping"}
            ],
            event: (_index, event) => {
                switch (event.type) {
                    case "reasoning": {
                        if (!meta.thinking || event.text === "")
                            return [];
                        const chunks = open?.kind === "thinking" ? [] : start({type: "thinking", thinking: "", signature: ""});
                        return [...chunks, delta({type: "thinking_delta", thinking: event.text})];
                    }
                    case "text": {
                        if (event.text === "")
                            return [];
                        const chunks = open?.kind === "text" ? [] : start({type: "text", text: ""});
                        return [...chunks, delta({type: "text_delta", text: event.text})];
                    }
                    case "toolCall":
                        return start({type: "tool_use", id: toolUseId(event.id), name: event.name, input: {}}, event.index);
                    case "toolCallArguments":
                        // The engine sends a call's arguments right after it; a piece for another call has no open block.
                        return open?.kind === "tool_use" && open.call === event.index && event.text !== ""
                            ? [delta({type: "input_json_delta", partial_json: event.text})]
                            : [];
                    case "done":
                        return close();
                }
            },
            end: ([reply]) => {
                const {stop_reason, stop_sequence, usage} = ending(reply!);
                return [{type: "message_delta", delta: {stop_reason, stop_sequence}, usage, ...contextManagement}, {type: "message_stop"}];
            },
            error: ({statusCode, body, cause}) => [anthropicErrorShape(body, statusCode, cause)]
        },
        body: ([reply]) => {
            const content: ContentBlock[] = [];
            if (meta.thinking && reply!.reasoning !== "")
                content.push({type: "thinking", thinking: reply!.reasoning, signature: ""});
            if (reply!.text !== "")
                content.push({type: "text", text: reply!.text});
            for (const call of reply!.toolCalls)
                content.push({type: "tool_use", id: toolUseId(call.id), name: call.name, input: toolInput(call)});
            return {...message(content), ...ending(reply!), ...contextManagement};
        }
    };
}
