import type {Library, Preset, PresetMessage, PresetParameters} from "../../models/index.js";
import {InvalidRequestError} from "../../native/errors.js";

/** A preset with its chain of bases followed down to the model it runs on, each preset's settings over its base's. */
export type ResolvedPreset = {
    name: string,
    /** The model the preset runs on: a library model's or a `--model` name, never a preset's. */
    model: string,
    system?: string,
    template?: string,
    parameters: PresetParameters,
    messages: PresetMessage[]
};

/** Presets built on presets: deeper than this is a loop or a mistake. */
const MAX_DEPTH = 16;

/**
 * The preset a name refers to, resolved to its model, or undefined when the name is no preset. A preset's own
 * settings win over its base preset's; its few-shot messages replace its base's when it has any, as Ollama's do.
 */
export function resolvePreset(library: Library, name: string): ResolvedPreset | undefined {
    const chain: Preset[] = [];
    for (let current = library.presets.get(name); current != null; current = library.presets.get(current.base)) {
        if (chain.length >= MAX_DEPTH || chain.some((preset) => preset.name.toLowerCase() === current!.name.toLowerCase()))
            throw new InvalidRequestError(`The preset "${name}" is built on itself through ${chain.map((preset) => preset.name).join(" -> ")}`, "model");
        chain.push(current);
    }
    if (chain.length === 0)
        return undefined;
    const resolved: ResolvedPreset = {name: chain[0]!.name, model: chain.at(-1)!.base, parameters: {}, messages: []};
    for (const preset of chain.toReversed()) {
        resolved.parameters = {...resolved.parameters, ...preset.parameters};
        if (preset.system != null)
            resolved.system = preset.system;
        if (preset.template != null)
            resolved.template = preset.template;
        if (preset.messages.length > 0)
            resolved.messages = preset.messages;
    }
    return resolved;
}
