import {parseModelName} from "../models/index.js";
import type {Library} from "../models/index.js";
import {ConfigError} from "./config.js";
import type {ModelSpec, ServeConfig} from "./config.js";

/**
 * Every model `--model` gives, files and names: a name stands for a library model's file, served (pinned) under
 * its library name and its alias. A name that is not in the library is refused, saying what to do; `hearth
 * serve` pulls Hub names before this runs, so only a mistyped name or an app started with a name never pulled
 * gets here. Two models served under one name are refused too.
 */
export function resolveModelNames(library: Library, {models, modelNames = []}: Pick<ServeConfig, "models" | "modelNames">): ModelSpec[] {
    const resolved = modelNames.map(({name, alias, mmproj}): ModelSpec => {
        const model = library.find(name);
        if (model == null) {
            const parsed = parseModelName(name);
            throw new ConfigError(parsed.kind === "hub"
                ? `--model ${name}: it is not in the library (${library.home}); pull it first with: hearth pull ${name}`
                : `--model ${name}: there is no such file, and no model of that name in the library (${library.home}); `
                    + "hearth ls lists the library, and a model on the Hub is named hf.co/{owner}/{repo}:{QUANT}");
        }
        // The entry says whether the model has a projector: its folder may hold another model's, which must not be taken.
        return {
            path: library.filePaths(model)[0]!,
            names: alias != null && alias !== model.name ? [model.name, alias] : [model.name],
            mmproj: mmproj ?? library.projectorPath(model) ?? false
        };
    });
    const all = [...models, ...resolved];
    const seen = new Set<string>();
    for (const name of all.flatMap((model) => model.names)) {
        if (seen.has(name))
            throw new ConfigError(`two models are served under the name "${name}"; give one of them an --alias`);
        seen.add(name);
    }
    return all;
}
