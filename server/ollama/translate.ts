import {InvalidRequestError} from "../../native/errors.js";
import {newToolCallId} from "../../native/toolCalls.js";
import type {ChatMessage, PromptImage, ReasoningOptions, ResponseFormat, ToolCall} from "../../native/types.js";
import {parseDuration} from "../config.js";
import {toGenerationOptions} from "../generation/index.js";
import type {DoneEvent, FieldNames, RequestOptions} from "../generation/index.js";
import {joinImageParts} from "../images/index.js";
import type {ImageReader} from "../images/index.js";
import type {OllamaChatRequest, OllamaMessage, OllamaOptions, OllamaThink} from "./ollamaSchemas.js";

/** Ollama request fields -> the engine's options, and engine results -> Ollama fields. */

export type OllamaToolCall = {id: string, function: {index: number, name: string, arguments: unknown}};

/** `keep_alive` in milliseconds, as the engine takes it; undefined keeps the engine's default. */
export function keepAliveMs(value: string | number | null | undefined): number | undefined {
    if (value == null)
        return undefined;
    const ms = parseDuration(value);
    if (ms == null)
        throw new InvalidRequestError(`keep_alive must be a number of seconds or a duration such as "5m" or "1h", got ${JSON.stringify(value)}`, "keep_alive");
    return ms;
}

/** Ollama's images, base64 without a data: prefix, each checked; they come before the message's text, as Ollama places them. */
function withImages(content: string, images: readonly string[] | null | undefined, param: string, reader: ImageReader): {content: string, images?: PromptImage[]} {
    return joinImageParts([...(images ?? []).map((image, index) => ({image: reader.fromBase64(image, `${param}[${index}]`)})), {text: content}]);
}

export function toChatMessages(messages: readonly OllamaMessage[], reader: ImageReader): ChatMessage[] {
    return messages.map((message, index): ChatMessage => {
        const content = message.content ?? "";
        const param = `messages[${index}].images`;
        switch (message.role) {
            case "system":
            case "user":
                return {role: message.role, ...withImages(content, message.images, param, reader)};
            case "assistant":
                if (message.images != null && message.images.length > 0)
                    throw new InvalidRequestError(`${param}: images are read in user, system and tool messages, not in the assistant's`, param);
                return {
                    role: "assistant",
                    content,
                    ...message.thinking ? {reasoning: message.thinking} : {},
                    // Ollama's calls carry arguments as an object and often no id.
                    toolCalls: message.tool_calls?.map((call) => ({
                        id: call.id ?? newToolCallId(),
                        name: call.function.name,
                        arguments: typeof call.function.arguments === "string" ? call.function.arguments : JSON.stringify(call.function.arguments ?? {})
                    }))
                };
            case "tool":
                return {role: "tool", ...withImages(content, message.images, param, reader), toolCallId: message.tool_call_id ?? undefined, name: message.tool_name ?? undefined};
        }
    });
}

/**
 * `/api/generate`'s prompt as the chat the model's template renders: its system prompt, then the prompt as a user
 * message with the request's images. A raw prompt has no template to place images in, so it takes none.
 */
export function generateMessages(body: {prompt?: string | null, system?: string | null, raw?: boolean | null, suffix?: string | null, images?: string[] | null}, reader: ImageReader): ChatMessage[] {
    if (body.suffix)
        throw new InvalidRequestError("suffix (fill-in-the-middle) is not supported", "suffix");
    const hasImages = body.images != null && body.images.length > 0;
    if (hasImages && body.raw === true)
        throw new InvalidRequestError("images cannot go with raw: a raw prompt is not rendered through the model's template, which places them", "images");
    return [
        ...body.system ? [{role: "system" as const, content: body.system}] : [],
        {role: "user", ...withImages(body.prompt ?? "", body.images, "images", reader)}
    ];
}

function responseFormat(format: string | Record<string, unknown> | null | undefined): ResponseFormat | undefined {
    if (format == null || format === "")
        return undefined;
    if (format === "json")
        return {type: "json_object"};
    if (typeof format === "string")
        throw new InvalidRequestError(`format must be "json" or a JSON schema object, got ${JSON.stringify(format)}`, "format");
    return {type: "json_schema", schema: format};
}

/** Ollama has no `tool_choice`: the model may call a tool or answer. */
const FIELD_NAMES: FieldNames = {responseFormat: "format", tools: "tools", toolChoice: "tools"};

/** `think` in the engine's terms: true or false, or a level (gpt-oss's), which thinks at that effort. */
export function reasoningForThink(think: OllamaThink | undefined): ReasoningOptions | undefined {
    if (think == null)
        return undefined;
    return typeof think === "boolean" ? {enabled: think} : {enabled: true, effort: think};
}

export function generationOptions(
    body: {format?: string | Record<string, unknown> | null, options?: OllamaOptions | null, tools?: OllamaChatRequest["tools"], think?: OllamaThink}
): RequestOptions {
    const options = body.options ?? {};
    const tools = body.tools ?? [];
    const reasoning = reasoningForThink(body.think);
    return toGenerationOptions({
        maxTokens: options.num_predict != null && options.num_predict > 0 ? options.num_predict : undefined,
        sampling: {
            // The engine's default temperature is Ollama's, 0.8.
            temperature: options.temperature ?? undefined,
            topP: options.top_p ?? undefined,
            topK: options.top_k ?? undefined,
            minP: options.min_p ?? undefined,
            seed: options.seed != null && options.seed >= 0 ? options.seed : undefined,
            repeatPenalty: options.repeat_penalty ?? undefined,
            presencePenalty: options.presence_penalty ?? undefined,
            frequencyPenalty: options.frequency_penalty ?? undefined
        },
        stop: options.stop ?? undefined,
        responseFormat: responseFormat(body.format),
        tools: {
            definitions: tools.map((tool) => ({
                name: tool.function.name,
                description: tool.function.description ?? undefined,
                parameters: tool.function.parameters ?? undefined
            }))
        },
        reasoning: reasoning != null ? [{param: "think", value: reasoning}] : []
    }, FIELD_NAMES);
}

/** A tool call as Ollama returns it: complete, with its arguments parsed. */
export function toOllamaToolCall(call: ToolCall, index: number): OllamaToolCall {
    let args: unknown;
    try {
        args = JSON.parse(call.arguments);
    } catch {
        // The grammar makes this unreachable unless generation was cut short; keep what the model wrote.
        args = call.arguments;
    }
    return {id: call.id, function: {index, name: call.name, arguments: args}};
}

const nanoseconds = (ms: number) => Math.round(ms * 1e6);

/** Where a request's time went: from its arrival, and the part spent getting the model loaded. */
export type RequestClock = {startedMs: number, loadMs: number};

/** The final line's `done_reason` and statistics, durations in nanoseconds as Ollama gives them. */
export function doneFields(done: DoneEvent, clock: RequestClock) {
    return {
        done_reason: done.finishReason === "length" ? "length" : "stop",
        total_duration: nanoseconds(performance.now() - clock.startedMs),
        load_duration: nanoseconds(clock.loadMs),
        prompt_eval_count: done.usage.promptTokens,
        prompt_eval_duration: nanoseconds(done.timings.promptMs),
        eval_count: done.usage.completionTokens,
        eval_duration: nanoseconds(done.timings.generationMs)
    };
}

export function embedFields(clock: RequestClock, promptTokens: number) {
    return {total_duration: nanoseconds(performance.now() - clock.startedMs), load_duration: nanoseconds(clock.loadMs), prompt_eval_count: promptTokens};
}
