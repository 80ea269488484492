/** The engine's own request and event shapes. Routes translate OpenAI or Ollama shapes to and from these. */
import type {GenerationReport} from "./LoadedModel.js";

export type SamplingOptions = {
    /** `0` is greedy. Defaults to `0.8`. */
    temperature?: number,
    topP?: number,
    topK?: number,
    minP?: number,
    /** The same seed with the same request gives the same output. Defaults to a random seed. */
    seed?: number,
    /** Multiplicative penalty on recently seen tokens; `1` disables it. Defaults to `1`. */
    repeatPenalty?: number,
    presencePenalty?: number,
    frequencyPenalty?: number
};

export type ToolDefinition = {
    name: string,
    description?: string,
    /** JSON schema of the arguments object. */
    parameters?: Record<string, unknown>
};

export type ToolChoice = "auto" | "none" | "required" | {name: string};

export type ToolCall = {id: string, name: string, arguments: string};

/**
 * An image in a prompt: the bytes of an encoded file as the client sent it (PNG, JPEG, WebP, GIF or BMP), already
 * checked at the edge (format, size, pixels: see checkImage). The engine decodes it and evaluates it through the model's
 * projector.
 */
export type PromptImage = {data: Uint8Array, mimeType: ImageMimeType};

export type ImageMimeType = "image/png" | "image/jpeg" | "image/webp" | "image/gif" | "image/bmp";

/**
 * Where each image of a message sits in its `content`: one IMAGE_PLACEHOLDER per image, in order (U+FFFC, Unicode's
 * object replacement character). The edge removes any U+FFFC a client's own text holds, so the two always agree.
 */
export const IMAGE_PLACEHOLDER = "\uFFFC";

export type ChatMessage =
    /** `images`: the images a user turn (or a tool's result) shows the model, placed by IMAGE_PLACEHOLDERs in `content`. */
    | {role: "system" | "user", content: string, images?: readonly PromptImage[]}
    /** `reasoning`: the thinking that came before the answer; templates usually leave past thinking out. */
    | {role: "assistant", content: string, reasoning?: string, toolCalls?: readonly ToolCall[]}
    /** A tool's result: matched to its call by `toolCallId`, else by `name`, else by order. */
    | {role: "tool", content: string, toolCallId?: string, name?: string, images?: readonly PromptImage[]};

/**
 * Whether a reasoning model thinks before it answers, and how hard, mapped to its template's own switch
 * (Qwen3's `enable_thinking`, gpt-oss's reasoning level, Gemma 4's thinking flag). Undefined: the model's default.
 * A model that cannot stop thinking (gpt-oss) thinks as little as it can when `enabled` is false.
 */
export type ReasoningOptions = {enabled: boolean, effort?: "low" | "medium" | "high"};

export type ResponseFormat =
    | {type: "text"}
    | {type: "json_object"}
    | {type: "json_schema", schema: Record<string, unknown>};

export type GenerationOptions = {
    /** Tokens to generate at most; generation also ends where the slot's context ends. */
    maxTokens?: number,
    sampling: SamplingOptions,
    /** Strings that end generation; they are never part of the output. */
    stop: readonly string[],
    /** Generate past end-of-generation tokens, up to `maxTokens` (benchmarks). Defaults to `false`. */
    ignoreEos?: boolean,
    responseFormat?: ResponseFormat,
    /** `parallel`: whether one reply may hold several calls, where the model's format allows it. Defaults to `true`. */
    tools?: {definitions: readonly ToolDefinition[], choice: ToolChoice, parallel?: boolean},
    reasoning?: ReasoningOptions,
    /** Report log probabilities of each generated token and of the `top` likeliest alternatives. */
    logprobs?: {top: number},
    /** The reply as the client expects it (OpenAI's Predicted Outputs): drafted from, so what agrees with it comes faster. */
    prediction?: string,
    /** Aborts the generation: the client went away. Nothing more is sent. */
    signal?: AbortSignal,
    /**
     * Ends the generation early, as if its token budget ran out (`finish_reason: "length"`), so the reply
     * still ends properly: a timeout or a shutdown. While still waiting for a slot, its reason is thrown.
     */
    deadline?: AbortSignal,
    /** Told what the generation did when it ends, however it ends (after the engine's own `onGenerationDone`). */
    onDone?: (report: GenerationReport) => void
};

export type TopLogprob = {token: string, logprob: number, bytes: number[]};
export type TokenLogprob = TopLogprob & {topLogprobs: TopLogprob[]};

export type FinishReason = "stop" | "length" | "tool_calls";

export type Usage = {
    promptTokens: number,
    completionTokens: number,
    /** Prompt tokens that were already in the slot's cache and were not evaluated again. */
    cachedPromptTokens: number,
    /** Generated tokens that were thinking (part of `completionTokens`). */
    reasoningTokens: number,
    /** With a prediction of the reply: its tokens that were drafted and kept, and those drafted and refused. */
    acceptedPredictionTokens?: number,
    rejectedPredictionTokens?: number
};

export type Timings = {
    /** From admission to a slot until the first generated token. */
    promptMs: number,
    /** From the first generated token to the last. */
    generationMs: number,
    /** Time spent waiting for a free slot. */
    queueMs: number
};

/**
 * What a generation yields, in order. `text` is the answer; `reasoning` the model's thinking, never mixed into
 * `text`; a tool call is `toolCall` (its name, once known) then `toolCallArguments` pieces of its JSON arguments.
 * A model's special tokens (channel markers, call delimiters, end tokens) are never in any text.
 */
export type GenerationEvent =
    | {type: "text", text: string, logprobs?: TokenLogprob[]}
    | {type: "reasoning", text: string}
    | {type: "toolCall", index: number, id: string, name: string}
    | {type: "toolCallArguments", index: number, text: string}
    /**
     * `stopSequence`: the stop string that ended the reply (a request's or the template's), when one did.
     * `contextFull`: a `length` reply that the slot's context window ended, not the request's token limit.
     */
    | {type: "done", finishReason: FinishReason, stopSequence?: string, contextFull?: boolean, usage: Usage, timings: Timings};
