import type {ResolvableChatWrapperTypeName} from "node-llama-cpp";

/** `--chat-template` names (llama.cpp's spellings) and the node-llama-cpp chat wrapper each selects. */
const chatTemplates: Readonly<Record<string, ResolvableChatWrapperTypeName>> = {
    chatml: "chatML",
    llama2: "llama2Chat",
    llama3: "llama3",
    "llama3.1": "llama3.1",
    mistral: "mistral",
    gemma: "gemma",
    qwen: "qwen",
    deepseek: "deepSeek",
    alpaca: "alpacaChat",
    falcon: "falconChat",
    functionary: "functionary",
    general: "general"
};

export const CHAT_TEMPLATE_NAMES: readonly string[] = Object.keys(chatTemplates);

export function chatWrapperTypeFor(name: string): ResolvableChatWrapperTypeName | undefined {
    return chatTemplates[name.toLowerCase()];
}
