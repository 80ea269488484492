import {randomBytes} from "node:crypto";
import {InvalidRequestError} from "../../native/errors.js";
import type {ChatMessage, PromptImage, SamplingOptions, ToolChoice, Usage, Timings} from "../../native/types.js";
import {reasoningForEffort, toGenerationOptions} from "../generation/index.js";
import {joinImageParts, stripPlaceholders} from "../images/index.js";
import type {ImageReader, MessagePart} from "../images/index.js";
import type {FieldNames, RequestOptions, RequestedGeneration} from "../generation/index.js";
import type {ChatCompletionRequest, ChatMessageInput, CompletionRequest} from "./schemas.js";

/** OpenAI request fields -> the engine's options, and engine results -> OpenAI fields. */

export function completionId(prefix: "chatcmpl" | "cmpl"): string {
    return `${prefix}-${randomBytes(12).toString("base64url")}`;
}

export const SYSTEM_FINGERPRINT = "fp_hearth";

const FIELD_NAMES: FieldNames = {responseFormat: "response_format", tools: "tools", toolChoice: "tool_choice"};

/** A message's content: its text parts, and its images where the role may show them, each placed where it was. */
async function messageContent(message: ChatMessageInput, index: number, images: ImageReader, signal?: AbortSignal): Promise<{content: string, images?: PromptImage[]}> {
    const content = message.content;
    if (content == null)
        return {content: ""};
    if (typeof content === "string")
        return {content: stripPlaceholders(content)};
    const takesImages = message.role === "user" || message.role === "system" || message.role === "developer" || message.role === "tool";
    const parts = await Promise.all(content.map(async (part, partIndex): Promise<MessagePart> => {
        const param = `messages[${index}].content[${partIndex}]`;
        if (part.type === "text" && part.text != null)
            return {text: part.text};
        if (part.type === "image_url" && takesImages) {
            const url = typeof part.image_url === "string" ? part.image_url : part.image_url?.url;
            if (url == null)
                throw new InvalidRequestError(`${param} is an image_url part without its url`, `${param}.image_url`);
            return {image: await images.fromUrl(url, param, signal)};
        }
        throw new InvalidRequestError(
            `${param} is a "${part.type}" part; this server reads text parts${takesImages ? " and image_url parts" : " only in an assistant message"}`,
            `messages.${index}.content.${partIndex}.type`, "unsupported_content");
    }));
    return joinImageParts(parts);
}

/**
 * The request's messages in the engine's terms, with their images read and checked (remote ones fetched where the
 * server allows it, so this waits). `signal` stops a fetch when the client goes away.
 */
export async function toChatMessages(messages: readonly ChatMessageInput[], images: ImageReader, signal?: AbortSignal): Promise<ChatMessage[]> {
    return Promise.all(messages.map(async (message, index): Promise<ChatMessage> => {
        const {content, images: shown} = await messageContent(message, index, images, signal);
        const withImages = shown != null ? {images: shown} : {};
        switch (message.role) {
            case "system":
            case "developer":
                return {role: "system", content, ...withImages};
            case "user":
                return {role: "user", content, ...withImages};
            case "assistant":
                return {
                    role: "assistant",
                    content,
                    ...message.reasoning_content ? {reasoning: message.reasoning_content} : {},
                    toolCalls: message.tool_calls?.map((call) => ({id: call.id, name: call.function.name, arguments: call.function.arguments}))
                };
            case "tool":
            case "function":
                return {role: "tool", content, toolCallId: message.tool_call_id ?? undefined, name: message.name ?? undefined, ...withImages};
        }
    }));
}

function samplingOptions(body: ChatCompletionRequest | CompletionRequest): SamplingOptions {
    return {
        temperature: body.temperature ?? undefined,
        topP: body.top_p ?? undefined,
        topK: body.top_k ?? undefined,
        minP: body.min_p ?? undefined,
        seed: body.seed ?? undefined,
        repeatPenalty: body.repeat_penalty ?? undefined,
        presencePenalty: body.presence_penalty ?? undefined,
        frequencyPenalty: body.frequency_penalty ?? undefined
    };
}

function toolChoice(choice: ChatCompletionRequest["tool_choice"]): ToolChoice | undefined {
    if (choice == null || typeof choice === "string")
        return choice ?? undefined;
    return {name: choice.function.name};
}

