import {InvalidModelNameError} from "./errors.js";

/**
 * Model names, as Ollama spells them for the Hub: `hf.co/{owner}/{repo}:{QUANT}`, or `hf.co/{owner}/{repo}`
 * for the repo's default quantization. A model imported from a file gets a short local name (`stories260k`).
 * Paths in the data folder are built from parsed names only, so a name can never reach outside it.
 */
export type ModelName =
    | {kind: "hub", owner: string, repo: string, quantization?: string}
    | {kind: "local", name: string};

const HUB_PREFIX = /^(?:hf\.co|huggingface\.co)\//i;
/** The Hub's own rule for user, organisation and repo names, less the characters that mean something in a path. */
const HUB_PART = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_-])?$/;
const QUANT_TAG = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const LOCAL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$/;

function checkPart(part: string, what: string, input: string): string {
    if (!HUB_PART.test(part) || part.includes(".."))
        throw new InvalidModelNameError(input, `the ${what} "${part}" is not a valid Hub name`);
    return part;
}

export function parseModelName(input: string): ModelName {
    const trimmed = input.trim();
    if (trimmed === "")
        throw new InvalidModelNameError(input, "it is empty");
    const unprefixed = trimmed.replace(/^https?:\/\//i, "");
    const colon = unprefixed.lastIndexOf(":");
    const hasTag = colon > unprefixed.lastIndexOf("/");
    const base = hasTag ? unprefixed.slice(0, colon) : unprefixed;
    let tag = hasTag ? unprefixed.slice(colon + 1) : undefined;
    if (tag != null && !QUANT_TAG.test(tag))
        throw new InvalidModelNameError(input, `the tag "${tag}" is not valid`);
    if (tag?.toLowerCase() === "latest")
        tag = undefined;

    if (HUB_PREFIX.test(base)) {
        const parts = base.replace(HUB_PREFIX, "").split("/");
        if (parts.length !== 2)
            throw new InvalidModelNameError(input, "a Hub model is named hf.co/{owner}/{repo} or hf.co/{owner}/{repo}:{QUANT}");
        return {kind: "hub", owner: checkPart(parts[0]!, "owner", input), repo: checkPart(parts[1]!, "repo", input), quantization: tag?.toUpperCase()};
    }
    if (tag != null)
        throw new InvalidModelNameError(input, "only Hub models (hf.co/{owner}/{repo}:{QUANT}) have a tag");
    if (!LOCAL_NAME.test(base) || base.includes(".."))
        throw new InvalidModelNameError(input, "a local model name is letters, digits, '.', '_' and '-'");
    return {kind: "local", name: base};
}

export function formatModelName(name: ModelName): string {
    if (name.kind === "local")
        return name.name;
    return `hf.co/${name.owner}/${name.repo}` + (name.quantization != null ? `:${name.quantization}` : "");
}

/** A local name for an imported file: its base name without `.gguf`, cut down to the characters names allow. */
export function localNameFor(fileName: string): string {
    const base = fileName.split(/[\\/]/).at(-1)!.replace(/\.gguf$/i, "");
    const cleaned = base.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^[^A-Za-z0-9]+/, "").replace(/\.{2,}/g, ".").slice(0, 80);
    return cleaned === "" ? "model" : cleaned;
}
