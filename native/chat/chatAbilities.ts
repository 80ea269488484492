import {readGgufFileInfo, resolveChatWrapper} from "node-llama-cpp";
import {chatWrapperTypeFor} from "../chatTemplates.js";

/** What a model's chat format can do, as clients ask (Ollama's `capabilities`). */
export type ChatAbilities = {
    /** Its template takes tool definitions. */
    tools: boolean,
    /** Its format has a thought segment (`<think>`, gpt-oss's analysis channel, Gemma 4's thought channel). */
    thinking: boolean
};

/** The vocabulary is most of a header and says nothing about the chat format. */
const IGNORED_KEYS = ["tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"];
const known = new Map<string, Promise<ChatAbilities>>();

/**
 * What the chat format of the model file at `path` can do, without loading it: the same chat wrapper the engine
 * renders with (node-llama-cpp's, resolved from the header's template, or `chatTemplate`'s, as `--chat-template`
 * names it) says whether replies have thought segments; the template says whether it takes tools. Read once per
 * file and template; a file that cannot be read can do neither (and is read again next time).
 */
export function chatAbilities(path: string, chatTemplate?: string): Promise<ChatAbilities> {
    const key = `${chatTemplate ?? ""}\0${path}`;
    let abilities = known.get(key);
    if (abilities == null) {
        abilities = readAbilities(path, chatTemplate).catch(() => {
            known.delete(key);
            return {tools: false, thinking: false};
        });
        known.set(key, abilities);
    }
    return abilities;
}

async function readAbilities(path: string, chatTemplate: string | undefined): Promise<ChatAbilities> {
    const fileInfo = await readGgufFileInfo(path, {readTensorInfo: false, ignoreKeys: IGNORED_KEYS, logWarnings: false});
    const template = fileInfo.metadata.tokenizer?.chat_template;
    const type = chatTemplate != null ? chatWrapperTypeFor(chatTemplate) : undefined;
    if (template == null && type == null)
        return {tools: false, thinking: false};
    const wrapper = resolveChatWrapper({fileInfo, filename: path, warningLogs: false, ...type != null ? {type} : {}});
    return {
        tools: template != null ? /\btools\b/.test(template) : type != null,
        thinking: wrapper?.settings.segments?.thought != null
    };
}