/** The thinking fields a chat request may carry, each as the engine takes it. */
function requestedReasoning(body: ChatCompletionRequest): RequestedGeneration["reasoning"] {
    const enableThinking = body.chat_template_kwargs?.enable_thinking;
    return [
        ...body.reasoning_effort != null ? [{param: "reasoning_effort", value: reasoningForEffort(body.reasoning_effort)}] : [],
        ...enableThinking != null ? [{param: "chat_template_kwargs.enable_thinking", value: {enabled: enableThinking}}] : [],
        ...body.think != null ? [{param: "think", value: {enabled: body.think}}] : []
    ];
}

/** A prediction's text: its string, or its text parts joined. */
function predictionText(prediction: ChatCompletionRequest["prediction"]): string | undefined {
    if (prediction == null)
        return undefined;
    return typeof prediction.content === "string" ? prediction.content : prediction.content.map((part) => part.text).join("");
}

function responseFormat(format: ChatCompletionRequest["response_format"]): RequestedGeneration["responseFormat"] {
    return format == null ? undefined
        : format.type === "json_schema" ? {type: "json_schema", schema: format.json_schema.schema ?? {}}
        : format;
}

export function chatGenerationOptions(body: ChatCompletionRequest): RequestOptions {
    const tools = body.tools ?? [];
    return toGenerationOptions({
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
        sampling: samplingOptions(body),
        stop: body.stop ?? undefined,
        responseFormat: responseFormat(body.response_format),
        tools: {
            definitions: tools.map((tool) => ({
                name: tool.function.name,
                description: tool.function.description ?? undefined,
                parameters: tool.function.parameters ?? undefined
            })),
            choice: toolChoice(body.tool_choice),
            parallel: body.parallel_tool_calls ?? undefined
        },
        reasoning: requestedReasoning(body),
        logprobs: body.logprobs ? {top: body.top_logprobs ?? 0} : undefined,
        prediction: predictionText(body.prediction)
    }, FIELD_NAMES);
}

export function completionGenerationOptions(body: CompletionRequest): RequestOptions {
    if (body.suffix)
        throw new InvalidRequestError("suffix (fill-in-the-middle) is not supported", "suffix");
    return toGenerationOptions({
        // The legacy completions API defaults to 16 tokens.
        maxTokens: body.max_tokens ?? 16,
        sampling: samplingOptions(body),
        stop: body.stop ?? undefined,
        logprobs: body.logprobs != null ? {top: body.logprobs} : undefined,
        responseFormat: responseFormat(body.response_format),
        prediction: predictionText(body.prediction)
    }, FIELD_NAMES);
}

export type OpenAIUsage = {
    prompt_tokens: number,
    completion_tokens: number,
    total_tokens: number,
    prompt_tokens_details: {cached_tokens: number},
    completion_tokens_details: {reasoning_tokens: number, accepted_prediction_tokens?: number, rejected_prediction_tokens?: number}
};

/** Adds up the usage of several generations; a prompt shared by all of them counts once. */
export function toOpenAIUsage(usages: readonly Usage[], sharedPrompt: boolean): OpenAIUsage {
    const sum = (read: (usage: Usage) => number) => usages.reduce((total, usage) => total + read(usage), 0);
    const promptTokens = sharedPrompt ? (usages[0]?.promptTokens ?? 0) : sum((usage) => usage.promptTokens);
    const cachedTokens = sharedPrompt ? Math.min(...usages.map((usage) => usage.cachedPromptTokens)) : sum((usage) => usage.cachedPromptTokens);
    const completionTokens = sum((usage) => usage.completionTokens);
    return {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
        prompt_tokens_details: {cached_tokens: Number.isFinite(cachedTokens) ? cachedTokens : 0},
        completion_tokens_details: {
            reasoning_tokens: sum((usage) => usage.reasoningTokens),
            // Only for a request with a prediction, as OpenAI's clients read them.
            ...usages.some((usage) => usage.acceptedPredictionTokens != null) ? {
                accepted_prediction_tokens: sum((usage) => usage.acceptedPredictionTokens ?? 0),
                rejected_prediction_tokens: sum((usage) => usage.rejectedPredictionTokens ?? 0)
            } : {}
        }
    };
}

/** llama.cpp server's `timings` object, which local tools read for tokens per second. */
export function toTimings(usage: Usage, timings: Timings) {
    return {
        prompt_n: usage.promptTokens - usage.cachedPromptTokens,
        prompt_ms: timings.promptMs,
        predicted_n: usage.completionTokens,
        predicted_ms: timings.generationMs,
        predicted_per_second: timings.generationMs > 0 ? (Math.max(0, usage.completionTokens - 1) / timings.generationMs) * 1000 : 0,
        queue_ms: timings.queueMs,
        cache_n: usage.cachedPromptTokens
    };
}
