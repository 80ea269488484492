import assert from "node:assert/strict";
import type {ChatResponse, Ollama} from "ollama";
import type OpenAI from "openai";

/**
 * Replies of /v1/chat/completions and /api/chat read into one shape, streamed or not, so tests state what a
 * reply holds once. Every text the client would show (content, reasoning, arguments, each streamed piece and the
 * joined whole) is checked for a model's special tokens on the way in.
 */

/** A tool call as the client ends up with it: OpenAI's arguments string, Ollama's arguments object. */
export type ReplyToolCall = {id: string | undefined, type: string | undefined, name: string, arguments: string | Record<string, unknown>};

export type ChatReply = {
    /** `null` where the API sent null (an OpenAI reply that is only a call). */
    content: string | null,
    /** Undefined where the API sent none. */
    reasoning: string | undefined,
    toolCalls: ReplyToolCall[],
    finishReason: string | null | undefined,
    reasoningTokens: number | undefined,
    /** Streamed only: whether a reasoning piece came after the first content piece. */
    reasoningAfterContent: boolean
};

/** llama.cpp's and OpenAI's extension: the thinking beside the answer. */
type WithReasoning = {reasoning_content?: string | null};
type CompletionParams = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming & {chat_template_kwargs?: Record<string, unknown>};

/** The special tokens of Qwen3, Llama 3.1, gpt-oss (Harmony) and Gemma 4 that must never reach a client as text. */
export const SPECIAL_TOKENS = [
    "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>",
    "<|eot_id|>", "<|eom_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|python_tag|>",
    "<|channel|>", "<|message|>", "<|end|>", "<|start|>", "<|call|>", "<|return|>", "<|constrain|>",
    "<|channel>", "<channel|>", "<|turn>", "<turn|>", "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>", "<|\"|>"
];
/** Any `<|…|>`, `<|…>` or `<…|>` marker, for the ones the list does not name. */
const MARKER_PATTERN = /<\|[^<>\s]{0,40}\|?>|<[^<>|\s]{1,40}\|>/;

export function assertNoSpecialTokens(text: string | null | undefined, where: string): void {
    if (text == null)
        return;
    const token = SPECIAL_TOKENS.find((special) => text.includes(special)) ?? MARKER_PATTERN.exec(text)?.[0];
    assert.equal(token, undefined, `${where} leaks the special token ${JSON.stringify(token)}: ${JSON.stringify(text)}`);
}

export async function openaiReply(client: OpenAI, body: CompletionParams, label: string): Promise<ChatReply> {
    const completion = await client.chat.completions.create(body);
    assert.equal(completion.choices.length, 1, `${label}: one choice`);
    const choice = completion.choices[0]!;
    const message = choice.message as OpenAI.Chat.ChatCompletionMessage & WithReasoning;
    assertNoSpecialTokens(message.content, `${label}: message.content`);
    assertNoSpecialTokens(message.reasoning_content, `${label}: message.reasoning_content`);
    const toolCalls = (message.tool_calls ?? []).map((call): ReplyToolCall => {
        assert.equal(call.type, "function", `${label}: a tool call's type`);
        if (call.type !== "function")
            throw new Error("unreachable");
        assertNoSpecialTokens(call.function.arguments, `${label}: tool_calls[].function.arguments`);
        assertNoSpecialTokens(call.function.name, `${label}: tool_calls[].function.name`);
        return {id: call.id, type: call.type, name: call.function.name, arguments: call.function.arguments};
    });
    return {
        content: message.content,
        reasoning: message.reasoning_content ?? undefined,
        toolCalls,
        finishReason: choice.finish_reason,
        reasoningTokens: completion.usage?.completion_tokens_details?.reasoning_tokens,
        reasoningAfterContent: false
    };
}

/**
 * Streams the same request and folds the deltas. Checks that each call streams as OpenAI streams it: its first
 * delta has the index, id, type and name; later deltas only add argument pieces.
 */
