import Type from "typebox";
import type {Static} from "typebox";
import {JsonObject, Maybe, ReasoningEffort} from "./schemas.js";

/**
 * The request of `/v1/responses` (OpenAI's Responses API). Input items are checked loosely here and one by one in
 * `responseInput.ts`, which names the exact field (`input.2.call_id`) of an item it cannot read.
 */

/** A text part of a message (`input_text`, or `output_text` in an assistant message sent back); other parts are refused by name. */
const ContentPart = Type.Object({
    type: Type.String(),
    text: Maybe(Type.String()),
    /** An `input_image`'s data URI (or http(s) URL, fetched only with `--allow-remote-images`); `detail` has no effect here. */
    image_url: Maybe(Type.String()),
    detail: Maybe(Type.String()),
    file_id: Maybe(Type.String())
});

const ToolFields = {
    type: Type.String(),
    name: Maybe(Type.String()),
    description: Maybe(Type.String()),
    parameters: Maybe(JsonObject),
    strict: Maybe(Type.Boolean()),
    /** A custom tool's input format: `{type: "text"}` or `{type: "grammar", syntax, definition}`. */
    format: Maybe(JsonObject),
    /** Who runs a `tool_search`: `client` (Codex) or `server` (OpenAI's). */
    execution: Maybe(Type.String())
};

/** A function or custom tool inside a namespace. */
const NamespaceMember = Type.Object(ToolFields);
export type ResponseNamespaceMember = Static<typeof NamespaceMember>;

/**
 * A tool: a function (`{type: "function", name, description, parameters, strict}`), a custom tool
 * (`{type: "custom", name, description, format}`), a namespace of them (`{type: "namespace", name, description,
 * tools}`) or a search for more tools that the client runs (`{type: "tool_search", execution: "client", description,
 * parameters}`), checked in `responseTools.ts`, which says how each reaches the model; OpenAI's hosted tools such as
 * `web_search` are left out there, as local servers do, since agents offer them by default and Hearth has nothing
 * to run them with.
 */
const Tool = Type.Object({...ToolFields, tools: Maybe(Type.Array(NamespaceMember))});
export type ResponseTool = Static<typeof Tool>;

const InputItem = Type.Object({
    /**
     * `message` (may be left out when `role` is given), `function_call`, `function_call_output`, `custom_tool_call`,
     * `custom_tool_call_output`, `tool_search_call`, `tool_search_output` or `reasoning`.
     */
    type: Maybe(Type.String()),
    id: Maybe(Type.String()),
    role: Maybe(Type.Union([Type.Literal("user"), Type.Literal("system"), Type.Literal("developer"), Type.Literal("assistant")])),
    content: Maybe(Type.Union([Type.String(), Type.Array(ContentPart)])),
    call_id: Maybe(Type.String()),
    name: Maybe(Type.String()),
    /** The namespace tool a call's function belongs to. */
    namespace: Maybe(Type.String()),
    /** A string of JSON; a `tool_search_call`'s is the object itself. */
    arguments: Maybe(Type.Union([Type.String(), JsonObject])),
    /** A `tool_search_call`'s `client` or `server`. */
    execution: Maybe(Type.String()),
    /** The tools a `tool_search_output` loaded, offered to the model from then on. */
    tools: Maybe(Type.Array(Tool)),
    /** A custom tool call's free-form input. */
    input: Maybe(Type.String()),
    output: Maybe(Type.Union([Type.String(), Type.Array(ContentPart)])),
    summary: Maybe(Type.Array(ContentPart)),
    /** A reasoning item's thinking as Hearth sealed it (`include: ["reasoning.encrypted_content"]`). */
    encrypted_content: Maybe(Type.String()),
    status: Maybe(Type.String())
});
export type ResponseInputItem = Static<typeof InputItem>;


const ToolChoice = Type.Union([
    Type.Literal("auto"), Type.Literal("none"), Type.Literal("required"),
    Type.Object({type: Type.Union([Type.Literal("function"), Type.Literal("custom")]), name: Type.String(), namespace: Maybe(Type.String())})
]);

const TextFormat = Type.Union([
    Type.Object({type: Type.Literal("text")}),
    Type.Object({type: Type.Literal("json_object")}),
    Type.Object({
        type: Type.Literal("json_schema"),
        name: Maybe(Type.String()),
        description: Maybe(Type.String()),
        schema: JsonObject,
        strict: Maybe(Type.Boolean())
    })
]);

export const ResponseRequest = Type.Object({
    model: Type.String({minLength: 1}),
    input: Type.Union([Type.String(), Type.Array(InputItem)]),
    instructions: Maybe(Type.String()),
    tools: Maybe(Type.Array(Tool)),
    tool_choice: Maybe(ToolChoice),
    parallel_tool_calls: Maybe(Type.Boolean()),
    max_output_tokens: Maybe(Type.Integer({minimum: 1})),
    temperature: Maybe(Type.Number({minimum: 0, maximum: 2})),
    top_p: Maybe(Type.Number({minimum: 0, maximum: 1})),
    text: Maybe(Type.Object({format: Maybe(TextFormat)})),
    reasoning: Maybe(Type.Object({effort: Maybe(ReasoningEffort), summary: Maybe(Type.String())})),
    /** Extra output to include; Hearth fills `reasoning.encrypted_content` and takes the others as no-ops. */
    include: Maybe(Type.Array(Type.String())),
    stream: Maybe(Type.Boolean()),
    /** Defaults to `true`, as OpenAI's. */
    store: Maybe(Type.Boolean()),
    previous_response_id: Maybe(Type.String({minLength: 1})),
    metadata: Maybe(Type.Record(Type.String(), Type.String())),
    /** Sampling fields local servers take besides OpenAI's. */
    top_k: Maybe(Type.Integer({minimum: 0})),
    seed: Maybe(Type.Integer())
});
export type ResponseRequest = Static<typeof ResponseRequest>;

export const ResponseIdParams = Type.Object({id: Type.String({minLength: 1, maxLength: 200})});
export type ResponseIdParams = Static<typeof ResponseIdParams>;
