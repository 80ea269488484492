import type {ChatHistoryItem} from "node-llama-cpp";
import {describeTools, renderToolCalls, renderToolResult} from "./toolCalls.js";
import type {ChatMessage, ToolDefinition} from "./types.js";

/**
 * Turns chat messages into node-llama-cpp's chat history, ending in the open model turn that
 * generation continues. Tool descriptions join the system prompt; tool calls and results are
 * written in Hearth's tool-call format (see `toolCalls.ts`), so any chat template can carry them.
 */
export function toChatHistory(messages: readonly ChatMessage[], tools: readonly ToolDefinition[] = []): ChatHistoryItem[] {
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
                const text = message.role === "tool" ? renderToolResult(message) : message.content;
                if (last?.type === "user")
                    last.text += "\n" + text;
                else
                    history.push({type: "user", text});
                break;
            }
            case "assistant": {
                const parts = [message.content, message.toolCalls?.length ? renderToolCalls(message.toolCalls) : ""].filter(Boolean);
                const text = parts.join("\n");
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
