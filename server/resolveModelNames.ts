import {isAbsolute} from "node:path";
import {parseModelName} from "../models/index.js";
import type {Library} from "../models/index.js";
import {ConfigError} from "./config.js";
import type {ModelSpec, ServeConfig} from "./config.js";

/**
 * Every model `--model` gives, files and names: a name stands for a library model's file, served (pinned) under
 * its library name and its alias. A name that is not in the library is refused, saying what to do; `hearth
 * serve` pulls Hub names before this runs, so only a mistyped name or an app started with a name never pulled
 * gets here. Two models served under one name are refused too. A `--draft-model` given by name becomes its library
 * file's path in the same way.
 */
export function resolveModelNames(library: Library, {models, modelNames = []}: Pick<ServeConfig, "models" | "modelNames">): ModelSpec[] {
    const find = (flag: string, name: string) => {
        const model = library.find(name);
        if (model == null) {
            const parsed = parseModelName(name);
            throw new ConfigError(parsed.kind === "hub"
                ? `${flag} ${name}: it is not in the library (${library.home}); pull it first with: hearth pull ${name}`
                : `${flag} ${name}: there is no such file, and no model of that name in the library (${library.home}); `
                    + "hearth ls lists the library, and a model on the Hub is named hf.co/{owner}/{repo}:{QUANT}");
        }
        return model;
    };
    const draftPath = (draftModel: string | undefined) => draftModel == null || isAbsolute(draftModel)
        ? draftModel : library.filePaths(find("--draft-model", draftModel))[0]!;
    const resolved = modelNames.map(({name, alias, mmproj, draftModel}): ModelSpec => {
        const model = find("--model", name);
        const draft = draftPath(draftModel);
        // The entry says whether the model has a projector: its folder may hold another model's, which must not be taken.
        return {
            path: library.filePaths(model)[0]!,
            names: alias != null && alias !== model.name ? [model.name, alias] : [model.name],
            mmproj: mmproj ?? library.projectorPath(model) ?? false,
            ...draft != null ? {draftModel: draft} : {}
        };
    });
    const all = [...models.map((model) => {
        const draft = draftPath(model.draftModel);
        return draft != null ? {...model, draftModel: draft} : model;
    }), ...resolved];
    const seen = new Set<string>();
    for (const name of all.flatMap((model) => model.names)) {
        if (seen.has(name))
            throw new ConfigError(`two models are served under the name "${name}"; give one of them an --alias`);
        seen.add(name);
    }
    return all;
}
