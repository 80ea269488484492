import Type from "typebox";
import type {Static, TSchema} from "typebox";

/** Request schemas for Ollama's `/api/chat`, `/api/generate` and `/api/embed`. Unknown fields are allowed, as Ollama allows them. */

/** Optional, and `null` means the same as absent. */
const Maybe = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
const JsonObject = Type.Record(Type.String(), Type.Unknown());

/** The options Hearth uses; the others Ollama knows (num_ctx, num_gpu, mirostat…) are accepted and ignored. */
const Options = Type.Object({
    temperature: Maybe(Type.Number({minimum: 0})),
    top_p: Maybe(Type.Number({minimum: 0, maximum: 1})),
    top_k: Maybe(Type.Integer({minimum: 0})),
    min_p: Maybe(Type.Number({minimum: 0, maximum: 1})),
    /** Negative means a random seed, as in Ollama. */
    seed: Maybe(Type.Integer()),
    /** Tokens to generate at most; -1 (or any value below 1) is no limit. */
    num_predict: Maybe(Type.Integer()),
    stop: Maybe(Type.Union([Type.String(), Type.Array(Type.String(), {maxItems: 16})])),
    repeat_penalty: Maybe(Type.Number({minimum: 0})),
    presence_penalty: Maybe(Type.Number()),
    frequency_penalty: Maybe(Type.Number())
});
export type OllamaOptions = Static<typeof Options>;

/** Seconds as a number, or a duration such as "5m"; 0 unloads after the request, negative keeps the model loaded. */
const KeepAlive = Maybe(Type.Union([Type.Number(), Type.String()]));
/** `"json"`, or a JSON schema the reply must match. */
const Format = Maybe(Type.Union([Type.String(), JsonObject]));

const ToolCall = Type.Object({
    id: Maybe(Type.String()),
    function: Type.Object({name: Type.String(), arguments: Maybe(Type.Union([JsonObject, Type.String()]))})
});

const Message = Type.Object({
    role: Type.Union([Type.Literal("system"), Type.Literal("user"), Type.Literal("assistant"), Type.Literal("tool")]),
    content: Maybe(Type.String()),
    /** An assistant's thinking before its answer. */
    thinking: Maybe(Type.String()),
    images: Maybe(Type.Array(Type.String())),
    tool_calls: Maybe(Type.Array(ToolCall)),
    tool_name: Maybe(Type.String()),
    tool_call_id: Maybe(Type.String())
});
export type OllamaMessage = Static<typeof Message>;

const Tool = Type.Object({
    type: Maybe(Type.String()),
    function: Type.Object({name: Type.String({minLength: 1}), description: Maybe(Type.String()), parameters: Maybe(JsonObject)})
});

/** Thinking on or off, or how hard (gpt-oss's levels); absent: the model's default. */
const Think = Maybe(Type.Union([Type.Boolean(), Type.Literal("low"), Type.Literal("medium"), Type.Literal("high")]));
export type OllamaThink = Static<typeof Think>;

const generationFields = {
    model: Type.String({minLength: 1}),
    stream: Maybe(Type.Boolean()),
    format: Format,
    options: Maybe(Options),
    keep_alive: KeepAlive,
    think: Think
};

export const OllamaChatRequest = Type.Object({
    ...generationFields,
    messages: Maybe(Type.Array(Message)),
    tools: Maybe(Type.Array(Tool))
});
export type OllamaChatRequest = Static<typeof OllamaChatRequest>;

export const OllamaGenerateRequest = Type.Object({
    ...generationFields,
    prompt: Maybe(Type.String()),
    system: Maybe(Type.String()),
    raw: Maybe(Type.Boolean()),
    suffix: Maybe(Type.String()),
    images: Maybe(Type.Array(Type.String()))
});
export type OllamaGenerateRequest = Static<typeof OllamaGenerateRequest>;

export const OllamaEmbedRequest = Type.Object({
    model: Type.String({minLength: 1}),
    input: Maybe(Type.Union([Type.String(), Type.Array(Type.String(), {maxItems: 2048})])),
    dimensions: Maybe(Type.Integer({minimum: 1})),
    keep_alive: KeepAlive
});
export type OllamaEmbedRequest = Static<typeof OllamaEmbedRequest>;

export const OllamaEmbeddingsRequest = Type.Object({
    model: Type.String({minLength: 1}),
    prompt: Maybe(Type.String()),
    keep_alive: KeepAlive
});
export type OllamaEmbeddingsRequest = Static<typeof OllamaEmbeddingsRequest>;
