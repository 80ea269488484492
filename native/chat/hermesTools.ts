import {LlamaText} from "node-llama-cpp";
import type {ChatHistoryItem} from "node-llama-cpp";
import type {ChatMessage, ToolCall, ToolDefinition} from "../types.js";

/**
 * Hearth's tool-call format for models whose template has no tool support: the one Hermes and Qwen models are
 * trained on. Tools are listed in the system prompt; a call is `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`;
 * past calls and results are written as text, so any chat template carries them.
 */
export const HERMES_CALL = {
    optionalPrefixSpace: true,
    prefix: LlamaText("<tool_call>\n{\"name\": \""),
    paramsPrefix: LlamaText("\", \"arguments\": "),
    suffix: LlamaText("}\n</tool_call>"),
    prefixAlternateMatches: undefined as undefined | string[]
};

function describeTools(definitions: readonly ToolDefinition[]): string {
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
        "<tool_call>",
        "{\"name\": <function-name>, \"arguments\": <arguments-json-object>}",
        "</tool_call>"
    ].join("\n");
}

function renderToolCalls(calls: readonly ToolCall[]): string {
    return calls.map((call) => {
        let args: unknown = call.arguments;
        try {
            args = JSON.parse(call.arguments);
        } catch {
            // keep the string as the model or client wrote it
        }
        return `<tool_call>\n${JSON.stringify({name: call.name, arguments: args})}\n</tool_call>`;
    }).join("\n");
}

/** Chat messages as node-llama-cpp's chat history, with tools, calls and results written in the Hermes format. */
export function toHermesHistory(messages: readonly ChatMessage[], tools: readonly ToolDefinition[]): ChatHistoryItem[] {
    const history: ChatHistoryItem[] = [];
    if (tools.length > 0) {
        const toolText = describeTools(tools);
        const firstSystem = messages[0]?.role === "system" ? messages[0].content : undefined;
        history.push({type: "system", text: firstSystem != null ? `${firstSystem}\n\n${toolText}` : toolText});
        if (firstSystem != null)
            messages = messages.slice(1);
    }

    for (const message of messages) {
        const last = history.at(-1);
        switch (message.role) {
            case "system":
                history.push({type: "system", text: message.content});
                break;
            case "user":
            case "tool": {
                const text = message.role === "tool" ? `<tool_response>\n${message.content}\n</tool_response>` : message.content;
                if (last?.type === "user")
                    last.text += "\n" + text;
                else
                    history.push({type: "user", text});
                break;
            }
            case "assistant": {
                const text = [message.content, message.toolCalls?.length ? renderToolCalls(message.toolCalls) : ""].filter(Boolean).join("\n");
                if (last?.type === "model")
                    last.response.push(text);
                else
                    history.push({type: "model", response: [text]});
                break;
            }
        }
    }
    history.push({type: "model", response: []});
    return history;
}
