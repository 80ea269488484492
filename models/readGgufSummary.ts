import {GgufFileType, readGgufFileInfo} from "node-llama-cpp";

/** What a model's GGUF header says, as the registry keeps it. */
export type GgufSummary = {
    architecture: string | undefined,
    /** From `general.parameter_count`, else counted from the tensor shapes. */
    parameterCount: number,
    contextLength: number | undefined,
    layerCount: number | undefined,
    /** `tokenizer.chat_template`, when the file has one. */
    chatTemplate: string | undefined,
    /** Header keys and their values, as Ollama's `model_info` lists them; long arrays (the vocabulary) are left out. */
    modelInfo: Record<string, string | number | boolean | null>
};

const MAX_ARRAY_IN_INFO = 16;

/** Reads the header of a local GGUF file (all parts of a split model); never touches the network. */
export async function readGgufSummary(path: string): Promise<GgufSummary> {
    const info = await readGgufFileInfo(path, {sourceType: "filesystem", logWarnings: false, ignoreKeys: ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"]});
    const modelInfo: GgufSummary["modelInfo"] = {};
    flatten(info.metadata as unknown as Record<string, unknown>, "", modelInfo);
    const architecture = typeof modelInfo["general.architecture"] === "string" ? modelInfo["general.architecture"] : undefined;
    const numberAt = (key: string) => typeof modelInfo[key] === "number" ? modelInfo[key] : undefined;
    let parameterCount = numberAt("general.parameter_count");
    if (parameterCount == null) {
        parameterCount = 0;
        for (const tensor of info.fullTensorInfo ?? info.tensorInfo ?? [])
            parameterCount += tensor.dimensions.reduce<number>((product, dimension) => product * Number(dimension), 1);
        modelInfo["general.parameter_count"] = parameterCount;
    }
    const chatTemplate = typeof modelInfo["tokenizer.chat_template"] === "string" ? modelInfo["tokenizer.chat_template"] : undefined;
    delete modelInfo["tokenizer.chat_template"];
    return {
        architecture,
        parameterCount,
        contextLength: architecture != null ? numberAt(`${architecture}.context_length`) : undefined,
        layerCount: architecture != null ? numberAt(`${architecture}.block_count`) : undefined,
        chatTemplate,
        modelInfo
    };
}

function flatten(value: Record<string, unknown>, prefix: string, into: GgufSummary["modelInfo"]): void {
    for (const [key, child] of Object.entries(value)) {
        const path = prefix === "" ? key : `${prefix}.${key}`;
        if (typeof child === "bigint")
            into[path] = Number(child);
        else if (typeof child === "string" || typeof child === "number" || typeof child === "boolean")
            into[path] = child;
        else if (Array.isArray(child))
            into[path] = child.length <= MAX_ARRAY_IN_INFO ? JSON.stringify(child.map((item) => typeof item === "bigint" ? Number(item) : item)) : null;
        else if (child != null && typeof child === "object")
            flatten(child as Record<string, unknown>, path, into);
    }
}

/** `7.2B`, `260K`: parameter counts as Ollama shows them. */
export function formatParameterCount(count: number): string {
    if (count >= 1e9)
        return `${(count / 1e9).toFixed(count >= 1e10 ? 0 : 1)}B`;
    if (count >= 1e6)
        return `${(count / 1e6).toFixed(count >= 1e7 ? 0 : 1)}M`;
    if (count >= 1e3)
        return `${Math.round(count / 1e3)}K`;
    return String(count);
}

/** The quantization a header's `general.file_type` names (`Q4_K_M`, `F16`), for files whose name does not say. */
export function fileTypeName(fileType: unknown): string | undefined {
    if (typeof fileType !== "number")
        return undefined;
    const name = (GgufFileType as unknown as Record<number, string | undefined>)[fileType];
    return name?.replace(/^(MOSTLY|ALL)_/, "");
}
