import {basename} from "node:path";
import {draftVocabularyMismatch} from "../native/draftVocabulary.js";
import type {ModelToLoad} from "../native/engineTypes.js";
import {ConfigError} from "./config.js";

/** Refuses, before anything loads, a `--draft-model` whose vocabulary does not match its model's, saying how. */
export async function checkDraftModels(models: readonly ModelToLoad[]): Promise<void> {
    for (const {path, names, draftModelPath} of models) {
        if (draftModelPath == null)
            continue;
        let mismatch: string | undefined;
        try {
            mismatch = await draftVocabularyMismatch(path, draftModelPath);
        } catch (error) {
            throw new ConfigError(`--draft-model ${draftModelPath} (for ${names[0]}) cannot be read: ${(error as Error).message}`);
        }
        if (mismatch != null)
            throw new ConfigError(`--draft-model ${basename(draftModelPath)} cannot draft for ${names[0]}: its vocabulary does not match the model's (${mismatch})`);
    }
}
