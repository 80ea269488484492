import type {LoadedModel} from "../../native/LoadedModel.js";
import type {ChatMessage} from "../../native/types.js";
import type {RequestOptions} from "../generation/toGenerationOptions.js";
import type {ResolvedPreset} from "./resolvePreset.js";

/**
 * A preset's chat around a request's: the request's own system prompt when it opens with one (Ollama lets the
 * request's replace the Modelfile's), else the preset's; then the preset's few-shot turns; then the request's turns.
 */
export function presetMessages(preset: ResolvedPreset, messages: readonly ChatMessage[]): ChatMessage[] {
    const leading = messages.findIndex((message) => message.role !== "system");
    const requestSystem = messages.slice(0, leading === -1 ? messages.length : leading);
    const system: ChatMessage[] = requestSystem.length > 0 ? requestSystem : preset.system != null ? [{role: "system", content: preset.system}] : [];
    return [...system, ...preset.messages, ...messages.slice(requestSystem.length)];
}

/** A preset's parameters as defaults: each setting the request gives wins, field by field. */
export function presetOptions({parameters}: ResolvedPreset, options: RequestOptions): RequestOptions {
    const sampling = options.sampling;
    return {
        ...options,
        maxTokens: options.maxTokens ?? (parameters.num_predict != null && parameters.num_predict > 0 ? parameters.num_predict : undefined),
        sampling: {
            ...sampling,
            temperature: sampling.temperature ?? parameters.temperature,
            topP: sampling.topP ?? parameters.top_p,
            topK: sampling.topK ?? parameters.top_k,
            minP: sampling.minP ?? parameters.min_p,
            repeatPenalty: sampling.repeatPenalty ?? parameters.repeat_penalty,
            seed: sampling.seed ?? (parameters.seed != null && parameters.seed >= 0 ? parameters.seed : undefined)
        },
        stop: options.stop.length > 0 ? options.stop : parameters.stop ?? []
    };
}

/**
 * The loaded model as a route sees it when the request names a preset: its chat prompts carry the preset's system
 * prompt and few-shot turns. Every route renders its chat through `chatPrompt`, so this one place serves them all;
 * a raw prompt (`textPrompt`) stays raw, as in Ollama.
 */
export function withPreset(model: LoadedModel, preset: ResolvedPreset): LoadedModel {
    return new Proxy(model, {
        get(target, property) {
            if (property === "chatPrompt")
                return (messages: readonly ChatMessage[], options?: Parameters<LoadedModel["chatPrompt"]>[1]) => target.chatPrompt(presetMessages(preset, messages), options);
            // Private fields are read through the model itself, not through the proxy.
            const value: unknown = Reflect.get(target, property, target);
            return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        }
    });
}
