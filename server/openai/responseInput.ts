import {InvalidRequestError} from "../../native/errors.js";
import type {ChatMessage, PromptImage, ToolCall} from "../../native/types.js";
import {reasoningForEffort, toGenerationOptions} from "../generation/index.js";
import type {RequestOptions} from "../generation/index.js";
import {joinImageParts, stripPlaceholders} from "../images/index.js";
import type {ImageReader, MessagePart} from "../images/index.js";
import type {ReasoningSeal} from "./ReasoningSeal.js";
import type {ResponseInputItem, ResponseRequest} from "./responseSchemas.js";
import {CUSTOM_INPUT, TOOL_SEARCH} from "./responseTools.js";
import type {ResponseToolSet, ToolSources} from "./responseTools.js";

/** `/v1/responses` request fields -> the engine's chat messages and options. */

/** The request's `input` as a list of items: a string is one user message. */
export function inputItems(input: ResponseRequest["input"]): ResponseInputItem[] {
    return typeof input === "string" ? [{type: "message", role: "user", content: input}] : input;
}

const TEXT_PARTS = new Set(["input_text", "output_text", "text", "summary_text", "reasoning_text"]);

function partsText(parts: ResponseInputItem["content"], param: string, images?: InputImages): string {
    return partsContent(parts, param, images).content;
}

/** A message's (or a tool output's) parts: their text, and where `images` are read there, the images in their places. */
function partsContent(parts: ResponseInputItem["content"], param: string, images?: InputImages): {content: string, images?: PromptImage[]} {
    if (parts == null)
        return {content: ""};
    if (typeof parts === "string")
        return {content: images != null ? stripPlaceholders(parts) : parts};
    return joinImageParts(parts.map((part, index): MessagePart => {
        if (TEXT_PARTS.has(part.type) && part.text != null)
            return {text: part.text};
        const image = part.type === "input_image" ? images?.get(`${param}.${index}`) : undefined;
        if (image != null)
            return {image};
        throw new InvalidRequestError(`${param}[${index}] is a "${part.type}" part; this server reads text parts${images != null ? " and input_image parts" : " only here"}`,
            `${param}.${index}.type`, "unsupported_content");
    }));
}

/** The images of the items, read and checked (remote ones fetched where the server allows it), by their place: `input.0.content.1`. */
export type InputImages = ReadonlyMap<string, PromptImage>;

/**
 * Reads every `input_image` of the user and system messages and tool outputs first, so the conversation is then
 * translated at once; an image's place names it in errors. A `file_id` (OpenAI's Files API) is refused: this server
 * keeps no files.
 */
export async function readInputImages(items: readonly ResponseInputItem[], reader: ImageReader, signal?: AbortSignal): Promise<InputImages> {
    const pending: Promise<[string, PromptImage]>[] = [];
    items.forEach((item, itemIndex) => {
        const type = item.type ?? (item.role != null ? "message" : undefined);
        const field = type === "message" && item.role !== "assistant" ? "content"
            : type === "function_call_output" || type === "custom_tool_call_output" ? "output" : undefined;
        const parts = field != null ? item[field] : undefined;
        if (parts == null || typeof parts === "string")
            return;
        parts.forEach((part, index) => {
            if (part.type !== "input_image")
                return;
            const param = `input.${itemIndex}.${field}.${index}`;
            if (part.image_url == null)
                throw new InvalidRequestError(part.file_id != null
                    ? `${param} refers to the file ${part.file_id}; this server keeps no files: send the image as a data URI in image_url`
                    : `${param} is an input_image without its image_url`, `${param}.image_url`);
            pending.push(reader.fromUrl(part.image_url, param, signal).then((image) => [param, image]));
        });
    });
    return new Map(await Promise.all(pending));
}

function required(value: string | null | undefined, param: string, what: string): string {
    if (value == null)
        throw new InvalidRequestError(`${param} is missing: ${what}`, param);
    return value;
}

