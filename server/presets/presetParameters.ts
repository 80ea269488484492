import type {PresetParameters} from "../../models/index.js";
import {InvalidRequestError} from "../../native/errors.js";

type NumberParameter = Exclude<keyof PresetParameters, "stop">;

/** Each parameter a preset takes, with the values it allows. */
const NUMBERS: Record<NumberParameter, {integer: boolean, min?: number, max?: number}> = {
    temperature: {integer: false, min: 0},
    top_p: {integer: false, min: 0, max: 1},
    top_k: {integer: true, min: 0},
    min_p: {integer: false, min: 0, max: 1},
    repeat_penalty: {integer: false, min: 0},
    seed: {integer: true},
    num_ctx: {integer: true, min: 1},
    num_predict: {integer: true}
};

export const PARAMETER_NAMES: readonly string[] = [...Object.keys(NUMBERS), "stop"];

function isNumberParameter(name: string): name is NumberParameter {
    return Object.hasOwn(NUMBERS, name);
}

/**
 * Adds one parameter to `into`, checked: a value given as text (a Modelfile's) or as JSON (the structured request's).
 * `where` says where it came from in the error ("line 3", "parameters"). `stop` adds to the stops already there.
 */
export function addParameter(into: PresetParameters, name: string, value: unknown, where: string, param: string): void {
    if (name === "stop") {
        const stops = Array.isArray(value) ? value : [value];
        if (!stops.every((stop): stop is string => typeof stop === "string" && stop !== ""))
            throw new InvalidRequestError(`${where}: the parameter stop takes text, got ${JSON.stringify(value)}`, param);
        into.stop = [...into.stop ?? [], ...stops];
        return;
    }
    if (!isNumberParameter(name))
        throw new InvalidRequestError(`${where}: unknown parameter "${name}"; a preset takes ${PARAMETER_NAMES.join(", ")}`, param);
    const rule = NUMBERS[name];
    const number = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    if (typeof number !== "number" || !Number.isFinite(number) || (rule.integer && !Number.isInteger(number))
        || (rule.min != null && number < rule.min) || (rule.max != null && number > rule.max)) {
        const range = rule.min != null && rule.max != null ? ` from ${rule.min} to ${rule.max}` : rule.min != null ? ` of at least ${rule.min}` : "";
        throw new InvalidRequestError(`${where}: the parameter ${name} takes ${rule.integer ? "a whole number" : "a number"}${range}, got ${JSON.stringify(value)}`, param);
    }
    into[name] = number;
}

/** The parameters of a structured `/api/create` request. */
export function parametersFrom(parameters: Record<string, unknown> | null | undefined): PresetParameters {
    const result: PresetParameters = {};
    for (const [name, value] of Object.entries(parameters ?? {}))
        addParameter(result, name, value, `parameters.${name}`, "parameters");
    return result;
}

/** Parameters as `/api/show` gives them: one `name value` a line, names padded as Ollama pads them. */
export function parametersText(parameters: PresetParameters): string {
    const lines: string[] = [];
    for (const [name, value] of Object.entries(parameters)) {
        for (const item of Array.isArray(value) ? value : [value])
            lines.push(`${name.padEnd(30)} ${typeof item === "string" ? JSON.stringify(item) : String(item)}`);
    }
    return lines.join("\n");
}
