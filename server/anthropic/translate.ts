import {randomBytes} from "node:crypto";
import {InvalidRequestError} from "../../native/errors.js";
import type {ChatMessage, PromptImage, ReasoningOptions, ToolCall, ToolChoice, Usage} from "../../native/types.js";
import {reasoningForEffort, requestedStop, toGenerationOptions} from "../generation/index.js";
import type {DoneEvent, FieldNames, RequestOptions, RequestedGeneration} from "../generation/index.js";
import {joinImageParts, stripPlaceholders} from "../images/index.js";
import type {MessagePart} from "../images/index.js";
import type {ContentBlock, CountTokensRequest, MessageParam, MessagesRequest, SystemParam, ThinkingParam} from "./anthropicSchemas.js";
import type {MessageImages} from "./messageImages.js";
import {TOOL_CHANGES, promptTools} from "./promptTools.js";

/** Anthropic request fields -> the engine's chat and options, and engine results -> Anthropic fields. */

const FIELD_NAMES: FieldNames = {responseFormat: "output_config.format", tools: "tools", toolChoice: "tool_choice"};

export function messageId(): string {
    return `msg_${randomBytes(12).toString("base64url")}`;
}

/** The engine names calls `call_…`; Anthropic's clients expect `toolu_…`. The id comes back as is in the next turn. */
export function toolUseId(id: string): string {
    return id.startsWith("toolu_") ? id : `toolu_${id.replace(/^call_/, "")}`;
}

function unsupported(block: {type: string}, param: string): never {
    if (block.type === "image")
        throw new InvalidRequestError(`${param} is an image; images are read in user turns and tool results only`, `${param}.type`, "unsupported_content");
    throw new InvalidRequestError(`${param} is a "${block.type}" block; this server reads text, image, tool_use, tool_result and thinking blocks`, `${param}.type`, "unsupported_content");
}

function textOf(blocks: readonly {type: string, text?: string}[], param: string): string {
    return blocks.map((block, index) => block.type === "text" ? block.text ?? "" : unsupported(block, `${param}[${index}]`)).join("\n\n");
}

/** A block of a user turn or a tool result: its text, or its image (read before, by {@link readMessageImages}). */
function partOf(block: {type: string, text?: string}, param: string, images: MessageImages): MessagePart {
    if (block.type === "text")
        return {text: block.text ?? ""};
    const image = block.type === "image" ? images.get(block) : undefined;
    return image != null ? {image} : unsupported(block, param);
}

function systemText(system: SystemParam | undefined): string | undefined {
    if (system == null)
        return undefined;
    return typeof system === "string" ? system : textOf(system, "system");
}

/**
 * A tool's result as the model reads it, with its images; an error is marked, since the chat formats have no flag
 * for it. A `tool_reference` (a tool search's answer) loads a deferred tool into the prompt's tools and reads as its name.
 */
function toolResult(block: ContentBlock, param: string, images: MessageImages): {content: string, images?: PromptImage[]} {
    const content = block.content ?? "";
    const result = typeof content === "string"
        ? {content: stripPlaceholders(content)}
        : joinImageParts(content.map((part, index) => partOf(part.type === "tool_reference" ? {type: "text", text: `Tool loaded: ${part.tool_name ?? ""}`} : part,
            `${param}.content[${index}]`, images)), "\n\n");
    return block.is_error === true ? {...result, content: `Error: ${result.content}`} : result;
}

/**
 * A system turn's text. An empty one (Claude Code sends some that carry only a turn's `output_config`) has nothing to
 * render, nor has one whose `clear_at` is `next_user_message` once a user turn follows it.
 */
function systemTurnText(messages: readonly MessageParam[], messageIndex: number): string {
    const message = messages[messageIndex]!;
    if (message.clear_at === "next_user_message" && messages.slice(messageIndex + 1).some((later) => later.role === "user"))
        return "";
    const content = message.content ?? "";
    return typeof content === "string" ? content : textOf(content.filter((block) => !TOOL_CHANGES.has(block.type)), `messages[${messageIndex}].content`);
}

/**
 * Anthropic's turns as the engine's chat: a user turn's `tool_result` blocks become tool messages (named after
 * the call they answer) and its text a user message, in the order they come; an assistant turn's thinking,
 * text and `tool_use` blocks become one assistant message with its past reasoning and calls; a system turn stays
 * one where it is (the model's format renders it there, or merges it into the user's turn: `ChatFormat`).
 */
