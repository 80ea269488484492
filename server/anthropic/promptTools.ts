import {InvalidRequestError} from "../../native/errors.js";
import type {ContentBlock, MessageParam, ToolParam} from "./anthropicSchemas.js";

/**
 * Which of a request's tools are in the prompt. A deferred tool (`defer_loading`) is left out, as Anthropic leaves it
 * out, until a tool result loads it with a `tool_reference` block (a tool search's answer). A system turn's
 * `tool_addition` and `tool_removal` blocks offer a tool (one of `tools` by name, or a `tool_definition`) or
 * withdraw one; the prompt's tools are those offered at the end of the conversation.
 */

export type PromptTool = {tool: ToolParam, param: string};

/** Blocks of a system turn that change the tools rather than say something. */
export const TOOL_CHANGES: ReadonlySet<string> = new Set(["tool_addition", "tool_removal"]);

type ToolChange = {type?: unknown, name?: unknown, definition?: unknown};

function changedTool(block: ContentBlock, param: string): ToolChange {
    const tool = block.tool;
    if (tool == null || typeof tool !== "object")
        throw new InvalidRequestError(`${param}.tool is missing: a ${block.type} block names its tool`, `${param}.tool`);
    const change = tool as ToolChange;
    if (change.type === "mcp_tool_reference" || change.type === "mcp_toolset_reference")
        throw new InvalidRequestError(`${param}.tool is an MCP server's tool, which this server does not connect to; declare it in tools instead`, `${param}.tool.type`);
    return change;
}

export function promptTools(tools: readonly ToolParam[], messages: readonly MessageParam[]): PromptTool[] {
    const declared = new Map(tools.map((tool, index) => [tool.name, {tool, param: `tools[${index}]`}]));
    const offered = new Map<string, PromptTool>(tools.flatMap((tool, index) => tool.defer_loading === true ? [] : [[tool.name, {tool, param: `tools[${index}]`}]]));
    const offer = (name: string, param: string) => {
        const tool = declared.get(name);
        if (tool == null)
            throw new InvalidRequestError(`${param} names the tool "${name}", which is not in tools`, param);
        offered.set(name, tool);
    };
    messages.forEach((message, messageIndex) => {
        if (typeof message.content === "string" || message.content == null)
            return;
        message.content.forEach((block, blockIndex) => {
            const param = `messages[${messageIndex}].content[${blockIndex}]`;
            if (block.type === "tool_result" && Array.isArray(block.content)) {
                for (const part of block.content)
                    if (part.type === "tool_reference" && part.tool_name != null && declared.has(part.tool_name))
                        offered.set(part.tool_name, declared.get(part.tool_name)!);
            } else if (message.role === "system" && block.type === "tool_addition") {
                const change = changedTool(block, param);
                if (change.type === "tool_definition") {
                    const definition = change.definition as ToolParam | undefined;
                    if (definition == null || typeof definition !== "object" || typeof definition.name !== "string" || definition.name === "")
                        throw new InvalidRequestError(`${param}.tool.definition must be a tool with its name`, `${param}.tool.definition`);
                    declared.set(definition.name, {tool: definition, param: `${param}.tool.definition`});
                    offered.set(definition.name, declared.get(definition.name)!);
                } else
                    offer(String(change.name ?? ""), `${param}.tool.name`);
            } else if (message.role === "system" && block.type === "tool_removal")
                offered.delete(String(changedTool(block, param).name ?? ""));
        });
    });
    return [...offered.values()];
}
