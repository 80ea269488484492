import {readFile} from "node:fs/promises";
import os from "node:os";
import type {Llama} from "node-llama-cpp";
import type {Backend, BackendReport} from "./loadBackend.js";
import {nativeGpuDevices} from "./decode/NativeDecodeLoop.js";

/** `GET /api/system` and `hearth system`: what this machine has for running models, and the backend chosen. */
export type SystemReport = {
    cpu: {model: string, cores: number, threads: number, simd: string[]},
    memory: {total_bytes: number, free_bytes: number},
    /** Each GPU device the backend uses: its name, its position among them, ggml's id for it where known. */
    gpus: {name: string, index: number, device?: string, backend: Backend, vram_total_bytes: number, vram_free_bytes: number,
        /** The largest buffer the device allocates, and the largest tensor it runs operations on; absent when unlimited or unknown. */
        max_buffer_bytes?: number, max_tensor_bytes?: number}[],
    backend: {selected: Backend, available: Backend[], reason: string | null}
};

export async function systemReport(llama: Llama, backend: BackendReport): Promise<SystemReport> {
    const memory = memoryAvailable();
    return {
        cpu: {model: os.cpus()[0]?.model.trim() ?? "unknown", cores: await physicalCores(), threads: os.availableParallelism(), simd: simdFeatures(llama.systemInfo)},
        memory: {total_bytes: memory.totalBytes, free_bytes: memory.freeBytes},
        gpus: await gpusOf(llama),
        backend: {selected: backend.selected, available: backend.available, reason: backend.reason ?? null}
    };
}

/** Each device of the started GPU backend with its own VRAM (Hearth's addon knows it), else an equal share of the total. */
async function gpusOf(llama: Llama): Promise<SystemReport["gpus"]> {
    const gpu = llama.gpu;
    if (gpu === false)
        return [];
    const devices = nativeGpuDevices(llama);
    if (devices != null && devices.length > 0)
        return devices.map((device) => ({
            name: device.description, index: device.index, device: device.name, backend: gpu,
            vram_total_bytes: device.totalBytes, vram_free_bytes: device.freeBytes,
            ...device.maxBufferBytes != null ? {max_buffer_bytes: device.maxBufferBytes} : {},
            ...device.maxTensorBytes != null ? {max_tensor_bytes: device.maxTensorBytes} : {}
        }));
    // node-llama-cpp reports VRAM summed over the devices of its backend.
    const [names, vram] = await Promise.all([llama.getGpuDeviceNames(), llama.getVramState()]);
    return names.map((name, index) => ({
        name, index, backend: gpu, vram_total_bytes: Math.round(vram.total / names.length), vram_free_bytes: Math.round(vram.free / names.length)
    }));
}

/** RAM this process may use: the machine's, or a container's limit when it has one. */
export function memoryAvailable(): {totalBytes: number, freeBytes: number} {
    const constrained = process.constrainedMemory();
    const totalBytes = constrained > 0 && constrained < os.totalmem() ? constrained : os.totalmem();
    return {totalBytes, freeBytes: Math.min(process.availableMemory(), os.freemem())};
}

/** The SIMD extensions ggml found on this CPU at run time (`AVX2 = 1 | NEON = 1 | …`), as lower-case names. */
function simdFeatures(systemInfo: string): string[] {
    const features: string[] = [];
    for (const [, name] of systemInfo.matchAll(/\b([A-Z][A-Z0-9_]*) = 1\b/g)) {
        if (/^(SSE|SSSE|AVX|F16C|FMA|BMI|NEON|ARM_FMA|FP16_VA|DOTPROD|MATMUL_INT8|SVE|SME|AMX|VSX|RISCV_V|RVV|WASM_SIMD|LSX|LASX)/.test(name!))
            features.push(name === "AVX512" ? "avx512f" : name!.toLowerCase());
    }
    return features;
}

async function physicalCores(): Promise<number> {
    try {
        const cpuinfo = await readFile("/proc/cpuinfo", "utf8");
        const cores = new Set<string>();
        for (const block of cpuinfo.split(/\n\s*\n/)) {
            const physical = /^physical id\s*:\s*(\d+)/m.exec(block)?.[1];
            const core = /^core id\s*:\s*(\d+)/m.exec(block)?.[1];
            if (physical != null && core != null)
                cores.add(`${physical}:${core}`);
        }
        if (cores.size > 0)
            return cores.size;
    } catch {
        // Not Linux: every logical CPU is a core on the machines Hearth runs on there (Apple silicon has no SMT).
    }
    return os.availableParallelism();
}
