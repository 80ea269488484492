/**
 * Starts one GPU backend in a process of its own and reports the devices it sees, then exits. ggml reads its
 * device selection (GGML_VK_VISIBLE_DEVICES, CUDA_VISIBLE_DEVICES) once, when the backend starts, and
 * node-llama-cpp cannot unload a binary, so each selection is tried in a fresh process. Run by
 * `selectGpuDevices` with an IPC channel and the backend as its argument; answers one {@link ProbeMessage}.
 */
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

export type ProbeMessage = {gpu: string | false, names: string[], vramTotalBytes: number} | {error: string};

async function probe(backend: "cuda" | "metal" | "vulkan"): Promise<ProbeMessage> {
    try {
        const llama = await getLlama({gpu: backend, build: "never", progressLogs: false, logLevel: LlamaLogLevel.disabled});
        const [names, vram] = await Promise.all([llama.getGpuDeviceNames(), llama.getVramState()]);
        return {gpu: llama.gpu, names, vramTotalBytes: vram.total};
    } catch (error) {
        return {error: ((error as Error).message.split("\n")[0] ?? "").trim() || (error as Error).name};
    }
}

const backend = process.argv[2];
if (backend === "cuda" || backend === "metal" || backend === "vulkan")
    process.send!(await probe(backend), () => process.exit(0));
else
    process.send!({error: `unknown backend ${backend}`}, () => process.exit(1));
