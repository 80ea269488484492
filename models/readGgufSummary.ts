import {GgmlType, GgufFileType} from "node-llama-cpp";
import type {GgufValue} from "./readGgufHeader.js";
import {readGgufParts} from "./readModelShape.js";

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

const FILE_TYPE_OF_GGML_TYPE: Record<string, number | undefined> = {
    F32: GgufFileType.ALL_F32, F16: GgufFileType.MOSTLY_F16, BF16: GgufFileType.MOSTLY_BF16,
    Q4_0: GgufFileType.MOSTLY_Q4_0, Q4_1: GgufFileType.MOSTLY_Q4_1, Q5_0: GgufFileType.MOSTLY_Q5_0,
    Q5_1: GgufFileType.MOSTLY_Q5_1, Q8_0: GgufFileType.MOSTLY_Q8_0, Q6_K: GgufFileType.MOSTLY_Q6_K
};

/** Reads the header of a local GGUF file (and the tensor lists of the other parts of a split model); never touches the network. */
export async function readGgufSummary(path: string): Promise<GgufSummary> {
    const parts = await readGgufParts(path);
    const header = parts[0]!.header;
    const tensors = parts.flatMap((part) => part.header.tensors);

    const modelInfo: GgufSummary["modelInfo"] = {};
    for (const [key, value] of header.metadata)
        modelInfo[key] = toInfoValue(value);
    const architecture = typeof modelInfo["general.architecture"] === "string" ? modelInfo["general.architecture"] : undefined;
    const numberAt = (key: string) => typeof modelInfo[key] === "number" ? modelInfo[key] : undefined;
    let parameterCount = numberAt("general.parameter_count");
    if (parameterCount == null) {
        parameterCount = tensors.reduce((sum, tensor) => sum + tensor.dimensions.reduce((product, dimension) => product * dimension, 1), 0);
        modelInfo["general.parameter_count"] = parameterCount;
    }
    if (modelInfo["general.file_type"] == null) {
        // Old files do not say: the type most of the weights (matrices) are stored in says it for them.
        const counts = new Map<number, number>();
        for (const tensor of tensors.filter((candidate) => candidate.dimensions.length >= 2))
            counts.set(tensor.type, (counts.get(tensor.type) ?? 0) + 1);
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

/** A header value as `model_info` shows it: short arrays as JSON, long ones (the vocabulary) as null. */
function toInfoValue(value: GgufValue): string | number | boolean | null {
    if (typeof value === "bigint")
        return Number(value);
    if (Array.isArray(value))
        return JSON.stringify(value, (_, item: unknown) => typeof item === "bigint" ? Number(item) : item);
    if (typeof value === "object")
        return null;
    return value;
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
