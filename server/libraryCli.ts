import {parseArgs} from "node:util";
import {HubClient, Library, formatBytes, formatParameterCount} from "../models/index.js";
import type {PullProgress} from "../models/index.js";
import {ConfigError, hubConfig, resolveHome} from "./config.js";
import {defaultQuantization} from "../models/quantization.js";
import {runChat} from "./chatCli.js";
import {modelDetails} from "./ollama/library.js";
import {createPresetFromModelfile} from "./presets/createPresetFromModelfile.js";
import {modelfileText} from "./presets/modelfileText.js";
import {resolvePreset} from "./presets/resolvePreset.js";

/** `hearth pull | ls | rm | show | import`: the library from a terminal, without a server. */

export const LIBRARY_USAGE = `Library commands (all take --home DIR; HEARTH_HOME):
  search QUERY        find GGUF model repos on the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN)
  files OWNER/REPO    list a Hub repo's quantizations, with their sizes and the names to pull them by
  pull NAME           download a model from the Hugging Face Hub: hf.co/{owner}/{repo}:{QUANT},
                      or hf.co/{owner}/{repo} for its default quantization (HF_ENDPOINT, HF_TOKEN)
  ls                  list the library
  show NAME           what a model's GGUF header says
  rm NAME             delete a model and its files
  import FILE [NAME]  add a local .gguf file to the library (for a split model, its first part)
  create NAME [-f FILE]  make a preset from a Modelfile (default ./Modelfile): FROM a model, preset or
                      .gguf file, SYSTEM, PARAMETER, MESSAGE, TEMPLATE; served under NAME by every API
  run NAME [PROMPT]   chat with a model in the terminal: one answer to PROMPT, or a conversation
                      read line by line until an empty line; --image FILE (repeatable) shows a model
                      that can see an image (PNG, JPEG, WebP, GIF, BMP) with the first message`;

/** Runs `use` on the library in the data folder, talking to the Hub `HF_ENDPOINT` names, and closes it after. */
async function withLibrary<T>(home: string | undefined, use: (library: Library) => Promise<T> | T): Promise<T> {
    const library = await Library.open({home: resolveHome(home), hub: new HubClient(hubConfig())});
    try {
        return await use(library);
    } finally {
        library.close();
    }
}

function parse(argv: readonly string[], positionals: number) {
    let parsed;
    try {
        parsed = parseArgs({args: [...argv], options: {home: {type: "string"}, threads: {type: "string"}, image: {type: "string", multiple: true}, file: {type: "string", short: "f"}}, allowPositionals: true, strict: true});
    } catch (error) {
        throw new ConfigError((error as Error).message);
    }
    if (parsed.positionals.length < positionals)
        throw new ConfigError(`missing argument\n${LIBRARY_USAGE}`);
    const threads = parsed.values.threads != null ? Number(parsed.values.threads) : undefined;
    if (threads != null && !(Number.isInteger(threads) && threads > 0))
        throw new ConfigError(`--threads must be a whole number above 0, got "${parsed.values.threads}"`);
    return {home: parsed.values.home, threads, images: parsed.values.image ?? [], file: parsed.values.file, args: parsed.positionals};
}

export function table(rows: string[][]): string {
    const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
    return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd()).join("\n");
}

function formatSeconds(seconds: number): string {
    if (seconds < 60)
        return `${Math.ceil(seconds)}s`;
    if (seconds < 3600)
        return `${Math.floor(seconds / 60)}m${String(Math.ceil(seconds % 60)).padStart(2, "0")}s`;
    return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
}

/** A progress bar on a terminal; a line every few seconds when the output is a file or a pipe. */
export function progressPrinter(stream: NodeJS.WriteStream): (progress: PullProgress) => void {
    let lastLineAt = 0;
    return (progress) => {
        if (progress.status === "queued")
            return;
        if (progress.status !== "downloading") {
            if (stream.isTTY)
                stream.write("\r\x1b[2K");
            stream.write(progress.status === "success" ? `pulled ${progress.name}\n` : `${progress.status} ${progress.name}\n`);
            return;
        }
        const fraction = progress.totalBytes > 0 ? progress.completedBytes / progress.totalBytes : 1;
        const part = progress.projector ? " projector" : progress.partCount > 1 ? ` part ${progress.fileIndex + 1}/${progress.partCount}` : "";
        const speed = progress.bytesPerSecond > 0 ? `${formatBytes(progress.bytesPerSecond)}/s` : "";
        const eta = progress.etaSeconds != null ? `ETA ${formatSeconds(progress.etaSeconds)}` : "";
        const numbers = `${(fraction * 100).toFixed(0).padStart(3)}%  ${formatBytes(progress.completedBytes)}/${formatBytes(progress.totalBytes)}  ${speed}  ${eta}`;
        if (stream.isTTY) {
            const width = 30;
            const filled = Math.round(fraction * width);
            stream.write(`\r\x1b[2Kpulling${part} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${numbers}`);
            if (progress.completedBytes === progress.totalBytes)
                stream.write("\n");
        } else if (performance.now() - lastLineAt > 2000 || progress.completedBytes === progress.totalBytes) {
            lastLineAt = performance.now();
            stream.write(`pulling${part} ${numbers}\n`);
        }
    };
}

