import {findProjectorBeside, visionProjectorProblem} from "../models/findProjector.js";
import type {ModelToLoad} from "../native/engineTypes.js";
import {ConfigError} from "./config.js";
import type {ModelSpec} from "./config.js";

/**
 * The models to serve with their projectors: the one `--mmproj` (or the library entry) gives, which must be a vision
 * projector, else an `mmproj*.gguf` lying beside the model file; `--mmproj none` serves the model without one.
 */
export async function resolveProjectors(models: readonly ModelSpec[]): Promise<ModelToLoad[]> {
    const resolved: ModelToLoad[] = [];
    for (const {path, names, mmproj, draftModel} of models) {
        let projectorPath: string | undefined;
        if (typeof mmproj === "string") {
            const problem = await visionProjectorProblem(mmproj);
            if (problem != null)
                throw new ConfigError(`--mmproj ${mmproj} (for ${names[0]}) cannot be used: ${problem}`);
            projectorPath = mmproj;
        } else if (mmproj == null) {
            projectorPath = await findProjectorBeside(path);
        }
        resolved.push({path, names, ...projectorPath != null ? {projectorPath} : {}, ...draftModel != null ? {draftModelPath: draftModel} : {}});
    }
    return resolved;
}
