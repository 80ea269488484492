import {readFile} from "node:fs/promises";
import path from "node:path";
import type {Library, Preset} from "../../models/index.js";
import {ConfigError} from "../config.js";
import {createPreset, isPath} from "./createPreset.js";
import {parseModelfile} from "./parseModelfile.js";

/**
 * `hearth create NAME -f FILE`: a preset from a Modelfile on this machine. A `FROM` file is the user's own to name
 * here: relative to the Modelfile, as Ollama reads it, and imported into the library first when it is outside the
 * data folder (as `hearth import` would), since the API takes files only from inside it.
 */
export async function createPresetFromModelfile(library: Library, name: string, file: string): Promise<Preset> {
    let text: string;
    try {
        text = await readFile(file, "utf8");
    } catch (error) {
        throw new ConfigError(`cannot read the Modelfile ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    const draft = parseModelfile(text);
    let from = draft.from;
    if (isPath(from)) {
        const absolute = path.resolve(path.dirname(path.resolve(file)), from);
        const owner = library.list().find((model) => library.filePaths(model).includes(absolute));
        from = owner?.name ?? (absolute.startsWith(library.home + path.sep) ? absolute : (await library.import(absolute)).name);
    }
    return createPreset(library, {name, ...draft, from}, {param: "modelfile"});
}
