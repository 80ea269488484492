import {randomBytes} from "node:crypto";
import {InvalidRequestError} from "../../native/errors.js";
import type {ChatMessage, GenerationOptions, ToolChoice, Usage, Timings} from "../../native/types.js";
import type {ChatCompletionRequest, ChatMessageInput, CompletionRequest} from "./schemas.js";

/** OpenAI request fields -> the engine's options, and engine results -> OpenAI fields. */

export function completionId(prefix: "chatcmpl" | "cmpl"): string {
    return `${prefix}-${randomBytes(12).toString("base64url")}`;
}

export const SYSTEM_FINGERPRINT = "fp_hearth";

function messageText(message: ChatMessageInput, index: number): string {
    const content = message.content;
    if (content == null)
        return "";
    if (typeof content === "string")
        return content;
    return content.map((part, partIndex) => {
        if (part.type === "text" && part.text != null)
            return part.text;
        throw new InvalidRequestError(
            `messages[${index}].content[${partIndex}] is a "${part.type}" part; this server reads text parts only`,
            `messages.${index}.content.${partIndex}.type`, "unsupported_content");
    }).join("");
}

export function toChatMessages(messages: readonly ChatMessageInput[]): ChatMessage[] {
    return messages.map((message, index): ChatMessage => {
        const content = messageText(message, index);
        switch (message.role) {
            case "system":
            case "developer":
                return {role: "system", content};
            case "user":
                return {role: "user", content};
            case "assistant":
                return {
                    role: "assistant",
                    content,
                    toolCalls: message.tool_calls?.map((call) => ({id: call.id, name: call.function.name, arguments: call.function.arguments}))
                };
            case "tool":
            case "function":
                return {role: "tool", content, toolCallId: message.tool_call_id ?? undefined};
        }
    });
}

function stopList(stop: string | string[] | null | undefined): string[] {
    if (stop == null)
        return [];
    return (typeof stop === "string" ? [stop] : stop).filter((item) => item.length > 0);
}

function samplingOptions(body: ChatCompletionRequest | CompletionRequest): GenerationOptions["sampling"] {
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

function toolChoice(body: ChatCompletionRequest): ToolChoice {
    const choice = body.tool_choice;
    if (choice == null)
        return "auto";
    if (typeof choice === "string")
        return choice;
    const name = choice.function.name;
    if (!(body.tools ?? []).some((tool) => tool.function.name === name))
        throw new InvalidRequestError(`tool_choice names the function "${name}", which is not in tools`, "tool_choice");
    return {name};
}

export function chatGenerationOptions(body: ChatCompletionRequest, signal: AbortSignal): GenerationOptions {
    const format = body.response_format;
    const tools = body.tools ?? [];
    const choice = toolChoice(body);
    if (tools.length === 0 && choice !== "auto" && choice !== "none")
        throw new InvalidRequestError("tool_choice requires tools", "tool_choice");
    if (tools.length > 0 && format != null && format.type !== "text" && choice !== "none")
        throw new InvalidRequestError("response_format cannot be combined with tools; set tool_choice to \"none\" or drop one of them", "response_format");
    return {
        maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
        sampling: samplingOptions(body),
        stop: stopList(body.stop),
        responseFormat: format == null ? undefined
            : format.type === "json_schema" ? {type: "json_schema", schema: format.json_schema.schema ?? {}}
            : format,
        tools: tools.length > 0 ? {
            definitions: tools.map((tool) => ({
                name: tool.function.name,
                description: tool.function.description ?? undefined,
                parameters: tool.function.parameters ?? undefined
            })),
            choice
        } : undefined,
        logprobs: body.logprobs ? {top: body.top_logprobs ?? 0} : undefined,
        signal
    };
}

export function completionGenerationOptions(body: CompletionRequest, signal: AbortSignal): GenerationOptions {
    if (body.suffix)
        throw new InvalidRequestError("suffix (fill-in-the-middle) is not supported", "suffix");
    return {
        // The legacy completions API defaults to 16 tokens.
        maxTokens: body.max_tokens ?? 16,
        sampling: samplingOptions(body),
        stop: stopList(body.stop),
        logprobs: body.logprobs != null ? {top: body.logprobs} : undefined,
        signal
    };
}

export type OpenAIUsage = {
    prompt_tokens: number,
    completion_tokens: number,
    total_tokens: number,
    prompt_tokens_details: {cached_tokens: number}
};

/** Adds up the usage of several generations; a prompt shared by all of them counts once. */
export function toOpenAIUsage(usages: readonly Usage[], sharedPrompt: boolean): OpenAIUsage {
    const promptTokens = sharedPrompt ? (usages[0]?.promptTokens ?? 0) : usages.reduce((sum, usage) => sum + usage.promptTokens, 0);
    const cachedTokens = sharedPrompt ? Math.min(...usages.map((usage) => usage.cachedPromptTokens)) : usages.reduce((sum, usage) => sum + usage.cachedPromptTokens, 0);
    const completionTokens = usages.reduce((sum, usage) => sum + usage.completionTokens, 0);
    return {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
        prompt_tokens_details: {cached_tokens: Number.isFinite(cachedTokens) ? cachedTokens : 0}
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
