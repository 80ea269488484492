import {existsSync} from "node:fs";
import path from "node:path";
import {HubClient, Library, formatBytes} from "../models/index.js";
import {Engine} from "../native/Engine.js";
import type {ModelToLoad} from "../native/Engine.js";
import type {OffloadPlan} from "../native/planOffload.js";
import {systemReport} from "../native/systemReport.js";
import type {SystemReport} from "../native/systemReport.js";
import {ConfigError, parseServeArgs} from "./config.js";
import type {ServeConfig} from "./config.js";
import {offloadPlanJson} from "./offloadPlanJson.js";
import {libraryCatalog} from "./startServer.js";
import {resolveProjectors} from "./resolveProjectors.js";

/** `hearth system` and `hearth estimate`: what this machine has, and whether a model fits it. */

export const HARDWARE_USAGE = `Hardware commands:
  system [--gpu B] [--json]     the CPU, memory, GPUs and the backend Hearth would use
  estimate MODEL [--ctx-size N] [--parallel N] [--gpu-layers auto|max|N] [--gpu B] [--json]
                                whether a model fits this machine and how it would load: layers on
                                the GPU, VRAM and RAM. MODEL is a library name or a .gguf file.`;

/** Splits `--json` and positionals from the flags `hearth serve` takes, which parse as they do there. */
function parse(argv: readonly string[]): {config: ServeConfig, json: boolean, positionals: string[]} {
    const json = argv.includes("--json");
    const positionals: string[] = [];
    const flags: string[] = [];
    for (let index = 0; index < argv.length; index++) {
        const arg = argv[index]!;
        if (arg === "--json")
            continue;
        if (arg.startsWith("-")) {
            flags.push(arg);
            if (!arg.includes("=") && index + 1 < argv.length)
                flags.push(argv[++index]!);
        } else {
            positionals.push(arg);
        }
    }
    return {config: parseServeArgs(flags).config, json, positionals};
}

/** An engine that is never started: it starts its backend to plan, and loads nothing. */
function engineFor(config: ServeConfig, models: ModelToLoad[], library?: Library): Engine {
    return new Engine({
        gpu: config.gpu, gpuDevices: config.gpuDevices, gpuLayers: config.gpuLayers, threads: config.threads, parallel: config.parallel,
        ctxSize: config.ctxSize, kvCacheType: config.kvCacheType, maxQueue: config.maxQueue, mmprojOffload: config.mmprojOffload,
        ...library != null ? {catalog: libraryCatalog(library)} : {}
    }, models);
}

export async function runHardwareCommand(command: "system" | "estimate", argv: readonly string[]): Promise<void> {
    const {config, json, positionals} = parse(argv);
    if (command === "system") {
        const engine = engineFor(config, []);
        try {
            const report = await systemReport(await engine.startBackend(), engine.backendReport!);
            console.log(json ? JSON.stringify(report, null, 2) : formatSystem(report));
        } finally {
            await engine.dispose();
        }
        return;
    }

    const model = positionals[0];
    if (model == null)
        throw new ConfigError(`missing MODEL\n${HARDWARE_USAGE}`);
    const isFile = /\.gguf$/i.test(model) && existsSync(model);
    const library = isFile ? undefined : await Library.open({home: config.home, hub: new HubClient(config.hub)});
    // A file is planned with the projector `hearth serve --model FILE` would load beside it.
    const engine = engineFor(config, isFile ? await resolveProjectors([{path: path.resolve(model), names: [model]}]) : [], library);
    try {
        if (engine.pathOf(model) == null)
            throw new ConfigError(`"${model}" is neither a .gguf file nor a model in the library (${config.home}); hearth ls lists the library`);
        const plan = await engine.estimate(model);
        console.log(json ? JSON.stringify({model, ...offloadPlanJson(plan)}, null, 2) : formatPlan(model, plan));
    } finally {
        await engine.dispose();
        library?.close();
    }
}

function formatSystem(report: SystemReport): string {
    const lines = [
        `CPU      ${report.cpu.model}: ${report.cpu.cores} cores, ${report.cpu.threads} threads${report.cpu.simd.length > 0 ? ` (${report.cpu.simd.join(", ")})` : ""}`,
        `Memory   ${formatBytes(report.memory.total_bytes)} total, ${formatBytes(report.memory.free_bytes)} free`
    ];
    for (const gpu of report.gpus)
        lines.push(`GPU      ${gpu.name} (${gpu.backend}): ${formatBytes(gpu.vram_total_bytes)} VRAM, ${formatBytes(gpu.vram_free_bytes)} free` +
            (gpu.max_tensor_bytes != null ? `, tensors of at most ${formatBytes(gpu.max_tensor_bytes)}` : ""));
    if (report.gpus.length === 0)
        lines.push("GPU      none in use");
    lines.push(`Backend  ${report.backend.selected} (available here: ${report.backend.available.join(", ")})`);
    if (report.backend.reason != null)
        lines.push(`         ${report.backend.reason}`);
    return lines.join("\n");
}

function formatPlan(model: string, plan: OffloadPlan): string {
    const where = {
        gpu: "fits entirely on the GPU",
        partial: `fits partly on the GPU (${plan.gpuLayers} of ${plan.layersTotal} layers), the rest on the CPU`,
        cpu: "fits on the CPU",
        none: "does not fit"
    }[plan.placement];
    const lines = [
        `${model} ${where}`,
        `  context  ${plan.contextSize} tokens x ${plan.parallel} slots: ${plan.contextReason}` + (plan.kvCacheType !== "f16" ? ` (${plan.kvCacheType} KV cache)` : ""),
        `  layers   ${plan.gpuLayers}/${plan.layersTotal} on the GPU`,
        `  VRAM     ${formatBytes(plan.vramBytes)}`,
        `  RAM      ${formatBytes(plan.ramBytes)}`,
        ...plan.projectorBytes > 0 ? [`  vision   projector ${formatBytes(plan.projectorBytes)} ${plan.projectorOnGpu ? "on the GPU" : "on the CPU"}`] : [],
        ...plan.draft != null ? [`  draft    draft model ${formatBytes(plan.draft.ramBytes + plan.draft.vramBytes)} ${plan.draft.gpuLayers > 0 ? "on the GPU" : "on the CPU"}`] : []
    ];
    if (plan.message != null)
        lines.push(`  ${plan.message}`);
    return lines.join("\n");
}
