import type {Engine} from "../native/Engine.js";
import {chatAbilities} from "../native/chat/chatAbilities.js";

/** Ollama's words for what a model can do, in its order. */
export type Capability = "completion" | "vision" | "tools" | "thinking";

/**
 * What a served model can do, as `/api/show` and `/v1/models` list it: every model completes; it sees with a
 * projector; it takes tools and thinks as its chat format does. Nothing is loaded to find out.
 */
export async function modelCapabilities(engine: Engine, name: string): Promise<Capability[]> {
    const path = engine.pathOf(name);
    const chat = path != null ? await chatAbilities(path, engine.options.chatTemplate) : {tools: false, thinking: false};
    return [
        "completion",
        ...engine.projectorOf(name) != null ? ["vision" as const] : [],
        ...chat.tools ? ["tools" as const] : [],
        ...chat.thinking ? ["thinking" as const] : []
    ];
}
