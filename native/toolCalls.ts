import {randomBytes} from "node:crypto";
import type {ChatMessage, ToolCall, ToolChoice, ToolDefinition} from "./types.js";

/**
 * Hearth's tool-call format, the one Hermes and Qwen models are trained on: tools are listed in the
 * system prompt and a call is `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`. The JSON is
 * always generated under a grammar built from the tools' schemas, so a call always parses, names a
 * tool that exists and has arguments that match its schema, even on a model that never saw the format.
 */
export const TOOL_CALL_OPEN = "<tool_call>";
export const TOOL_CALL_CLOSE = "</tool_call>";

export function newToolCallId(): string {
    return "call_" + randomBytes(12).toString("base64url");
}

export function describeTools(definitions: readonly ToolDefinition[]): string {
    const signatures = definitions.map((tool) => JSON.stringify({
        type: "function",
        function: {name: tool.name, description: tool.description ?? "", parameters: tool.parameters ?? {type: "object", properties: {}}}
    }));
    return [
        "# Tools",
        "",
        "You can call functions to help answer the user. Their signatures are inside <tools></tools>:",
        "<tools>",
        ...signatures,
        "</tools>",
        "",
        "To call a function, reply with a JSON object holding its name and arguments inside <tool_call></tool_call> tags:",
        TOOL_CALL_OPEN,
        "{\"name\": <function-name>, \"arguments\": <arguments-json-object>}",
        TOOL_CALL_CLOSE
    ].join("\n");
}

export function renderToolCalls(calls: readonly ToolCall[]): string {
    return calls.map((call) => {
        let args: unknown = call.arguments;
        try {
            args = JSON.parse(call.arguments);
        } catch {
            // keep the string as the model or client wrote it
        }
        return `${TOOL_CALL_OPEN}\n${JSON.stringify({name: call.name, arguments: args})}\n${TOOL_CALL_CLOSE}`;
    }).join("\n");
}

export function renderToolResult(message: Extract<ChatMessage, {role: "tool"}>): string {
    return `<tool_response>\n${message.content}\n</tool_response>`;
}

/** The tools a call may name under a tool choice; empty when the model must not call any. */
export function callableTools(definitions: readonly ToolDefinition[], choice: ToolChoice): readonly ToolDefinition[] {
    if (choice === "none")
        return [];
    if (typeof choice === "object")
        return definitions.filter((tool) => tool.name === choice.name);
    return definitions;
}

/** The JSON schema a call's body must match: `{"name": <one of the tools>, "arguments": <its schema>}`. */
export function toolCallSchema(tools: readonly ToolDefinition[]): Record<string, unknown> {
    const variants = tools.map((tool) => ({
        type: "object",
        properties: {
            name: {const: tool.name},
            arguments: tool.parameters != null && Object.keys(tool.parameters).length > 0
                ? tool.parameters
                : {type: "object", properties: {}}
        }
    }));
    return variants.length === 1 ? variants[0]! : {oneOf: variants};
}

const callHeader = /^\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\S)/;
const callTail = /\s*\}?\s*$/;

/**
 * Reads a call's JSON body as it streams and reports the tool name as soon as it is complete, then
 * the arguments text piece by piece, the way OpenAI streams `tool_calls` deltas. The grammar fixes
 * the key order (`name`, then `arguments`), so the arguments are everything after the header but the
 * object's closing brace.
 */
export class ToolCallStreamParser {
    #buffer = "";
    #name: string | undefined;
    #argumentsStart = 0;
    #argumentsEmitted = 0;

    get name(): string | undefined {
        return this.#name;
    }

    push(text: string): {name?: string, arguments?: string} {
        this.#buffer += text;
        const result: {name?: string, arguments?: string} = {};
        if (this.#name == null) {
            const match = callHeader.exec(this.#buffer);
            if (match == null)
                return result;
            this.#name = JSON.parse(`"${match[1]}"`) as string;
            this.#argumentsStart = match[0].length;
            result.name = this.#name;
        }
        const region = this.#buffer.slice(this.#argumentsStart);
        const safeEnd = region.length - (callTail.exec(region)?.[0].length ?? 0);
        if (safeEnd > this.#argumentsEmitted) {
            result.arguments = region.slice(this.#argumentsEmitted, safeEnd);
            this.#argumentsEmitted = safeEnd;
        }
        return result;
    }

    /** The complete call once generation ended; `undefined` when the body never got as far as a name. */
    finish(): {name: string, arguments: string} | undefined {
        if (this.#name == null)
            return undefined;
        const region = this.#buffer.slice(this.#argumentsStart);
        return {name: this.#name, arguments: region.replace(callTail, "")};
    }
}
