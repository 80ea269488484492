import {realpath, stat} from "node:fs/promises";
import path from "node:path";
import {parseModelName} from "../../models/index.js";
import type {Library, Preset, PresetMessage, PresetParameters} from "../../models/index.js";
import {InvalidModelNameError, ModelExistsError} from "../../models/errors.js";
import {InvalidRequestError} from "../../native/errors.js";

/** A preset as a request or a Modelfile asks for it; `from` is not yet resolved. */
export type PresetRequest = {
    name: string,
    from: string,
    system?: string,
    template?: string,
    parameters: PresetParameters,
    messages: PresetMessage[]
};

/** Whether a Modelfile's `FROM` names a file rather than a model: a path, or a `.gguf` file's name. */
export function isPath(from: string): boolean {
    return /^(\/|\.{1,2}[\\/]|~|[A-Za-z]:[\\/])/.test(from) || /\.gguf$/i.test(from);
}

/**
 * The model or preset a `FROM` names, as the name a preset keeps. A file is taken only from inside the data folder
 * (relative paths start there): a library model's file stands for that model, and another GGUF there is imported.
 * Nothing outside the data folder is read because of a request.
 */
async function resolveFrom(library: Library, from: string, param: string, served: (name: string) => boolean): Promise<string> {
    if (isPath(from)) {
        const home = await realpath(library.home);
        const asked = path.resolve(home, from.replace(/^~(?=[\\/]|$)/, "/nonexistent-home"));
        const absolute = await realpath(asked).catch(() => asked);
        if (!absolute.startsWith(home + path.sep))
            throw new InvalidRequestError(`FROM ${from}: a preset can be made from a file only inside Hearth's data folder (${home}); import the file first with hearth import, then name the model`, param);
        if (!await stat(absolute).then((stats) => stats.isFile(), () => false))
            throw new InvalidRequestError(`FROM ${from}: there is no such file in the data folder`, param);
        const owner = library.list().find((model) => library.filePaths(model).includes(absolute));
        return owner?.name ?? (await library.import(absolute)).name;
    }
    const preset = library.presets.get(from);
    if (preset != null)
        return preset.name;
    const model = library.find(from);
    if (model != null)
        return model.name;
    if (served(from))
        return from;
    throw new InvalidRequestError(`FROM ${from}: there is no model or preset of that name; hearth ls lists them, and hearth pull brings a model from the Hub`, param);
}

/**
 * Creates or replaces a preset. Its name is a local model name that no library model has; its base must exist now
 * (a preset follows its base when it is used, so deleting the base later leaves a preset that says so when used).
 * `served`: whether a name is served otherwise (a `--model` file).
 */
export async function createPreset(library: Library, request: PresetRequest, {served = () => false, param = "from"}: {served?: (name: string) => boolean, param?: string} = {}): Promise<Preset> {
    const parsed = parseModelName(request.name);
    if (parsed.kind !== "local")
        throw new InvalidModelNameError(request.name, "a preset gets a short local name (letters, digits, '.', '_' and '-'), not an hf.co name");
    const name = parsed.name;
    if (library.find(name) != null || (library.presets.get(name) == null && served(name)))
        throw new ModelExistsError(name);
    const base = await resolveFrom(library, request.from, param, served);
    // Following the base down its presets must not come back to this name.
    for (let current: string | undefined = base, depth = 0; current != null && depth < 64; current = library.presets.get(current)?.base, depth++) {
        if (current.toLowerCase() === name.toLowerCase())
            throw new InvalidRequestError(`FROM ${request.from}: a preset cannot be built on itself`, param);
    }
    const preset: Preset = {
        name, base,
        ...request.system != null ? {system: request.system} : {},
        ...request.template != null ? {template: request.template} : {},
        parameters: request.parameters,
        messages: request.messages,
        mcpServers: [],
        createdAt: new Date().toISOString()
    };
    library.presets.put(preset);
    return preset;
}
