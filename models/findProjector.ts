import {readdir, stat} from "node:fs/promises";
import path from "node:path";
import {parseQuantization} from "./quantization.js";
import {readGgufHeader} from "./readGgufHeader.js";

/**
 * Projectors (mmproj GGUFs): what lets a model see images. A model file served alone finds its projector beside it;
 * a Hub repo lists them beside its quantizations.
 */

/**
 * A projector file's name as llama.cpp's converter and the Hub's GGUF repos write it: `mmproj-model-f16.gguf`,
 * `mmproj-Q8_0.gguf`, and a few put the model's name first (`Model-mmproj-f16.gguf`), as `groupQuantizations` reads them.
 */
export function isProjectorFileName(fileName: string): boolean {
    return /mmproj[^/]*\.gguf$/i.test(path.basename(fileName));
}

/**
 * Why a file is not a vision projector, or undefined when it is one: a GGUF of architecture `clip` with a vision
 * encoder. An audio-only projector (`clip.has_audio_encoder` alone) or any other GGUF is refused, so that a stray file
 * named `mmproj…` is never loaded beside a model.
 */
export async function visionProjectorProblem(file: string): Promise<string | undefined> {
    let metadata;
    try {
        metadata = (await readGgufHeader(file)).metadata;
    } catch (error) {
        return `it is not a GGUF file (${(error as Error).message})`;
    }
    const architecture = metadata.get("general.architecture");
    if (architecture !== "clip")
        return `it is a GGUF of architecture ${typeof architecture === "string" ? `"${architecture}"` : "unknown"}, not a projector (architecture "clip")`;
    const hasVision = metadata.get("clip.has_vision_encoder") === true || [...metadata.keys()].some((key) => key.startsWith("clip.vision."));
    return hasVision ? undefined : "it is a projector without a vision encoder";
}

/**
 * The projector to use among several of one model. Those whose name says they are for audio (`mmproj-…-audio-….gguf`)
 * come only when there is no other: a repo may publish an audio encoder's beside its vision one. Then, in order:
 * 1. one whose name carries the model's own base name (`mmproj-gemma-3-4b-it-f16.gguf` beside `gemma-3-4b-it-Q4_K_M.gguf`),
 *    when the folder holds projectors of several models;
 * 2. the smallest F16 or BF16 one: the precision projectors are published in (llama.cpp converts them to F16), and
 *    quantizing a projector costs more image understanding than quantizing the text weights, for little memory (a
 *    projector is a few hundred megabytes beside gigabytes of weights);
 * 3. else a Q8_0 one, close to F16 at half the size;
 * 4. else the smallest.
 * `modelFile` is the model's file name, for rule 1; a Hub pull leaves it out (a repo's projectors are all its model's).
 */
export function chooseProjector<T extends {path: string, sizeBytes: number}>(candidates: readonly T[], modelFile?: string): T | undefined {
    if (candidates.length <= 1)
        return candidates[0];
    let pool = [...candidates].sort((a, b) => a.sizeBytes - b.sizeBytes || a.path.localeCompare(b.path));
    const notAudio = pool.filter((candidate) => !/audio/i.test(path.basename(candidate.path)));
    if (notAudio.length > 0)
        pool = notAudio;
    const base = modelFile != null ? modelBaseName(modelFile) : "";
    if (base.length >= 3) {
        const named = pool.filter((candidate) => normalized(path.basename(candidate.path)).includes(base));
        if (named.length > 0)
            pool = named;
    }
    const precision = (candidate: T) => parseQuantization(path.basename(candidate.path));
    return pool.find((candidate) => precision(candidate) === "F16" || precision(candidate) === "BF16")
        ?? pool.find((candidate) => precision(candidate) === "Q8_0")
        ?? pool[0];
}

/** `gemma-3-4b-it-Q4_K_M-00001-of-00002.gguf` -> `gemma-3-4b-it`, lower-cased, for matching projector names. */
function modelBaseName(modelFile: string): string {
    const name = path.basename(modelFile).replace(/-\d{5}-of-\d{5}\.gguf$/i, "").replace(/\.gguf$/i, "");
    const quantization = parseQuantization(path.basename(modelFile));
    const withoutQuant = quantization != null ? name.replace(new RegExp(`[-_.]?${quantization}$`, "i"), "") : name;
    return normalized(withoutQuant);
}

const normalized = (name: string) => name.toLowerCase().replace(/[-_. ]+/g, "-");

/**
 * The vision projector lying beside a model file: an `mmproj*.gguf` in the same folder whose header says it is one
 * (see {@link chooseProjector} when several are). Undefined when there is none.
 */
export async function findProjectorBeside(modelPath: string): Promise<string | undefined> {
    const folder = path.dirname(modelPath);
    const names = await readdir(folder).catch(() => [] as string[]);
    const candidates: {path: string, sizeBytes: number}[] = [];
    for (const name of names.filter(isProjectorFileName)) {
        const file = path.join(folder, name);
        if (file === modelPath)
            continue;
        const sizeBytes = await stat(file).then((stats) => stats.isFile() ? stats.size : undefined, () => undefined);
        if (sizeBytes != null && await visionProjectorProblem(file) == null)
            candidates.push({path: file, sizeBytes});
    }
    return chooseProjector(candidates, modelPath)?.path;
}
