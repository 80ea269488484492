import type {ChatWrapper} from "node-llama-cpp";
import type {ChatMessage} from "../types.js";

const USER_PROBE = "Hearth probe: the user's turn.";
const SYSTEM_PROBE = "Hearth probe: a system turn after it.";

/**
 * Whether a chat wrapper renders a system turn that comes after the conversation has started where it comes.
 * Most do (Qwen, Llama 3, Harmony as a developer message, Gemma 4, ChatML, and the Jinja templates, which turn it
 * into user text where the template refuses it); some drop it (Muse) or move it in front of the whole
 * conversation (DeepSeek), which changes what the model reads and the prompt's cached prefix with every new one.
 */
export function rendersSystemTurnsInPlace(wrapper: ChatWrapper): boolean {
    try {
        const state = wrapper.generateContextState({
            chatHistory: [{type: "user", text: USER_PROBE}, {type: "system", text: SYSTEM_PROBE}, {type: "model", response: []}]
        });
        const text = state.contextText.toString();
        const user = text.indexOf(USER_PROBE);
        return user >= 0 && text.indexOf(SYSTEM_PROBE, user) > user;
    } catch {
        return false;
    }
}

/**
 * System messages after the first message of another role, as the user's text instead: in a
 * `<system-reminder>` block, as Claude Code itself resends them to a server that refuses system turns, so they
 * join the neighbouring user turn. The system messages in front stay the system prompt.
 */
export function systemTurnsAsReminders(messages: readonly ChatMessage[]): ChatMessage[] {
    const start = messages.findIndex((message) => message.role !== "system");
    if (start < 0)
        return [...messages];
    return messages.map((message, index) => index > start && message.role === "system"
        ? {role: "user", content: `<system-reminder>\n${message.content}\n</system-reminder>`}
        : message);
}