export function toChatMessages(system: SystemParam | undefined, messages: readonly MessageParam[], images: MessageImages = new Map()): ChatMessage[] {
    const chat: ChatMessage[] = [];
    const text = systemText(system);
    if (text != null && text !== "")
        chat.push({role: "system", content: text});
    const callNames = new Map<string, string>();
    messages.forEach((message, messageIndex) => {
        if (message.role === "system") {
            const text = systemTurnText(messages, messageIndex);
            if (text !== "")
                chat.push({role: "system", content: text});
            return;
        }
        if (message.content == null)
            throw new InvalidRequestError(`messages[${messageIndex}] has no content; only a system turn may leave it out`, `messages[${messageIndex}].content`);
        const blocks: readonly ContentBlock[] = typeof message.content === "string" ? [{type: "text", text: message.content}] : message.content;
        const param = (index: number) => `messages[${messageIndex}].content[${index}]`;
        if (message.role === "assistant") {
            let content = "";
            let reasoning = "";
            const toolCalls: ToolCall[] = [];
            blocks.forEach((block, index) => {
                switch (block.type) {
                    case "text":
                        content += block.text ?? "";
                        break;
                    case "thinking":
                        reasoning += block.thinking ?? "";
                        break;
                    case "redacted_thinking":
                        break;
                    case "tool_use": {
                        if (block.id == null || block.name == null)
                            throw new InvalidRequestError(`${param(index)} is a tool_use block without its id or name`, param(index));
                        callNames.set(block.id, block.name);
                        toolCalls.push({id: block.id, name: block.name, arguments: JSON.stringify(block.input ?? {})});
                        break;
                    }
                    default:
                        unsupported(block, param(index));
                }
            });
            chat.push({role: "assistant", content, ...reasoning !== "" ? {reasoning} : {}, ...toolCalls.length > 0 ? {toolCalls} : {}});
            return;
        }
        let pending: MessagePart[] = [];
        const flush = () => {
            if (pending.length > 0)
                chat.push({role: "user", ...joinImageParts(pending, "\n\n")});
            pending = [];
        };
        blocks.forEach((block, index) => {
            if (block.type === "tool_result") {
                flush();
                const id = block.tool_use_id;
                chat.push({role: "tool", ...toolResult(block, param(index), images), toolCallId: id, name: id != null ? callNames.get(id) : undefined});
            } else
                pending.push(partOf(block, param(index), images));
        });
        flush();
    });
    return chat;
}

function toolChoice(choice: MessagesRequest["tool_choice"]): ToolChoice | undefined {
    switch (choice?.type) {
        case undefined:
            return undefined;
        case "auto":
        case "none":
            return choice.type;
        case "any":
            return "required";
        case "tool":
            if (choice.name == null)
                throw new InvalidRequestError("tool_choice of type \"tool\" needs the tool's name", "tool_choice.name");
            return {name: choice.name};
    }
}

/**
 * `thinking` in the engine's terms: `enabled` (and `adaptive`, `between_tools`) thinks, `disabled` does not, absent is the model's
 * default. `budget_tokens` picks an effort for models that have levels (gpt-oss): under 4,096 low, under 16,384
 * medium, else high; nothing stops the thinking at the budget itself (`max_tokens` still bounds the whole reply).
 */
export function reasoningForThinking(thinking: ThinkingParam | null | undefined): ReasoningOptions | undefined {
    if (thinking == null)
        return undefined;
    if (thinking.type === "disabled")
        return {enabled: false};
    const budget = thinking.budget_tokens;
    if (budget == null)
        return {enabled: true};
    return {enabled: true, effort: budget < 4096 ? "low" : budget < 16384 ? "medium" : "high"};
}

/** Thinking blocks are returned unless the request turned thinking off (gpt-oss thinks a little even then) or asked for them to be omitted. */
export function showsThinking(body: {thinking?: ThinkingParam | null}): boolean {
    return body.thinking?.type !== "disabled" && body.thinking?.display !== "omitted";
}

