import {getLlama, getLlamaGpuTypes, LlamaLogLevel} from "node-llama-cpp";
import type {Llama} from "node-llama-cpp";
import {BackendUnavailableError} from "./errors.js";
import {nativeDecodeLoopStatus} from "./NativeDecodeLoop.js";
import type {DecodeLoopSetting} from "./NativeDecodeLoop.js";

export type Backend = "cuda" | "metal" | "vulkan" | "cpu";
type GpuBackend = Exclude<Backend, "cpu">;

export type BackendReport = {
    selected: Backend,
    /** Backends that can run on this machine (their driver or runtime is present), fastest first. */
    available: Backend[],
    /** Why each faster backend was not used, in one sentence; undefined when the fastest one was. */
    reason: string | undefined,
    /**
     * `source` when node-llama-cpp runs a binary built on this machine (`npm run build:engine`, with the
     * compiler's native CPU flags), which it prefers when present; else `prebuilt`.
     */
    binary: "source" | "prebuilt",
    /**
     * `native` when Hearth's native decode loop (built by `npm run build`) runs the slots, else `javascript`,
     * with the reason in `decodeLoopReason`.
     */
    decodeLoop: "native" | "javascript",
    decodeLoopReason?: string
};

export type LoadBackendOptions = {
    logger?: (level: LlamaLogLevel, message: string) => void,
    decodeLoop?: DecodeLoopSetting
};

const PREFERENCE: readonly GpuBackend[] = ["cuda", "metal", "vulkan"];
const DISPLAY_NAME: Record<Backend, string> = {cuda: "CUDA", metal: "Metal", vulkan: "Vulkan", cpu: "CPU"};
const MISSING: Record<GpuBackend, string> = {
    cuda: "no NVIDIA driver with the CUDA runtime was found",
    metal: "Metal needs a Mac with Apple silicon",
    vulkan: "no Vulkan driver (libvulkan) was found"
};

/** What runs on the started backend: node-llama-cpp's binary and Hearth's decode loop. */
function engineOf(llama: Llama, decodeLoop: DecodeLoopSetting | undefined): Pick<BackendReport, "binary" | "decodeLoop" | "decodeLoopReason"> {
    const loop = nativeDecodeLoopStatus(llama, decodeLoop);
    return {
        binary: llama.buildType === "localBuild" ? "source" : "prebuilt",
        ...(loop.available ? {decodeLoop: "native"} : {decodeLoop: "javascript", decodeLoopReason: loop.reason})
    };
}

/**
 * Starts node-llama-cpp on a backend from its prebuilt binaries. `"auto"` takes the first of CUDA,
 * Metal, Vulkan that this machine can run, else the CPU, and reports why each faster one was passed
 * over. A forced backend that cannot run fails at once, naming it and why.
 */
export async function loadBackend(requested: "auto" | Backend, {logger, decodeLoop}: LoadBackendOptions = {}): Promise<{llama: Llama, report: BackendReport}> {
    const buildable = new Set(await getLlamaGpuTypes("allValid"));
    const usable = new Set(await getLlamaGpuTypes("supported"));
    const passedOver: string[] = [];
    const available: Backend[] = PREFERENCE.filter((backend) => usable.has(backend));
    const start = (gpu: GpuBackend | false) => getLlama({gpu, build: "never", progressLogs: false, logLevel: LlamaLogLevel.error, logger});

    const candidates = requested === "auto" ? PREFERENCE : requested === "cpu" ? [] : [requested];
    for (const backend of candidates) {
        let reason: string;
        if (!buildable.has(backend))
            reason = `node-llama-cpp has no ${DISPLAY_NAME[backend]} build for ${process.platform}-${process.arch}`;
        else if (!usable.has(backend))
            reason = MISSING[backend];
        else {
            try {
                const llama = await start(backend);
                if (llama.gpu === backend) {
                    const reasonText = passedOver.length > 0 ? passedOver.join("; ") : undefined;
                    return {llama, report: {selected: backend, available: [...available, "cpu"], reason: reasonText, ...engineOf(llama, decodeLoop)}};
                }
                reason = `its binary started on ${llama.gpu === false ? "the CPU" : DISPLAY_NAME[llama.gpu]} instead`;
                await llama.dispose();
            } catch (error) {
                reason = `its prebuilt binary did not load (${((error as Error).message.split("\n")[0] ?? "").trim()})`;
            }
            available.splice(available.indexOf(backend), 1);
        }
        if (requested !== "auto")
            throw new BackendUnavailableError(DISPLAY_NAME[backend], reason);
        if (buildable.has(backend))
            passedOver.push(`${DISPLAY_NAME[backend]}: ${reason}`);
    }
    const llama = await start(false);
    return {
        llama,
        report: {
            selected: "cpu",
            available: [...available, "cpu"],
            reason: requested === "cpu" ? "the CPU was chosen with --gpu cpu" : passedOver.join("; "),
            ...engineOf(llama, decodeLoop)
        }
    };
}