export async function openaiStreamedReply(client: OpenAI, body: CompletionParams, label: string): Promise<ChatReply> {
    const stream = await client.chat.completions.create({...body, stream: true, stream_options: {include_usage: true}});
    let content: string | null = null;
    let reasoning: string | undefined;
    let reasoningAfterContent = false;
    let finishReason: string | null | undefined;
    let reasoningTokens: number | undefined;
    const calls: ReplyToolCall[] = [];
    for await (const chunk of stream) {
        if (chunk.usage != null)
            reasoningTokens = chunk.usage.completion_tokens_details?.reasoning_tokens;
        const choice = chunk.choices[0];
        if (choice == null)
            continue;
        finishReason = choice.finish_reason ?? finishReason;
        const delta = choice.delta as OpenAI.Chat.ChatCompletionChunk.Choice.Delta & WithReasoning;
        assertNoSpecialTokens(delta.content, `${label}: a delta.content piece`);
        assertNoSpecialTokens(delta.reasoning_content, `${label}: a delta.reasoning_content piece`);
        if (delta.reasoning_content != null && delta.reasoning_content !== "") {
            reasoning = (reasoning ?? "") + delta.reasoning_content;
            reasoningAfterContent ||= content != null && content !== "";
        }
        if (delta.content != null)
            content = (content ?? "") + delta.content;
        for (const piece of delta.tool_calls ?? []) {
            assertNoSpecialTokens(piece.function?.arguments, `${label}: a delta.tool_calls[].function.arguments piece`);
            const call = calls[piece.index];
            if (call == null) {
                assert.equal(piece.index, calls.length, `${label}: tool calls are streamed at index 0, 1, … in order`);
                assert.ok(typeof piece.id === "string" && piece.id !== "", `${label}: the first delta of tool call ${piece.index} has its id: ${JSON.stringify(piece)}`);
                assert.equal(piece.type, "function", `${label}: the first delta of tool call ${piece.index} has type "function"`);
                assert.ok(typeof piece.function?.name === "string" && piece.function.name !== "", `${label}: the first delta of tool call ${piece.index} has the function's name: ${JSON.stringify(piece)}`);
                calls.push({id: piece.id, type: piece.type, name: piece.function.name, arguments: piece.function.arguments ?? ""});
                continue;
            }
            // A client joins what it is sent: a repeated id or name would be doubled.
            assert.ok(piece.id == null || piece.id === "" || piece.id === call.id, `${label}: a later delta of tool call ${piece.index} changes its id: ${JSON.stringify(piece)}`);
            assert.ok(piece.function?.name == null || piece.function.name === "", `${label}: a later delta of tool call ${piece.index} repeats the name: ${JSON.stringify(piece)}`);
            call.arguments += piece.function?.arguments ?? "";
        }
    }
    assertNoSpecialTokens(content, `${label}: the streamed content`);
    assertNoSpecialTokens(reasoning, `${label}: the streamed reasoning_content`);
    for (const call of calls)
        assertNoSpecialTokens(call.arguments as string, `${label}: the streamed arguments`);
    return {content, reasoning, toolCalls: calls, finishReason, reasoningTokens, reasoningAfterContent};
}

type OllamaChatRequest = Parameters<Ollama["chat"]>[0];

function ollamaToolCalls(message: ChatResponse["message"], label: string): ReplyToolCall[] {
    return (message.tool_calls ?? []).map((call) => {
        assertNoSpecialTokens(call.function.name, `${label}: tool_calls[].function.name`);
        assertNoSpecialTokens(JSON.stringify(call.function.arguments), `${label}: tool_calls[].function.arguments`);
        const {id, type} = call as {id?: string, type?: string};
        return {id, type, name: call.function.name, arguments: call.function.arguments};
    });
}

export async function ollamaReply(client: Ollama, request: OllamaChatRequest, label: string): Promise<ChatReply> {
    const response = await client.chat({...request, stream: false});
    assert.equal(response.done, true, `${label}: done`);
    assert.equal(response.message.role, "assistant", `${label}: message.role`);
    assertNoSpecialTokens(response.message.content, `${label}: message.content`);
    assertNoSpecialTokens(response.message.thinking, `${label}: message.thinking`);
    return {
        content: response.message.content,
        reasoning: response.message.thinking,
        toolCalls: ollamaToolCalls(response.message, label),
        finishReason: response.done_reason,
        reasoningTokens: undefined,
        reasoningAfterContent: false
    };
}

export async function ollamaStreamedReply(client: Ollama, request: OllamaChatRequest, label: string): Promise<ChatReply> {
    let content = "";
    let reasoning: string | undefined;
    let reasoningAfterContent = false;
    let finishReason: string | undefined;
    const toolCalls: ReplyToolCall[] = [];
    for await (const part of await client.chat({...request, stream: true})) {
        assertNoSpecialTokens(part.message.content, `${label}: a streamed message.content piece`);
        assertNoSpecialTokens(part.message.thinking, `${label}: a streamed message.thinking piece`);
        if (part.message.thinking != null && part.message.thinking !== "") {
            reasoning = (reasoning ?? "") + part.message.thinking;
            reasoningAfterContent ||= content !== "";
        }
        content += part.message.content;
        toolCalls.push(...ollamaToolCalls(part.message, label));
        if (part.done)
            finishReason = part.done_reason;
    }
    assert.notEqual(finishReason, undefined, `${label}: the stream ends with a done line`);
    assertNoSpecialTokens(content, `${label}: the streamed content`);
    assertNoSpecialTokens(reasoning, `${label}: the streamed thinking`);
    return {content, reasoning, toolCalls, finishReason, reasoningTokens: undefined, reasoningAfterContent};
}
