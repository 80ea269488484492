import Type from "typebox";
import type {Static, TSchema} from "typebox";

/**
 * Request schemas for Anthropic's `/v1/messages` and `/v1/messages/count_tokens`. Unknown fields are allowed
 * (`metadata`, `cache_control` on any block or tool, `service_tier`, a tool's `strict` or `input_examples`…), as
 * clients send fields this server has no use for. Content blocks are checked loosely here and by type in the
 * translation, so a block this server cannot read (a document) is refused with a message that says so rather than a
 * schema error.
 */

/** Optional, and `null` means the same as absent. */
const Maybe = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));
const JsonObject = Type.Record(Type.String(), Type.Unknown());

/** An image block's `source`: `base64` (`media_type`, `data`) or `url`; others (`file`) are refused by name in the translation. */
const ImageSource = Type.Object({
    type: Type.String(),
    media_type: Maybe(Type.String()),
    data: Maybe(Type.String()),
    url: Maybe(Type.String()),
    file_id: Maybe(Type.String())
});
export type ImageSourceParam = Static<typeof ImageSource>;

/**
 * A text block, or in a tool's result also a `tool_reference` to a deferred tool that the result loads, or an
 * `image` (a screenshot a tool took).
 */
const TextBlock = Type.Object({type: Type.String(), text: Type.Optional(Type.String()), tool_name: Type.Optional(Type.String()), source: Type.Optional(ImageSource)});

const ContentBlock = Type.Object({
    type: Type.String({minLength: 1}),
    /** `text` */
    text: Type.Optional(Type.String()),
    /** `tool_use` */
    id: Type.Optional(Type.String()),
    name: Type.Optional(Type.String()),
    input: Type.Optional(Type.Unknown()),
    /** `tool_result` */
    tool_use_id: Type.Optional(Type.String()),
    content: Type.Optional(Type.Union([Type.String(), Type.Array(TextBlock)])),
    is_error: Maybe(Type.Boolean()),
    /** `thinking` */
    thinking: Type.Optional(Type.String()),
    signature: Type.Optional(Type.String()),
    /** A system turn's `tool_addition` and `tool_removal`: the tool they offer or withdraw. */
    tool: Type.Optional(Type.Unknown()),
    /** `image` */
    source: Type.Optional(ImageSource)
});
export type ContentBlock = Static<typeof ContentBlock>;

/**
 * A `system` turn may come anywhere in the conversation (Claude Code sends them); its blocks are text, it may have
 * no content (one that carries only its turn's `output_config`), and `clear_at: "next_user_message"` shows it only
 * until a user turn follows.
 */
const Message = Type.Object({
    role: Type.Union([Type.Literal("user"), Type.Literal("assistant"), Type.Literal("system")]),
    content: Type.Optional(Type.Union([Type.String(), Type.Array(ContentBlock)])),
    clear_at: Maybe(Type.String())
});
export type MessageParam = Static<typeof Message>;

const System = Maybe(Type.Union([Type.String(), Type.Array(TextBlock)]));
export type SystemParam = Static<typeof System>;

const Tool = Type.Object({
    name: Type.String({pattern: "^[a-zA-Z0-9_-]{1,128}$"}),
    description: Maybe(Type.String()),
    input_schema: Maybe(JsonObject),
    /** `custom` (or absent) for a client tool; Anthropic's server tools (`web_search_…`) are refused in the translation. */
    type: Maybe(Type.String()),
    /** Left out of the prompt until a tool result loads it with a `tool_reference` block. */
    defer_loading: Maybe(Type.Boolean())
});
export type ToolParam = Static<typeof Tool>;

const ToolChoice = Type.Object({
    type: Type.Union([Type.Literal("auto"), Type.Literal("any"), Type.Literal("tool"), Type.Literal("none")]),
    name: Maybe(Type.String()),
    disable_parallel_tool_use: Maybe(Type.Boolean())
});

const Thinking = Type.Object({
    type: Type.Union([Type.Literal("enabled"), Type.Literal("disabled"), Type.Literal("adaptive"), Type.Literal("between_tools")]),
    budget_tokens: Maybe(Type.Integer({minimum: 1})),
    /** `omitted`: no thinking blocks in the reply; any other value (`summarized`, `updates`…) shows them. */
    display: Maybe(Type.String())
});
export type ThinkingParam = Static<typeof Thinking>;

const OutputConfig = Type.Object({
    effort: Maybe(Type.Union([Type.Literal("low"), Type.Literal("medium"), Type.Literal("high"), Type.Literal("xhigh"), Type.Literal("max")])),
    /** Structured output: the reply's text is JSON matching the schema. */
    format: Maybe(Type.Object({type: Type.Literal("json_schema"), schema: JsonObject}))
});

/** One of `context_management.edits`, read by its type in `contextEdits.ts`; an edit of an unknown type is ignored. */
const ContextEdit = Type.Object({type: Type.String({minLength: 1})});
const ContextManagement = Type.Object({edits: Maybe(Type.Array(ContextEdit))});
export type ContextManagementParam = Static<typeof ContextManagement>;

/** What a prompt is made of: the part count_tokens shares with a message request. */
const promptFields = {
    model: Type.String({minLength: 1}),
    system: System,
    messages: Type.Array(Message, {minItems: 1}),
    tools: Maybe(Type.Array(Tool)),
    tool_choice: Maybe(ToolChoice),
    thinking: Maybe(Thinking),
    output_config: Maybe(OutputConfig),
    context_management: Maybe(ContextManagement)
};

export const MessagesRequest = Type.Object({
    ...promptFields,
    max_tokens: Type.Integer({minimum: 1}),
    stop_sequences: Maybe(Type.Array(Type.String(), {maxItems: 16})),
    temperature: Maybe(Type.Number({minimum: 0, maximum: 2})),
    top_p: Maybe(Type.Number({minimum: 0, maximum: 1})),
    top_k: Maybe(Type.Integer({minimum: 0})),
    stream: Maybe(Type.Boolean()),
    /** Any shape: nothing here reads it. */
    metadata: Type.Optional(Type.Unknown())
});
export type MessagesRequest = Static<typeof MessagesRequest>;

export const CountTokensRequest = Type.Object(promptFields);
export type CountTokensRequest = Static<typeof CountTokensRequest>;
