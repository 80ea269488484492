import {randomBytes} from "node:crypto";
import type {ToolChoice, ToolDefinition} from "./types.js";

export function newToolCallId(): string {
    return "call_" + randomBytes(12).toString("base64url");
}

/** The tools a call may name under a tool choice; empty when the model must not call any. */
export function callableTools(definitions: readonly ToolDefinition[], choice: ToolChoice): readonly ToolDefinition[] {
    if (choice === "none")
        return [];
    if (typeof choice === "object")
        return definitions.filter((tool) => tool.name === choice.name);
    return definitions;
}
