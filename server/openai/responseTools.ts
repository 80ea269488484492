import {InvalidRequestError} from "../../native/errors.js";
import type {ToolCall, ToolDefinition} from "../../native/types.js";
import type {ResponseNamespaceMember, ResponseTool} from "./responseSchemas.js";

/**
 * The tools of a `/v1/responses` request as the model sees them: plain functions. OpenAI's API has more kinds, and
 * agents offer them (Codex: its sub-agent tools in a `namespace`, `apply_patch` as a `custom` tool), so each kind a
 * client runs itself becomes a function here, and the model's call to it goes back in the kind's own item:
 *
 * - a `namespace` offers each of its member tools under the member's own name (the name its descriptions and the
 *   rest of the prompt use), or `{namespace}__{name}` where that name is taken; a call comes back with `namespace`
 *   set, as OpenAI answers;
 * - a `custom` tool (free-form text input) is a function of one string, `input`; its grammar, if any, is told in the
 *   description rather than enforced; a call comes back as a `custom_tool_call` with that text;
 * - a `tool_search` the client runs (`execution: "client"`) is a function named `tool_search` with its parameters; a
 *   call comes back as a `tool_search_call`, and the tools a `tool_search_output` in the conversation loaded are
 *   offered from then on, as OpenAI does.
 *
 * Hosted tools (`web_search`, `file_search`, `image_generation`, a `tool_search` the server would run…) are left
 * out: Hearth has nothing to run them with, and agents offer them by default.
 */

/** What a model-visible function stands for. */
export type OfferedTool = {kind: "function" | "custom" | "tool_search", name: string, namespace?: string};

export const TOOL_SEARCH = "tool_search";

export type ResponseToolSet = {
    /** The functions the model is offered, with the request's `strict`. */
    readonly definitions: readonly (ToolDefinition & {strict: boolean})[],
    /** What the model's call of `modelName` is in the client's terms; a name the request did not offer is a function. */
    offered(modelName: string): OfferedTool,
    /** The name the model knows a tool by, for a call of it sent back as history. */
    modelName(tool: OfferedTool): string,
    /** The request's tools that reach the model, as a response echoes them. */
    readonly echoed: readonly object[]
};

const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/** The single string argument a custom tool's function takes. */
export const CUSTOM_INPUT = "input";

function checkedName(name: string | null | undefined, param: string): string {
    if (name == null || !TOOL_NAME.test(name))
        throw new InvalidRequestError(`${param} must be 1 to 64 letters, digits, underscores or dashes`, param);
    return name;
}

function customDescription(tool: ResponseTool | ResponseNamespaceMember): string | undefined {
    const format = tool.format;
    if (format == null || format.type !== "grammar" || typeof format.definition !== "string")
        return tool.description ?? undefined;
    const syntax = typeof format.syntax === "string" ? format.syntax : "grammar";
    const told = `The input is free text that follows this ${syntax} grammar:\n${format.definition}`;
    return tool.description != null && tool.description !== "" ? `${tool.description}\n\n${told}` : told;
}

const toolSearchParameters = {
    type: "object",
    properties: {query: {type: "string", description: "What the tools to find do."}},
    required: ["query"],
    additionalProperties: false
};

const customParameters = {
    type: "object",
    properties: {[CUSTOM_INPUT]: {type: "string", description: "The tool's whole input, as free text."}},
    required: [CUSTOM_INPUT],
    additionalProperties: false
};

/** The tools offered in a request and those loaded by tool searches, each with the field it came from. */
export type ToolSources = {tools: readonly ResponseTool[] | null | undefined, loaded?: readonly {tools: readonly ResponseTool[], param: string}[]};