/** The library commands, each with its number of required arguments. */
const COMMANDS: Record<string, {required: number, run(library: Library, args: string[], file: string | undefined): Promise<void> | void}> = {
    search: {required: 1, run: async (library, args) => {
        const models = await library.hub.search(args.join(" "));
        if (models.length === 0) {
            console.log(`No GGUF repos on the Hub match "${args.join(" ")}".`);
            return;
        }
        console.log(table([["REPO", "DOWNLOADS", "LIKES", "UPDATED"], ...models.map((model) =>
            [`hf.co/${model.id}${model.gated ? " (gated)" : ""}`, String(model.downloads), String(model.likes), model.updatedAt.slice(0, 10)])]));
    }},
    files: {required: 1, run: async (library, args) => {
        const listing = await library.repoFiles(args[0]!.replace(/^(https?:\/\/)?(hf\.co|huggingface\.co)\//i, ""));
        const chosen = defaultQuantization(listing.quantizations);
        // Every quantization of a repo with a projector can see: a pull brings the projector along.
        const vision = listing.projector != null ? `yes (+${formatBytes(listing.projector.sizeBytes)})` : "no";
        console.log(table([["NAME", "QUANT", "SIZE", "FILES", "VISION"], ...listing.quantizations.map((entry) => [
            `hf.co/${listing.repo}:${entry.quantization}${entry === chosen ? " (default)" : ""}`, entry.quantization,
            formatBytes(entry.sizeBytes), String(entry.files.length), vision
        ])]));
    }},
    pull: {required: 1, run: async (library, args) => {
        const controller = new AbortController();
        process.once("SIGINT", () => controller.abort());
        await library.pull(args[0]!, {signal: controller.signal, onProgress: progressPrinter(process.stderr)});
    }},
    ls: {required: 0, run: (library) => {
        const models = library.list();
        const presets = library.presets.list();
        if (models.length === 0 && presets.length === 0) {
            console.log("The library is empty. Pull a model with: hearth pull hf.co/{owner}/{repo}:{QUANT}");
            return;
        }
        console.log(table([["NAME", "SIZE", "PARAMS", "QUANT", "ARCH", "ADDED"], ...models.map((model) => {
            const details = modelDetails(model);
            return [model.name, formatBytes(model.sizeBytes), details.parameter_size, details.quantization_level, details.family, model.createdAt.slice(0, 10)];
        }), ...presets.map((preset) => [preset.name, `preset of ${preset.base}`, "", "", "", preset.createdAt.slice(0, 10)])]));
    }},
    show: {required: 1, run: (library, args) => {
        const preset = resolvePreset(library, args[0]!);
        if (preset != null) {
            process.stdout.write(modelfileText(preset, library.presets.get(args[0]!)!.base));
            return;
        }
        const model = library.get(args[0]!);
        console.log(table([
            ["name", model.name],
            ["source", model.source === "hub" ? `hf.co/${model.repo} at ${model.commit}` : "imported file"],
            ["architecture", model.gguf.architecture ?? "unknown"],
            ["parameters", formatParameterCount(model.gguf.parameterCount)],
            ["quantization", modelDetails(model).quantization_level],
            ["context length", String(model.gguf.contextLength ?? "unknown")],
            ["layers", String(model.gguf.layerCount ?? "unknown")],
            ["chat template", model.gguf.chatTemplate != null ? "yes" : "no"],
            ["size", formatBytes(model.sizeBytes)],
            ["sha256", model.sha256],
            ["vision", model.projector != null ? "yes" : "no"],
            ...library.filePaths(model).map((file) => ["file", file]),
            ...model.projector != null ? [["projector", library.projectorPath(model)!]] : []
        ]));
    }},
    rm: {required: 1, run: async (library, args) => {
        // A preset goes alone; its base model stays.
        if (library.presets.remove(args[0]!)) {
            console.log(`deleted the preset ${args[0]}`);
            return;
        }
        console.log(`deleted ${(await library.remove(args[0]!)).name}`);
    }},
    import: {required: 1, run: async (library, args) => {
        console.log(`imported ${args[0]} as ${(await library.import(args[0]!, args[1])).name}`);
    }},
    create: {required: 1, run: async (library, args, file) => {
        const preset = await createPresetFromModelfile(library, args[0]!, file ?? "Modelfile");
        console.log(`created the preset ${preset.name} (from ${preset.base})`);
    }}
};

export async function runLibraryCommand(command: string, argv: readonly string[]): Promise<void> {
    if (command === "run") {
        const {home, threads, images, args} = parse(argv, 1);
        await withLibrary(home, (library) => runChat(library, args[0]!, args.length > 1 ? args.slice(1).join(" ") : undefined, {threads, imageFiles: images}));
        return;
    }
    const spec = COMMANDS[command === "list" ? "ls" : command];
    if (spec == null)
        throw new ConfigError(`unknown command "${command}"`);
    const {home, images, file, args} = parse(argv, spec.required);
    if (images.length > 0)
        throw new ConfigError(`--image is for run; ${command} takes no images`);
    if (file != null && command !== "create")
        throw new ConfigError(`-f is for create; ${command} takes no file`);
    await withLibrary(home, (library) => spec.run(library, args, file));
}
