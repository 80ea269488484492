import {readFileSync} from "node:fs";
import {access} from "node:fs/promises";
import {isAbsolute} from "node:path";
import {LoadedModel} from "../native/LoadedModel.js";
import {CHAT_TEMPLATE_NAMES, chatWrapperTypeFor} from "../native/chatTemplates.js";
import {ConfigError, SERVE_USAGE, parseServeArgs} from "./config.js";
import type {ServeConfig} from "./config.js";
import {BENCH_USAGE, runBenchCommand} from "./benchCli.js";
import {HARDWARE_USAGE, runHardwareCommand} from "./hardwareCli.js";
import {KEYS_USAGE, runKeysCommand} from "./access/keysCli.js";
import {MCP_USAGE, runMcpCommand} from "./mcp/mcpCli.js";
import {LIBRARY_USAGE, progressPrinter, runLibraryCommand} from "./libraryCli.js";
import {resolveModelNames} from "./resolveModelNames.js";
import {startServer} from "./startServer.js";
import {HearthError} from "../models/HearthError.js";
import {visionProjectorProblem} from "../models/findProjector.js";
import {HubClient, Library, parseModelName} from "../models/index.js";
import {statusOf} from "./errors.js";

const USAGE = `Usage: hearth <command> [options]

Commands:
  serve       run the OpenAI-compatible server (hearth serve --help for its options)
  --version   print the version

${LIBRARY_USAGE}

${HARDWARE_USAGE}

${BENCH_USAGE}

${KEYS_USAGE}

${MCP_USAGE}`;

function version(): string {
    const packageJson = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {version: string};
    return packageJson.version;
}

function fail(message: string, exitCode = 1): never {
    console.error(`hearth: ${message}`);
    process.exit(exitCode);
}

/** Checks what can be checked before listening, so a typo fails at once and not after a load. */
async function checkModels(config: ServeConfig): Promise<void> {
    if (config.chatTemplate != null && chatWrapperTypeFor(config.chatTemplate) == null)
        throw new ConfigError(`--chat-template must be one of ${CHAT_TEMPLATE_NAMES.join(", ")}, got "${config.chatTemplate}"`);
    for (const model of config.models) {
        try {
            await access(model.path);
        } catch {
            throw new ConfigError(`no model file at ${model.path}`);
        }
        try {
            await LoadedModel.checkFile(model.path);
        } catch (error) {
            throw new ConfigError(`${model.path} is not a GGUF model file (${(error as Error).message})`);
        }
    }
    for (const {draftModel, names} of [...config.models, ...(config.modelNames ?? []).map((spec) => ({draftModel: spec.draftModel, names: [spec.name]}))]) {
        if (draftModel == null || !isAbsolute(draftModel))
            continue;
        try {
            await LoadedModel.checkFile(draftModel);
        } catch (error) {
            throw new ConfigError(`--draft-model ${draftModel} (for ${names[0]}) is not a GGUF model file (${(error as Error).message})`);
        }
    }
    // Before any pull, so a wrong --mmproj does not wait for a download to be reported.
    for (const {mmproj, names} of [...config.models, ...(config.modelNames ?? []).map((spec) => ({mmproj: spec.mmproj, names: [spec.name]}))]) {
        const problem = typeof mmproj === "string" ? await visionProjectorProblem(mmproj) : undefined;
        if (problem != null)
            throw new ConfigError(`--mmproj ${mmproj as string} (for ${names[0]}) cannot be used: ${problem}`);
    }
}

/**
 * Pulls each `hf.co/…` model that `--model` names and the library does not have yet, with `hearth pull`'s
 * progress, so that one command starts a new user. Other names are checked first, so a typo fails before
 * a download; Ctrl-C stops a pull (the next start resumes it).
 */