/** OpenAI's words for encrypted content it cannot read, which clients know; the content is shortened as OpenAI does. */
function unverifiable(sealed: string, param: string): InvalidRequestError {
    const shown = sealed.length > 12 ? `${sealed.slice(0, 4)}...${sealed.slice(-4)}` : sealed;
    return new InvalidRequestError(`The encrypted content ${shown} could not be verified. Reason: Encrypted content could not be decrypted or parsed.`,
        param, "invalid_encrypted_content");
}

/** A call of a tool the model made, sent back, as the engine's call of the function the model knows it by. */
function toolCall(item: ResponseInputItem, type: "function_call" | "custom_tool_call" | "tool_search_call", param: string, tools: ResponseToolSet): ToolCall {
    if (type === "tool_search_call") {
        const id = required(item.call_id ?? item.id, `${param}.call_id`, "a tool_search_call needs the call_id its output refers to");
        const args = typeof item.arguments === "string" ? item.arguments : JSON.stringify(item.arguments ?? {});
        return {id, name: tools.modelName({kind: "tool_search", name: TOOL_SEARCH}), arguments: args};
    }
    const id = required(item.call_id, `${param}.call_id`, `a ${type} needs the call_id its output refers to`);
    const name = tools.modelName({
        kind: type === "function_call" ? "function" : "custom",
        name: required(item.name, `${param}.name`, `a ${type} needs the tool's name`),
        ...item.namespace != null ? {namespace: item.namespace} : {}
    });
    if (type === "custom_tool_call")
        return {id, name, arguments: JSON.stringify({[CUSTOM_INPUT]: required(item.input, `${param}.input`, "a custom_tool_call needs the input it was called with")})};
    if (item.arguments != null && typeof item.arguments !== "string")
        throw new InvalidRequestError(`${param}.arguments must be a string of JSON`, `${param}.arguments`);
    return {id, name, arguments: item.arguments ?? "{}"};
}

/** What the conversation's items need besides themselves: the names the model knows the tools by, and the reasoning seal. */
export type ConversationContext = {tools: ResponseToolSet, reasoning: Pick<ReasoningSeal, "open">};

/**
 * The conversation the items make, in the engine's terms. One assistant turn may come as several items (its
 * reasoning, its message, its tool calls): they join into one assistant message, as the model wrote them.
 * `instructions` go first, as a system message.
 */
