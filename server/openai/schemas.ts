import Type from "typebox";
import type {Static, TSchema} from "typebox";

/** Request schemas for `/v1`, checked before a handler runs. Unknown fields are allowed, as OpenAI allows them. */

/** Optional, and `null` means the same as absent (many clients send `null` for unset fields). */
export const Maybe = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
export const JsonObject = Type.Record(Type.String(), Type.Unknown());

/** OpenAI's `{url, detail}`; some clients send the URL itself. `detail` is accepted and has no effect: the projector sizes the image. */
const ImageUrl = Type.Union([Type.String(), Type.Object({url: Type.String(), detail: Maybe(Type.String())})]);
/** A `text` part, or an `image_url` part; others are refused by name in the translation. */
const AnyPart = Type.Object({type: Type.String(), text: Type.Optional(Type.String()), image_url: Type.Optional(ImageUrl)});
const Content = Type.Union([Type.String(), Type.Array(AnyPart)]);

const ToolCallSchema = Type.Object({
    id: Type.String(),
    type: Type.Optional(Type.Literal("function")),
    function: Type.Object({name: Type.String(), arguments: Type.String()})
});

const Message = Type.Object({
    role: Type.Union([
        Type.Literal("system"), Type.Literal("developer"), Type.Literal("user"),
        Type.Literal("assistant"), Type.Literal("tool"), Type.Literal("function")
    ]),
    content: Maybe(Content),
    name: Maybe(Type.String()),
    tool_calls: Maybe(Type.Array(ToolCallSchema)),
    tool_call_id: Maybe(Type.String()),
    /** An assistant's thinking, as llama-server, LM Studio and DeepSeek return it. */
    reasoning_content: Maybe(Type.String())
});

const Stop = Maybe(Type.Union([Type.String(), Type.Array(Type.String(), {maxItems: 16})]));

const FunctionDefinition = Type.Object({
    name: Type.String({pattern: "^[a-zA-Z0-9_-]{1,64}$"}),
    description: Maybe(Type.String()),
    parameters: Maybe(JsonObject),
    strict: Maybe(Type.Boolean())
});

const Tool = Type.Object({type: Type.Literal("function"), function: FunctionDefinition});

const ToolChoice = Type.Union([
    Type.Literal("auto"), Type.Literal("none"), Type.Literal("required"),
    Type.Object({type: Type.Literal("function"), function: Type.Object({name: Type.String()})})
]);

/** OpenAI's levels; `xhigh` and `max` (newer OpenAI models) are as high as these models go. */
export const ReasoningEffort = Type.Union([
    Type.Literal("none"), Type.Literal("minimal"), Type.Literal("low"), Type.Literal("medium"), Type.Literal("high"),
    Type.Literal("xhigh"), Type.Literal("max")
]);
export type ReasoningEffort = Static<typeof ReasoningEffort>;

const ResponseFormat = Type.Union([
    Type.Object({type: Type.Literal("text")}),
    Type.Object({type: Type.Literal("json_object")}),
    Type.Object({
        type: Type.Literal("json_schema"),
        json_schema: Type.Object({name: Maybe(Type.String()), schema: Maybe(JsonObject), strict: Maybe(Type.Boolean())})
    })
]);

/** Predicted Outputs: the reply as the client expects it, such as a file it asks the model to edit. */
const Prediction = Type.Object({
    type: Type.Literal("content"),
    content: Type.Union([Type.String(), Type.Array(Type.Object({type: Type.Literal("text"), text: Type.String()}))])
});

/** Sampling and length fields shared by chat and text completions. */
const samplingFields = {
    prediction: Maybe(Prediction),
    model: Type.String({minLength: 1}),
    stream: Maybe(Type.Boolean()),
    stream_options: Maybe(Type.Object({include_usage: Maybe(Type.Boolean())})),
    max_tokens: Maybe(Type.Integer({minimum: 1})),
    temperature: Maybe(Type.Number({minimum: 0, maximum: 2})),
    top_p: Maybe(Type.Number({minimum: 0, maximum: 1})),
    top_k: Maybe(Type.Integer({minimum: 0})),
    min_p: Maybe(Type.Number({minimum: 0, maximum: 1})),
    presence_penalty: Maybe(Type.Number({minimum: -2, maximum: 2})),
    frequency_penalty: Maybe(Type.Number({minimum: -2, maximum: 2})),
    repeat_penalty: Maybe(Type.Number({minimum: 0})),
    seed: Maybe(Type.Integer()),
    stop: Stop,
    n: Maybe(Type.Integer({minimum: 1, maximum: 16}))
};

export const ChatCompletionRequest = Type.Object({
    ...samplingFields,
    messages: Type.Array(Message, {minItems: 1}),
    max_completion_tokens: Maybe(Type.Integer({minimum: 1})),
    logprobs: Maybe(Type.Boolean()),
    top_logprobs: Maybe(Type.Integer({minimum: 0, maximum: 20})),
    response_format: Maybe(ResponseFormat),
    tools: Maybe(Type.Array(Tool)),
    tool_choice: Maybe(ToolChoice),
    parallel_tool_calls: Maybe(Type.Boolean()),
    reasoning_effort: Maybe(ReasoningEffort),
    /** The chat template's switches, as llama-server takes them; only `enable_thinking` is read. */
    chat_template_kwargs: Maybe(Type.Object({enable_thinking: Maybe(Type.Boolean())})),
    /** Thinking on or off, as some clients send it. */
    think: Maybe(Type.Boolean())
});
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;
export type ChatMessageInput = Static<typeof Message>;

const TokenArray = Type.Array(Type.Integer({minimum: 0}), {minItems: 1});

export const CompletionRequest = Type.Object({
    ...samplingFields,
    prompt: Type.Union([Type.String(), Type.Array(Type.String(), {minItems: 1}), TokenArray, Type.Array(TokenArray, {minItems: 1})]),
    echo: Maybe(Type.Boolean()),
    logprobs: Maybe(Type.Integer({minimum: 0, maximum: 20})),
    suffix: Maybe(Type.String()),
    /** Not in OpenAI's legacy API; vLLM and llama-server take it there too, and it constrains the text as on chat. */
    response_format: Maybe(ResponseFormat)
});
export type CompletionRequest = Static<typeof CompletionRequest>;

export const EmbeddingRequest = Type.Object({
    model: Type.String({minLength: 1}),
    input: Type.Union([Type.String(), Type.Array(Type.String(), {minItems: 1}), TokenArray, Type.Array(TokenArray, {minItems: 1})]),
    encoding_format: Maybe(Type.Union([Type.Literal("float"), Type.Literal("base64")])),
    dimensions: Maybe(Type.Integer({minimum: 1})),
    user: Maybe(Type.String())
});
export type EmbeddingRequest = Static<typeof EmbeddingRequest>;