async function pullNamedModels(config: ServeConfig): Promise<void> {
    const specs = config.modelNames ?? [];
    if (specs.length === 0 && !config.models.some((model) => model.draftModel != null && !isAbsolute(model.draftModel)))
        return;
    const library = await Library.open({home: config.home, hub: new HubClient(config.hub)});
    const controller = new AbortController();
    const cancel = () => controller.abort();
    process.once("SIGINT", cancel);
    try {
        const missing = (name: string) => library.find(name) == null && parseModelName(name).kind === "hub";
        const toPull = specs.filter((spec) => missing(spec.name));
        // Draft models named on the Hub are pulled too, after the models they draft for.
        const draftsToPull = [...new Set([...config.models, ...specs].flatMap(({draftModel}) => draftModel != null && !isAbsolute(draftModel) && missing(draftModel) ? [draftModel] : []))];
        const pulled = (name: string | undefined) => name != null && draftsToPull.includes(name);
        resolveModelNames(library, {
            models: config.models.map((model) => pulled(model.draftModel) ? {...model, draftModel: undefined} : model),
            modelNames: specs.filter((spec) => !toPull.includes(spec)).map((spec) => pulled(spec.draftModel) ? {...spec, draftModel: undefined} : spec)
        });
        for (const name of [...toPull.map((spec) => spec.name), ...draftsToPull]) {
            console.error(`${name} is not in the library (${config.home}): pulling it first`);
            await library.pull(name, {signal: controller.signal, onProgress: progressPrinter(process.stderr)});
        }
    } finally {
        process.removeListener("SIGINT", cancel);
        library.close();
    }
}

async function serve(argv: string[]): Promise<void> {
    const {config, help} = parseServeArgs(argv);
    if (help) {
        console.log(SERVE_USAGE);
        return;
    }
    await checkModels(config);
    await pullNamedModels(config);
    const server = await startServer(config, {logger: {level: process.env.HEARTH_LOG_LEVEL ?? "info"}});
    console.log(`Hearth is listening on ${server.url} (OpenAI base_url: ${server.url}/v1)`);
    if (config.models.length === 0 && config.modelNames == null) {
        const names = server.library.list().map((model) => model.name);
        console.log(names.length > 0
            ? `Serving the library (${config.home}): ${names.join(", ")}`
            : `The library (${config.home}) is empty: hearth pull hf.co/{owner}/{repo}:{QUANT} adds a model, or start with --model FILE.gguf.`);
    }

    let stopping = false;
    const stop = (signal: string) => {
        if (stopping)
            process.exit(1);
        stopping = true;
        server.app.log.info(`${signal}: shutting down; running replies may finish for ${Math.round(config.shutdownTimeoutMs / 1000)} s (send ${signal} again to stop at once)`);
        server.close({drainMs: config.shutdownTimeoutMs}).then(() => process.exit(0), (error: unknown) => {
            console.error(`hearth: ${(error as Error).message}`);
            process.exit(1);
        });
    };
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGTERM", () => stop("SIGTERM"));

    try {
        await server.ready;
        const names = server.engine.models.flatMap((model) => model.names);
        console.log(names.length > 0 ? `Ready: ${names.join(", ")}` : "Ready");
    } catch (error) {
        await server.close().catch(() => undefined);
        fail((error as Error).message);
    }
}

async function main(argv: string[]): Promise<void> {
    const [command, ...rest] = argv;
    switch (command) {
        case "serve":
            return serve(rest);
        case "search":
        case "files":
        case "run":
        case "pull":
        case "ls":
        case "list":
        case "rm":
        case "show":
        case "import":
        case "create":
            return runLibraryCommand(command, rest);
        case "keys":
            return runKeysCommand(rest);
        case "mcp":
            return runMcpCommand(rest);
        case "system":
        case "estimate":
            return runHardwareCommand(command, rest);
        case "bench":
            return runBenchCommand(rest);
        case "--version":
        case "-v":
            console.log(version());
            return;
        case undefined:
        case "--help":
        case "-h":
        case "help":
            console.log(USAGE);
            return;
        default:
            fail(`unknown command "${command}"\n${USAGE}`, 2);
    }
}

main(process.argv.slice(2)).catch((error: unknown) => {
    if (error instanceof ConfigError)
        fail(error.message, 2);
    if (error instanceof HearthError) {
        // What the API would answer with a 4xx is the caller's to fix: a usage error.
        const status = statusOf(error);
        fail(error.message, status >= 400 && status < 500 && status !== 499 ? 2 : 1);
    }
    fail((error as Error).stack ?? String(error));
});