export function toResponseMessages(items: readonly ResponseInputItem[], instructions: string | null | undefined, context: ConversationContext, images: InputImages = new Map()): ChatMessage[] {
    const messages: ChatMessage[] = instructions != null && instructions !== "" ? [{role: "system", content: instructions}] : [];
    let turn: {content: string, reasoning: string, toolCalls: ToolCall[]} | undefined;
    const callNames = new Map<string, string>();
    const endTurn = () => {
        if (turn == null)
            return;
        messages.push({
            role: "assistant", content: turn.content,
            ...turn.reasoning !== "" ? {reasoning: turn.reasoning} : {},
            ...turn.toolCalls.length > 0 ? {toolCalls: turn.toolCalls} : {}
        });
        turn = undefined;
    };
    items.forEach((item, index) => {
        const param = `input.${index}`;
        const type = item.type ?? (item.role != null ? "message" : undefined);
        switch (type) {
            case "message": {
                const role = required(item.role, `${param}.role`, "a message needs a role");
                if (role === "assistant") {
                    const content = partsText(item.content, `${param}.content`);
                    if (turn != null && (turn.content !== "" || turn.toolCalls.length > 0))
                        endTurn();
                    turn ??= {content: "", reasoning: "", toolCalls: []};
                    turn.content = content;
                } else {
                    endTurn();
                    messages.push({role: role === "user" ? "user" : "system", ...partsContent(item.content, `${param}.content`, images)});
                }
                break;
            }
            case "reasoning": {
                if (turn != null && (turn.content !== "" || turn.toolCalls.length > 0 || turn.reasoning !== ""))
                    endTurn();
                turn ??= {content: "", reasoning: "", toolCalls: []};
                // The whole thinking as Hearth sealed it; else the summary, or the full thinking (`reasoning_text`
                // parts) where a client sends that instead.
                if (item.encrypted_content != null) {
                    const opened = context.reasoning.open(item.encrypted_content);
                    if (opened == null)
                        throw unverifiable(item.encrypted_content, `${param}.encrypted_content`);
                    turn.reasoning = opened;
                } else
                    turn.reasoning = partsText(item.summary, `${param}.summary`) || partsText(item.content, `${param}.content`);
                break;
            }
            case "function_call":
            case "custom_tool_call":
            case "tool_search_call": {
                const call = toolCall(item, type, param, context.tools);
                callNames.set(call.id, call.name);
                turn ??= {content: "", reasoning: "", toolCalls: []};
                turn.toolCalls.push(call);
                break;
            }
            case "tool_search_output": {
                const id = required(item.call_id, `${param}.call_id`, "a tool_search_output needs the call_id of its call");
                endTurn();
                // The tools themselves join the offered ones (responseTools); the model is told their names.
                const names = (item.tools ?? []).flatMap((tool) => tool.type === "namespace"
                    ? (tool.tools ?? []).map((inner) => context.tools.modelName({kind: "function", name: inner.name ?? "", ...tool.name != null ? {namespace: tool.name} : {}}))
                    : tool.name != null ? [context.tools.modelName({kind: "function", name: tool.name})] : []);
                messages.push({role: "tool", content: JSON.stringify({loaded_tools: names}), toolCallId: id, name: callNames.get(id)});
                break;
            }
            case "function_call_output":
            case "custom_tool_call_output": {
                const id = required(item.call_id, `${param}.call_id`, `a ${type} needs the call_id of its call`);
                endTurn();
                const output = item.output;
                if (output == null)
                    throw new InvalidRequestError(`${param}.output is missing: a ${type} needs the tool's output`, `${param}.output`);
                messages.push({role: "tool", ...partsContent(output, `${param}.output`, images), toolCallId: id, name: callNames.get(id)});
                break;
            }
            default:
                throw new InvalidRequestError(
                    type == null
                        ? `${param} has neither a type nor a role`
                        : `${param} is a "${type}" item; this server reads message, function_call, function_call_output, custom_tool_call, ` +
                            "custom_tool_call_output, tool_search_call, tool_search_output and reasoning items",
                    `${param}.type`, "unsupported_item");
        }
    });
    endTurn();
    if (!messages.some((message) => message.role !== "system"))
        throw new InvalidRequestError("input has no message for the model to answer", "input");
    return messages;
}

/** The tools the request offers, and those its conversation's tool searches loaded. */
export function toolSources(body: ResponseRequest, items: readonly ResponseInputItem[]): ToolSources {
    return {
        tools: body.tools,
        loaded: items.flatMap((item, index) => item.type === "tool_search_output" && item.tools != null ? [{tools: item.tools, param: `input.${index}.tools`}] : [])
    };
}

/** The request's generation settings, through the mapper every API shares. */
export function responseGenerationOptions(body: ResponseRequest, tools: ResponseToolSet): RequestOptions {
    const format = body.text?.format;
    const choice = body.tool_choice;
    const effort = body.reasoning?.effort;
    return toGenerationOptions({
        maxTokens: body.max_output_tokens ?? undefined,
        sampling: {
            temperature: body.temperature ?? undefined,
            topP: body.top_p ?? undefined,
            topK: body.top_k ?? undefined,
            seed: body.seed ?? undefined
        },
        responseFormat: format == null ? undefined
            : format.type === "json_schema" ? {type: "json_schema", schema: format.schema}
            : {type: format.type},
        tools: {
            definitions: tools.definitions.map(({name, description, parameters}) => ({name, description, parameters})),
            choice: choice == null ? undefined : typeof choice === "string" ? choice
                : {name: tools.modelName({kind: choice.type, name: choice.name, ...choice.namespace != null ? {namespace: choice.namespace} : {}})},
            parallel: body.parallel_tool_calls ?? undefined
        },
        reasoning: effort != null ? [{param: "reasoning.effort", value: reasoningForEffort(effort)}] : []
    }, {responseFormat: "text.format", tools: "tools", toolChoice: "tool_choice"});
}
