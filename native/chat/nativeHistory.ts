import type {ChatHistoryItem, ChatModelFunctionCall, ChatModelResponse} from "node-llama-cpp";
import type {ChatMessage} from "../types.js";

/** JSON text as its value; text that is not JSON as it is. */
export function parseJsonOrText(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}

/**
 * Turns chat messages into node-llama-cpp's chat history, so the model's chat wrapper renders them in its own
 * format: an assistant's tool calls become function calls carrying the results of the tool messages that answer
 * them (matched by call id, else by name, else in order), its reasoning a thought segment. The history ends in
 * the model turn that generation continues: a new one, or the one whose tool results just came in.
 */
export function toNativeHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
    const history: ChatHistoryItem[] = [];
    let waiting: {id: string | undefined, call: ChatModelFunctionCall}[] = [];
    const modelTurn = (): ChatModelResponse => {
        const last = history.at(-1);
        if (last?.type === "model")
            return last;
        const turn: ChatModelResponse = {type: "model", response: []};
        history.push(turn);
        return turn;
    };

    for (const message of messages) {
        switch (message.role) {
            case "system":
                history.push({type: "system", text: message.content});
                break;
            case "user": {
                const last = history.at(-1);
                if (last?.type === "user")
                    last.text += "\n" + message.content;
                else
                    history.push({type: "user", text: message.content});
                waiting = [];
                break;
            }
            case "assistant": {
                const turn = modelTurn();
                if (message.reasoning != null && message.reasoning !== "")
                    turn.response.push({type: "segment", segmentType: "thought", text: message.reasoning, ended: true});
                if (message.content !== "")
                    turn.response.push(message.content);
                (message.toolCalls ?? []).forEach((toolCall, index) => {
                    const call: ChatModelFunctionCall = {
                        type: "functionCall", name: toolCall.name, params: parseJsonOrText(toolCall.arguments), result: null, startsNewChunk: index === 0
                    };
                    turn.response.push(call);
                    waiting.push({id: toolCall.id, call});
                });
                break;
            }
            case "tool": {
                const answered = waiting.find((entry) => message.toolCallId != null && entry.id === message.toolCallId) ??
                    waiting.find((entry) => message.name != null && entry.call.name === message.name) ?? waiting[0];
                if (answered == null) {
                    // A result with no call before it: the model still gets to read it.
                    history.push({type: "user", text: message.content});
                    break;
                }
                answered.call.result = parseJsonOrText(message.content);
                waiting = waiting.filter((entry) => entry !== answered);
                break;
            }
        }
    }
    if (messages.at(-1)?.role !== "tool" || history.at(-1)?.type !== "model")
        history.push({type: "model", response: []});
    return history;
}
