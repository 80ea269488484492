import {IMAGE_PLACEHOLDER} from "../../native/types.js";
import type {ChatMessage, PromptImage, ReasoningOptions, ResponseFormat, ToolChoice} from "../../native/types.js";
import type {RequestOptions} from "../generation/index.js";

/**
 * What an API's request asks an upstream for, once the route has read it as for a local model: the engine's chat
 * (Anthropic's messages, Ollama's chat), or a prompt to complete as it is (Ollama's `raw` generate).
 */
export type UpstreamPrompt = {messages: readonly ChatMessage[]} | {text: string};

/** A request in OpenAI's API, which every upstream speaks: the path and the body, always streamed with its usage. */
export type UpstreamRequest = {path: "/v1/chat/completions" | "/v1/completions", body: Record<string, unknown>};

/**
 * The engine's chat and options (as every API's translation makes them, checked the same way) in OpenAI's chat
 * completions API, or its legacy completions for a raw prompt: the translation back out at the other edge.
 */
export function toUpstreamRequest(prompt: UpstreamPrompt, options: RequestOptions): UpstreamRequest {
    const common = {...samplingFields(options), stream: true, stream_options: {include_usage: true}};
    if ("text" in prompt)
        return {path: "/v1/completions", body: {prompt: prompt.text, ...common}};
    return {
        path: "/v1/chat/completions",
        body: {messages: toOpenAIMessages(prompt.messages), ...common, ...toolFields(options), ...formatFields(options.responseFormat), ...reasoningFields(options.reasoning)}
    };
}

/** The fields the request gave, and only those: an upstream's own defaults stand for the rest. */
function samplingFields({maxTokens, sampling, stop}: RequestOptions): Record<string, unknown> {
    const fields: Record<string, unknown> = {
        max_tokens: maxTokens,
        temperature: sampling.temperature,
        top_p: sampling.topP,
        // Not OpenAI's, but llama-server, vLLM and Hearth read them.
        top_k: sampling.topK,
        min_p: sampling.minP,
        repeat_penalty: sampling.repeatPenalty,
        presence_penalty: sampling.presencePenalty,
        frequency_penalty: sampling.frequencyPenalty,
        seed: sampling.seed,
        stop: stop.length > 0 ? stop : undefined
    };
    return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

function toolFields({tools}: RequestOptions): Record<string, unknown> {
    if (tools == null)
        return {};
    return {
        tools: tools.definitions.map((tool) => ({
            type: "function",
            function: {name: tool.name, ...tool.description != null ? {description: tool.description} : {}, parameters: tool.parameters ?? {type: "object", properties: {}}}
        })),
        tool_choice: toolChoice(tools.choice),
        ...tools.parallel === false ? {parallel_tool_calls: false} : {}
    };
}

function toolChoice(choice: ToolChoice): unknown {
    return typeof choice === "string" ? choice : {type: "function", function: {name: choice.name}};
}

function formatFields(format: ResponseFormat | undefined): Record<string, unknown> {
    if (format == null || format.type === "text")
        return {};
    if (format.type === "json_object")
        return {response_format: {type: "json_object"}};
    return {response_format: {type: "json_schema", json_schema: {name: "response", schema: format.schema, strict: true}}};
}

/**
 * Thinking as llama-server, vLLM and Hearth take it: on or off through the chat template's `enable_thinking`, an
 * effort through `reasoning_effort`. Off is never sent as `reasoning_effort: "none"`, which vLLM refuses.
 */
function reasoningFields(reasoning: ReasoningOptions | undefined): Record<string, unknown> {
    if (reasoning == null)
        return {};
    return {
        chat_template_kwargs: {enable_thinking: reasoning.enabled},
        ...reasoning.enabled && reasoning.effort != null ? {reasoning_effort: reasoning.effort} : {}
    };
}

/**
 * The chat in OpenAI's messages. A tool result that names no call (Ollama's give only the tool's name) answers the
 * first call of that name not yet answered, else the first one not answered: OpenAI's API needs the call's id.
 */
function toOpenAIMessages(messages: readonly ChatMessage[]): object[] {
    let unanswered: {id: string, name: string}[] = [];
    return messages.map((message) => {
        switch (message.role) {
            case "system":
            case "user":
                return {role: message.role, content: withImageParts(message.content, message.images)};
            case "assistant": {
                const calls = message.toolCalls ?? [];
                unanswered = calls.map((call) => ({id: call.id, name: call.name}));
                return {
                    role: "assistant",
                    content: message.content === "" && calls.length > 0 ? null : message.content,
                    ...message.reasoning != null && message.reasoning !== "" ? {reasoning_content: message.reasoning} : {},
                    ...calls.length > 0 ? {tool_calls: calls.map((call) => ({id: call.id, type: "function", function: {name: call.name, arguments: call.arguments}}))} : {}
                };
            }
            case "tool": {
                const answered = unanswered.find((call) => call.id === message.toolCallId)
                    ?? (message.toolCallId == null ? unanswered.find((call) => call.name === message.name) ?? unanswered[0] : undefined);
                unanswered = unanswered.filter((call) => call !== answered);
                const id = message.toolCallId ?? answered?.id;
                // OpenAI's tool messages take text only: a tool result's images go in a user turn right after it.
                const result = {role: "tool", content: withImageParts(message.content, undefined), ...id != null ? {tool_call_id: id} : {}, ...message.name != null ? {name: message.name} : {}};
                return message.images != null && message.images.length > 0
                    ? [result, {role: "user", content: withImageParts("", message.images)}]
                    : result;
            }
        }
    }).flat();
}

/** A message's text with its images where their placeholders are, as OpenAI content parts (data URIs); plain text without images. */
function withImageParts(content: string, images: readonly PromptImage[] | undefined): string | object[] {
    if (images == null || images.length === 0)
        return content.replaceAll(IMAGE_PLACEHOLDER, "");
    const parts: object[] = [];
    content.split(IMAGE_PLACEHOLDER).forEach((text, index) => {
        if (index > 0 && images[index - 1] != null) {
            const image = images[index - 1]!;
            parts.push({type: "image_url", image_url: {url: `data:${image.mimeType};base64,${Buffer.from(image.data).toString("base64")}`}});
        }
        if (text !== "")
            parts.push({type: "text", text});
    });
    return parts;
}
