/**
 * Quantization labels and split parts, read from GGUF file names the way the Hub's GGUF repos name them:
 * `Llama-3.2-1B-Instruct-Q4_K_M.gguf`, `model.IQ4_XS.gguf`, `Qwen-F16-00001-of-00003.gguf`.
 */

/** Longest labels first, so `Q4_K_M` wins over `Q4_K` and `IQ4_XS` over `IQ4`. */
const QUANT_PATTERN = new RegExp(
    "(?:^|[-_.\\s/])(" + [
        "IQ[1-4]_(?:XXS|XS|S|M|NL)",
        "Q[2-8]_K(?:_(?:XL|L|M|S))?",
        "Q[4-8]_[01](?:_[48]_[48])?",
        "TQ[12]_0",
        "MXFP4(?:_MOE)?",
        "BF16",
        "F16",
        "F32",
        "FP16",
        "FP32"
    ].join("|") + ")(?=$|[-_.\\s/])",
    "i"
);

const SPLIT_PATTERN = /-(\d{5})-of-(\d{5})\.gguf$/i;

/** The quantization in a GGUF file name, upper-cased (`Q4_K_M`), or undefined when the name has none. */
export function parseQuantization(fileName: string): string | undefined {
    const base = withoutSplitPart(fileName).replace(/\.gguf$/i, "");
    // The last match wins: `Q8_0-imatrix-Q4_K_M` is unlikely, but a repo name with `F16` before the quant is not.
    let found: string | undefined;
    let rest = base;
    for (;;) {
        const match = QUANT_PATTERN.exec(rest);
        if (match == null)
            break;
        found = match[1]!.toUpperCase();
        rest = rest.slice(match.index + match[0].length);
    }
    if (found === "FP16")
        return "F16";
    if (found === "FP32")
        return "F32";
    return found;
}

/** `{part: 1, of: 3}` for `…-00001-of-00003.gguf`, else undefined. */
export function parseSplitPart(fileName: string): {part: number, of: number} | undefined {
    const match = SPLIT_PATTERN.exec(fileName);
    return match == null ? undefined : {part: Number(match[1]), of: Number(match[2])};
}

/** The path a split model's parts share: `m-00002-of-00003.gguf` -> `m.gguf`; other paths as they are. */
export function withoutSplitPart(path: string): string {
    return path.replace(SPLIT_PATTERN, ".gguf");
}

/** The path of part `part` of `of`, as llama.cpp names split models: `m.gguf` or `m-00001-of-00003.gguf` -> `m-0000{part}-of-00003.gguf`. */
export function splitPartPath(path: string, part: number, of: number): string {
    const pad = (count: number) => String(count).padStart(5, "0");
    return withoutSplitPart(path).replace(/\.gguf$/i, `-${pad(part)}-of-${pad(of)}.gguf`);
}

/** Every file of a quantization, with its LFS hash; `files` are in part order. */
export type QuantFile = {path: string, sizeBytes: number, sha256: string};

export type QuantEntry = {
    /** `Q4_K_M`; files without a recognisable label use their base name. */
    quantization: string,
    /** The first file's path (part 1 of a split model). */
    path: string,
    files: QuantFile[],
    sizeBytes: number
};

/**
 * Groups a repo's GGUF files into quantizations: the parts of a split model become one entry with
 * their total size; incomplete split sets and projector files (`mmproj`) are left out.
 */
export function groupQuantizations(files: readonly QuantFile[]): QuantEntry[] {
    const groups = new Map<string, QuantFile[]>();
    for (const file of files) {
        const base = file.path.split("/").at(-1)!;
        if (!/\.gguf$/i.test(base) || /mmproj/i.test(base))
            continue;
        const key = file.path.replace(SPLIT_PATTERN, "");
        groups.set(key, [...groups.get(key) ?? [], file]);
    }
    const entries: QuantEntry[] = [];
    for (const [key, group] of groups) {
        const split = parseSplitPart(group[0]!.path);
        if (split != null) {
            group.sort((a, b) => parseSplitPart(a.path)!.part - parseSplitPart(b.path)!.part);
            const complete = group.length === split.of && group.every((file, index) => {
                const part = parseSplitPart(file.path);
                return part?.part === index + 1 && part.of === split.of;
            });
            if (!complete)
                continue;
        }
        const base = key.split("/").at(-1)!.replace(/\.gguf$/i, "");
        entries.push({
            quantization: parseQuantization(group[0]!.path) ?? base,
            path: group[0]!.path,
            files: group,
            sizeBytes: group.reduce((sum, file) => sum + file.sizeBytes, 0)
        });
    }
    return entries.sort((a, b) => a.sizeBytes - b.sizeBytes || a.path.localeCompare(b.path));
}

/** What `hf.co/owner/repo` without a tag pulls: a good quality-for-size default, as Ollama picks `Q4_K_M`. */
const DEFAULT_PREFERENCE = ["Q4_K_M", "Q4_K_S", "IQ4_XS", "Q4_0", "Q5_K_M", "Q4_1", "Q5_K_S", "Q5_0", "Q6_K", "Q8_0", "BF16", "F16", "F32"];

export function defaultQuantization<T extends {quantization?: string}>(entries: readonly T[]): T | undefined {
    for (const label of DEFAULT_PREFERENCE) {
        const entry = entries.find((candidate) => candidate.quantization === label);
        if (entry != null)
            return entry;
    }
    return entries[0];
}
