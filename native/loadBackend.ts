import {getLlama, getLlamaGpuTypes, LlamaLogLevel} from "node-llama-cpp";
import type {Llama} from "node-llama-cpp";
import {BackendUnavailableError} from "./errors.js";
import {nativeDecodeLoopStatus} from "./decode/NativeDecodeLoop.js";
import type {DecodeLoopSetting} from "./decode/NativeDecodeLoop.js";
import {selectGpuDevices, unknownDeviceReason} from "./selectGpuDevices.js";

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
    /**
     * The logger gets llama.cpp's info lines too (the buffers and layers each load puts on a device). Defaults to
     * `false`: errors only. (node-llama-cpp prints a level asked for itself, logger or not, once an earlier start
     * of the same binary in this process was disposed: so it is asked for only when wanted.)
     */
    verbose?: boolean,
    decodeLoop?: DecodeLoopSetting,
    /**
     * `--gpu-devices`: the GPU devices to use, by index or name (a name selects every device whose name contains
     * it). Defaults to none: each backend's own choice.
     */
    gpuDevices?: readonly string[]
};

const PREFERENCE: readonly GpuBackend[] = ["cuda", "metal", "vulkan"];
const DISPLAY_NAME: Record<Backend, string> = {cuda: "CUDA", metal: "Metal", vulkan: "Vulkan", cpu: "CPU"};
const MISSING: Record<GpuBackend, string> = {
    cuda: "no NVIDIA driver with the CUDA runtime was found",
    metal: "Metal needs a Mac with Apple silicon",
    vulkan: "no Vulkan driver (libvulkan) was found"
};
const NO_DEVICE: Record<GpuBackend, string> = {
    cuda: "its driver found no usable device",
    metal: "it found no usable device",
    vulkan: "its driver found no usable device (software renderers such as llvmpipe are hidden unless selected with --gpu-devices)"
};
const DEVICE_ADVICE = "Name devices by index or by a part of their name (hearth system lists the ones in use), or leave out --gpu-devices.";

type Attempt = {llama: Llama} | {reason: string};

/** What runs on the started backend: node-llama-cpp's binary and Hearth's decode loop. */
function engineOf(llama: Llama, decodeLoop: DecodeLoopSetting | undefined): Pick<BackendReport, "binary" | "decodeLoop" | "decodeLoopReason"> {
    const loop = nativeDecodeLoopStatus(llama, decodeLoop);
    return {
        binary: llama.buildType === "localBuild" ? "source" : "prebuilt",
        ...(loop.available ? {decodeLoop: "native"} : {decodeLoop: "javascript", decodeLoopReason: loop.reason})
    };
}

/**
 * Starts node-llama-cpp on a backend from its prebuilt binaries. `"auto"` takes the first of CUDA, Metal,
 * Vulkan that this machine can run and that has a device with memory, else the CPU, and reports why each
 * faster one was passed over. A forced backend that cannot run fails at once, naming it and why; so does a
 * `gpuDevices` selection that no backend has.
 *
 * A GPU binary that starts with no device stays loaded when the CPU one starts after it (node-llama-cpp
 * cannot unload a binary). The CPU build then keeps its own libllama, libggml and CPU backends, but shares the
 * GPU build's libggml-base and libllama-common, whose file names are the same (the dynamic loader loads a name
 * once); both builds come from the same llama.cpp release, so the CPU path runs as it does alone.
 */
export async function loadBackend(requested: "auto" | Backend, {logger, verbose = false, decodeLoop, gpuDevices = []}: LoadBackendOptions = {}): Promise<{llama: Llama, report: BackendReport}> {
    const buildable = new Set(await getLlamaGpuTypes("allValid"));
    const usable = new Set(await getLlamaGpuTypes("supported"));
    const passedOver: string[] = [];
    const available: Backend[] = PREFERENCE.filter((backend) => usable.has(backend));
    const start = (gpu: GpuBackend | false) => getLlama({gpu, build: "never", progressLogs: false, logLevel: verbose ? LlamaLogLevel.info : LlamaLogLevel.error, logger});

    const candidates = requested === "auto" ? PREFERENCE : requested === "cpu" ? [] : [requested];
    for (const backend of candidates) {
        let reason: string;
        if (!buildable.has(backend))
            reason = `node-llama-cpp has no ${DISPLAY_NAME[backend]} build for ${process.platform}-${process.arch}`;
        else if (!usable.has(backend))
            reason = MISSING[backend];
        else {
            const attempt = await startGpu(backend, gpuDevices, start);
            if ("llama" in attempt) {
                const reasonText = passedOver.length > 0 ? passedOver.join("; ") : undefined;
                return {llama: attempt.llama, report: {selected: backend, available: [...available, "cpu"], reason: reasonText, ...engineOf(attempt.llama, decodeLoop)}};
            }
            reason = attempt.reason;
            available.splice(available.indexOf(backend), 1);
        }
        if (requested !== "auto")
            throw new BackendUnavailableError(DISPLAY_NAME[backend], reason, gpuDevices.length > 0 && usable.has(backend) ? DEVICE_ADVICE : undefined);
        if (buildable.has(backend))
            passedOver.push(`${DISPLAY_NAME[backend]}: ${reason}`);
    }
    if (gpuDevices.length > 0 && requested !== "cpu")
        throw new BackendUnavailableError("GPU", `no GPU backend has the devices selected with --gpu-devices (${passedOver.join("; ") || "none can run here"})`, DEVICE_ADVICE);
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

/**
 * Starts one GPU backend on the devices selected (translated into the backend's own variable, which ggml reads
 * when it starts), and keeps it only when it has a device with memory.
 */
async function startGpu(backend: GpuBackend, gpuDevices: readonly string[], start: (gpu: GpuBackend) => Promise<Llama>): Promise<Attempt> {
    const selectable = backend === "metal" ? undefined : backend;
    if (selectable != null && gpuDevices.length > 0) {
        const selection = await selectGpuDevices(selectable, gpuDevices);
        if ("reason" in selection)
            return selection;
        // The one place Hearth sets a variable for a library: ggml takes its device selection from the environment only.
        process.env[selection.variable] = selection.value;
    }
    let llama: Llama;
    try {
        llama = await start(backend);
    } catch (error) {
        const unknown = selectable != null && gpuDevices.length > 0 ? await unknownDeviceReason(selectable, gpuDevices) : undefined;
        return {reason: unknown ?? `its prebuilt binary did not load (${((error as Error).message.split("\n")[0] ?? "").trim()})`};
    }
    if (llama.gpu !== backend) {
        await llama.dispose();
        return {reason: `its binary started on ${llama.gpu === false ? "the CPU" : DISPLAY_NAME[llama.gpu]} instead`};
    }
    const [names, vram] = await Promise.all([llama.getGpuDeviceNames(), llama.getVramState()]);
    let reason: string | undefined;
    if (names.length === 0 || vram.total === 0)
        reason = gpuDevices.length === 0 ? NO_DEVICE[backend] : (selectable != null ? await unknownDeviceReason(selectable, gpuDevices) : undefined) ??
            `the devices selected with --gpu-devices (${gpuDevices.join(", ")}) have no usable memory`;
    else if (selectable == null && gpuDevices.some((entry) => entry !== "0" && !names.some((name) => name.toLowerCase().includes(entry.toLowerCase()))))
        reason = `it has no device ${gpuDevices.join(", ")} (--gpu-devices); its device is 0 "${names[0]}"`;
    if (reason == null)
        return {llama};
    await llama.dispose();
    return {reason};
}
