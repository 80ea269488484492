import {GgmlType, GgufFileType, readGgufFileInfo} from "node-llama-cpp";

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

const FILE_TYPE_OF_GGML_TYPE: Record<string, number | undefined> = {
    F32: GgufFileType.ALL_F32, F16: GgufFileType.MOSTLY_F16, BF16: GgufFileType.MOSTLY_BF16,
    Q4_0: GgufFileType.MOSTLY_Q4_0, Q4_1: GgufFileType.MOSTLY_Q4_1, Q5_0: GgufFileType.MOSTLY_Q5_0,
    Q5_1: GgufFileType.MOSTLY_Q5_1, Q8_0: GgufFileType.MOSTLY_Q8_0, Q6_K: GgufFileType.MOSTLY_Q6_K
};

/** Reads the header of a local GGUF file (all parts of a split model); never touches the network. */
export async function readGgufSummary(path: string): Promise<GgufSummary> {
    const info = await readGgufFileInfo(path, {sourceType: "filesystem", logWarnings: false, ignoreKeys: ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"]});
    const modelInfo: GgufSummary["modelInfo"] = {};
    flatten(info.metadata as unknown as Record<string, unknown>, "", modelInfo);
    const architecture = typeof modelInfo["general.architecture"] === "string" ? modelInfo["general.architecture"] : undefined;
    const numberAt = (key: string) => typeof modelInfo[key] === "number" ? modelInfo[key] : undefined;
    const tensors = info.fullTensorInfo ?? info.tensorInfo ?? [];
    let parameterCount = numberAt("general.parameter_count");
    if (parameterCount == null) {
        parameterCount = 0;
        for (const tensor of tensors)
            parameterCount += tensor.dimensions.reduce<number>((product, dimension) => product * Number(dimension), 1);
        modelInfo["general.parameter_count"] = parameterCount;
    }
    if (modelInfo["general.file_type"] == null) {
        // Old files do not say: the type most of the weights (matrices) are stored in says it for them.
        const matrixTypes = tensors.filter((tensor) => tensor.dimensions.length >= 2).map((tensor) => tensor.ggmlType);
        const counts = new Map<number, number>();
        for (const type of matrixTypes)
            counts.set(type, (counts.get(type) ?? 0) + 1);
        const common = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
        const fileType = common != null ? FILE_TYPE_OF_GGML_TYPE[(GgmlType as unknown as Record<number, string>)[common] ?? ""] : undefined;
        if (fileType != null)
            modelInfo["general.file_type"] = fileType;
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
