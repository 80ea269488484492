import type {PresetMessage, PresetParameters} from "../../models/index.js";
import {InvalidRequestError} from "../../native/errors.js";
import {addParameter} from "./presetParameters.js";

/** What a Modelfile says, before its `FROM` is resolved. */
export type ModelfileDraft = {
    from: string,
    system?: string,
    template?: string,
    parameters: PresetParameters,
    messages: PresetMessage[]
};

const ROLES = new Set(["system", "user", "assistant"]);
/** Instructions Ollama knows that Hearth cannot honour: refused by name rather than dropped. */
const UNSUPPORTED: Record<string, string> = {
    ADAPTER: "LoRA adapters are not supported",
    REQUIRES: "REQUIRES is not supported"
};

/**
 * Reads a Modelfile as Ollama writes them: one instruction a line (`FROM`, `SYSTEM`, `TEMPLATE`, `PARAMETER`,
 * `MESSAGE`, `LICENSE`), case-insensitive, `#` comments, and values in `"""` that may span lines or in `"`. Anything
 * else is a 400 that names the instruction and its line.
 */
export function parseModelfile(text: string): ModelfileDraft {
    const lines = text.replace(/\r\n?/g, "\n").split("\n");
    let from: string | undefined;
    const draft: Omit<ModelfileDraft, "from"> = {parameters: {}, messages: []};
    for (let index = 0; index < lines.length; index++) {
        const lineNumber = index + 1;
        const line = lines[index]!.trim();
        if (line === "" || line.startsWith("#"))
            continue;
        const match = /^(\S+)(?:\s+([\s\S]*))?$/.exec(line)!;
        const instruction = match[1]!.toUpperCase();
        const rest = match[2] ?? "";
        const where = `modelfile line ${lineNumber}`;
        // A """ value runs to the next """, over as many lines as it takes.
        const readValue = (raw: string): string => {
            if (raw.startsWith('"""')) {
                let body = raw.slice(3);
                while (!body.includes('"""')) {
                    index++;
                    if (index >= lines.length)
                        throw new InvalidRequestError(`${where}: the """ opened here is never closed`, "modelfile");
                    body += "\n" + lines[index]!;
                }
                const end = body.indexOf('"""');
                if (body.slice(end + 3).trim() !== "")
                    throw new InvalidRequestError(`${where}: text after the closing """`, "modelfile");
                return body.slice(0, end);
            }
            if (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"'))
                return raw.slice(1, -1);
            return raw;
        };
        switch (instruction) {
            case "FROM":
                if (rest === "")
                    throw new InvalidRequestError(`${where}: FROM needs a model name or a file`, "modelfile");
                from = readValue(rest);
                break;
            case "SYSTEM":
                draft.system = readValue(rest);
                break;
            case "TEMPLATE":
                draft.template = readValue(rest);
                break;
            case "LICENSE":
                readValue(rest);
                break;
            case "PARAMETER": {
                const parameter = /^(\S+)\s+([\s\S]+)$/.exec(rest);
                if (parameter == null)
                    throw new InvalidRequestError(`${where}: PARAMETER needs a name and a value`, "modelfile");
                addParameter(draft.parameters, parameter[1]!.toLowerCase(), readValue(parameter[2]!.trim()), where, "modelfile");
                break;
            }
            case "MESSAGE": {
                const message = /^(\S+)\s+([\s\S]+)$/.exec(rest);
                const role = message?.[1]!.toLowerCase();
                if (message == null || role == null || !ROLES.has(role))
                    throw new InvalidRequestError(`${where}: MESSAGE takes a role (system, user or assistant) and its text`, "modelfile");
                draft.messages.push({role: role as PresetMessage["role"], content: readValue(message[2]!.trim())});
                break;
            }
            default:
                throw new InvalidRequestError(UNSUPPORTED[instruction] != null
                    ? `${where}: ${UNSUPPORTED[instruction]}`
                    : `${where}: unknown instruction "${match[1]}"; a Modelfile takes FROM, SYSTEM, TEMPLATE, PARAMETER, MESSAGE and LICENSE`, "modelfile");
        }
    }
    if (from == null)
        throw new InvalidRequestError("The modelfile has no FROM line: say which model the preset runs on", "modelfile");
    return {from, ...draft};
}