function toolOptions(body: CountTokensRequest): RequestedGeneration["tools"] {
    return {
        definitions: promptTools(body.tools ?? [], body.messages).map(({tool, param}) => {
            if (tool.type != null && tool.type !== "custom")
                throw new InvalidRequestError(`${param} is Anthropic's server tool "${tool.type}", which this server does not run; offer it as a client tool with an input_schema`, `${param}.type`);
            return {name: tool.name, description: tool.description ?? undefined, parameters: tool.input_schema ?? undefined};
        }),
        choice: toolChoice(body.tool_choice),
        parallel: body.tool_choice?.disable_parallel_tool_use === true ? false : undefined
    };
}

/**
 * The thinking fields: `thinking`, and `output_config.effort`, which sets the effort of models that have levels and,
 * unless thinking is off, turns it on (`xhigh` and `max` are as high as these models go).
 */
function requestedReasoning(body: CountTokensRequest): RequestedGeneration["reasoning"] {
    const reasoning = reasoningForThinking(body.thinking);
    const effort = body.output_config?.effort;
    return [
        ...effort != null && reasoning?.enabled !== false
            ? [{param: "output_config.effort", value: reasoningForEffort(effort)}]
            : [],
        ...reasoning != null ? [{param: "thinking", value: reasoning}] : []
    ];
}

export function messagesGenerationOptions(body: MessagesRequest): RequestOptions {
    return toGenerationOptions({
        maxTokens: body.max_tokens,
        sampling: {temperature: body.temperature ?? undefined, topP: body.top_p ?? undefined, topK: body.top_k ?? undefined},
        stop: body.stop_sequences ?? undefined,
        responseFormat: body.output_config?.format ?? undefined,
        tools: toolOptions(body),
        reasoning: requestedReasoning(body)
    }, FIELD_NAMES);
}

/** The options that shape the prompt (its tools and thinking switch), for counting its tokens. */
export function promptOptions(body: CountTokensRequest): RequestOptions {
    return toGenerationOptions({sampling: {}, tools: toolOptions(body), reasoning: requestedReasoning(body)}, FIELD_NAMES);
}

export type StopReason = "end_turn" | "max_tokens" | "stop_sequence" | "tool_use" | "model_context_window_exceeded";

/**
 * Why the reply ended; `stop_sequence` only for one of the request's `stop_sequences` (not the template's own stops).
 * A reply that the slot's context ended before `max_tokens` did is `model_context_window_exceeded`, as Anthropic's
 * newer models say when prompt and reply fill their window.
 */
export function stopReason(done: DoneEvent, stopSequences: readonly string[]): {stop_reason: StopReason, stop_sequence: string | null} {
    switch (done.finishReason) {
        case "length":
            return {stop_reason: done.contextFull === true ? "model_context_window_exceeded" : "max_tokens", stop_sequence: null};
        case "tool_calls":
            return {stop_reason: "tool_use", stop_sequence: null};
        case "stop": {
            const stop = requestedStop(done, stopSequences);
            return stop != null ? {stop_reason: "stop_sequence", stop_sequence: stop} : {stop_reason: "end_turn", stop_sequence: null};
        }
    }
}

export type AnthropicUsage = {input_tokens: number, output_tokens: number, cache_read_input_tokens: number, cache_creation_input_tokens: number};

/**
 * As Anthropic counts: `input_tokens` are the prompt tokens evaluated now, `cache_read_input_tokens` those the
 * slot already held (the prefix cache is automatic, so nothing is ever written to it on request), and their sum is
 * the prompt's length, which count_tokens answers.
 */
export function toAnthropicUsage(usage: Usage): AnthropicUsage {
    return {
        input_tokens: usage.promptTokens - usage.cachedPromptTokens,
        output_tokens: usage.completionTokens,
        cache_read_input_tokens: usage.cachedPromptTokens,
        cache_creation_input_tokens: 0
    };
}

/** A call's arguments as the object Anthropic's `input` is; arguments that are not a JSON object are kept under `arguments`. */
export function toolInput(call: ToolCall): Record<string, unknown> {
    try {
        const input: unknown = JSON.parse(call.arguments === "" ? "{}" : call.arguments);
        if (input != null && typeof input === "object" && !Array.isArray(input))
            return input as Record<string, unknown>;
    } catch {
        // Falls through: the model wrote something that is not JSON.
    }
    return {arguments: call.arguments};
}