/** The request's tools, checked, as functions the model can call. */
export function responseTools({tools, loaded = []}: ToolSources): ResponseToolSet {
    type Entry = {offered: OfferedTool, param: string, description?: string, parameters?: Record<string, unknown>, strict: boolean};
    const entries: Entry[] = [];
    const echoed: object[] = [];
    const keyOf = (tool: OfferedTool) => `${tool.namespace ?? ""}\u0000${tool.name}`;
    const member = (tool: ResponseTool | ResponseNamespaceMember, param: string, namespace?: string): Entry | undefined => {
        if (tool.type !== "function" && tool.type !== "custom")
            return undefined;
        const name = checkedName(tool.name, `${param}.name`);
        const offered: OfferedTool = {kind: tool.type, name, ...namespace != null ? {namespace} : {}};
        return tool.type === "function"
            ? {offered, param, description: tool.description ?? undefined, parameters: tool.parameters ?? undefined, strict: tool.strict ?? true}
            : {offered, param, description: customDescription(tool), parameters: customParameters, strict: true};
    };
    (tools ?? []).forEach((tool, index) => {
        const param = `tools.${index}`;
        if (tool.type === "namespace") {
            const namespace = checkedName(tool.name, `${param}.name`);
            const members = (tool.tools ?? []).flatMap((inner, innerIndex) => member(inner, `${param}.tools.${innerIndex}`, namespace) ?? []);
            if (members.length === 0)
                return;
            entries.push(...members);
            echoed.push({type: "namespace", name: namespace, description: tool.description ?? "", tools: tool.tools});
            return;
        }
        if (tool.type === TOOL_SEARCH) {
            if (tool.execution !== "client")
                return;
            entries.push({offered: {kind: "tool_search", name: TOOL_SEARCH}, param, description: tool.description ?? undefined,
                parameters: tool.parameters ?? toolSearchParameters, strict: true});
            echoed.push({type: TOOL_SEARCH, execution: "client", description: tool.description ?? null, parameters: tool.parameters ?? toolSearchParameters});
            return;
        }
        const entry = member(tool, param);
        if (entry == null)
            return;
        entries.push(entry);
        echoed.push(tool.type === "function"
            ? {type: "function", name: entry.offered.name, description: tool.description ?? null, parameters: tool.parameters ?? null, strict: entry.strict}
            : {type: "custom", name: entry.offered.name, description: tool.description ?? null, ...tool.format != null ? {format: tool.format} : {}});
    });
    // Tools a search loaded join those of the request; a client that also sends them in `tools` offers them once.
    const present = new Set(entries.map((entry) => keyOf(entry.offered)));
    for (const search of loaded) {
        search.tools.forEach((tool, index) => {
            const param = `${search.param}.${index}`;
            const found = tool.type === "namespace"
                ? (tool.tools ?? []).flatMap((inner, innerIndex) => member(inner, `${param}.tools.${innerIndex}`, checkedName(tool.name, `${param}.name`)) ?? [])
                : [member(tool, param)].filter((entry) => entry != null);
            for (const entry of found) {
                if (present.has(keyOf(entry.offered)))
                    continue;
                present.add(keyOf(entry.offered));
                entries.push(entry);
            }
        });
    }

    // Top-level tools keep their names; a namespace member takes its own name unless another tool has it.
    const counts = new Map<string, number>();
    for (const entry of entries)
        counts.set(entry.offered.name, (counts.get(entry.offered.name) ?? 0) + 1);
    const modelNames = new Map<string, string>();
    const byModelName = new Map<string, OfferedTool>();
    const definitions = entries.map((entry) => {
        const {offered} = entry;
        const modelName = offered.namespace != null && counts.get(offered.name)! > 1 ? `${offered.namespace}__${offered.name}` : offered.name;
        if (byModelName.has(modelName))
            throw new InvalidRequestError(`tools has two tools named "${modelName}"`, `${entry.param}.name`);
        byModelName.set(modelName, offered);
        modelNames.set(keyOf(offered), modelName);
        return {name: modelName, description: entry.description, parameters: entry.parameters, strict: entry.strict};
    });
    return {
        definitions,
        echoed,
        offered: (modelName) => byModelName.get(modelName) ?? {kind: "function", name: modelName},
        modelName: (tool) => modelNames.get(keyOf(tool)) ?? tool.name
    };
}

/** A custom tool call's text, from the arguments the model wrote for its function. */
export function customInput(call: Pick<ToolCall, "arguments">): string {
    try {
        const parsed = JSON.parse(call.arguments) as unknown;
        if (typeof parsed === "object" && parsed != null && typeof (parsed as Record<string, unknown>)[CUSTOM_INPUT] === "string")
            return (parsed as Record<string, string>)[CUSTOM_INPUT]!;
    } catch {
        // Not JSON: the model wrote the text itself.
    }
    return call.arguments;
}
