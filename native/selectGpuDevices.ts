import {fork} from "node:child_process";
import type {ProbeMessage} from "./gpuProbeWorker.js";

/** The backends whose devices are chosen through a variable that ggml reads when it starts (Metal has one device). */
export type SelectableBackend = "cuda" | "vulkan";

/** The variable through which each backend's ggml library takes its devices, by index, in order of use. */
export const DEVICE_VARIABLE: Record<SelectableBackend, string> = {cuda: "CUDA_VISIBLE_DEVICES", vulkan: "GGML_VK_VISIBLE_DEVICES"};

export type GpuDeviceSelection = {variable: string, value: string} | {reason: string};

type ListedDevice = {index: number, name: string};

/** At most this many Vulkan devices are looked for (one probe each). */
const MAX_DEVICES = 16;
const PROBE_TIMEOUT_MS = 60_000;

/**
 * Translates `--gpu-devices` into the backend's own selection: indexes as they are, names (each selects every
 * device whose name contains it, ignoring case) through the backend's device list, which probes in child
 * processes give. A wrong index is found only when the backend starts: see {@link unknownDeviceReason}.
 */
export async function selectGpuDevices(backend: SelectableBackend, requested: readonly string[]): Promise<GpuDeviceSelection> {
    const indexes = new Set<number>();
    for (const entry of requested) {
        if (/^\d+$/.test(entry)) {
            indexes.add(Number(entry));
            continue;
        }
        const devices = await listGpuDevices(backend);
        const matching = devices.filter((device) => device.name.toLowerCase().includes(entry.toLowerCase()));
        if (matching.length === 0)
            return {reason: `it has no device "${entry}" (--gpu-devices); ${describeDevices(devices)}`};
        for (const device of matching)
            indexes.add(device.index);
    }
    return {variable: DEVICE_VARIABLE[backend], value: [...indexes].join(",")};
}

/** Why a selection by index did not start: the indexes the backend does not have, and the devices it has. */
export async function unknownDeviceReason(backend: SelectableBackend, requested: readonly string[]): Promise<string | undefined> {
    const devices = await listGpuDevices(backend);
    const unknown = requested.filter((entry) => /^\d+$/.test(entry) && Number(entry) >= devices.length);
    if (unknown.length === 0)
        return undefined;
    return `it has no device ${unknown.join(", ")} (--gpu-devices); ${describeDevices(devices)}`;
}

function describeDevices(devices: readonly ListedDevice[]): string {
    return devices.length === 0
        ? "its driver found no device at all"
        : `its devices are ${devices.map((device) => `${device.index} "${device.name}"`).join(", ")}`;
}

const listed = new Map<SelectableBackend, Promise<ListedDevice[]>>();

/**
 * Every device the backend's driver has, with the index its selection variable takes. Vulkan's default leaves
 * out some (software renderers such as llvmpipe), and only its variable reaches them: each index is probed on
 * its own until one does not start. CUDA lists all of its devices when its variable is unset.
 */
function listGpuDevices(backend: SelectableBackend): Promise<ListedDevice[]> {
    let devices = listed.get(backend);
    if (devices == null) {
        devices = backend === "cuda" ? listCudaDevices() : listVulkanDevices();
        listed.set(backend, devices);
    }
    return devices;
}

async function listVulkanDevices(): Promise<ListedDevice[]> {
    const devices: ListedDevice[] = [];
    for (let index = 0; index < MAX_DEVICES; index++) {
        const probed = await probe("vulkan", {...process.env, [DEVICE_VARIABLE.vulkan]: String(index)});
        if ("error" in probed || probed.gpu !== "vulkan" || probed.names.length !== 1)
            break;
        devices.push({index, name: probed.names[0]!});
    }
    return devices;
}

async function listCudaDevices(): Promise<ListedDevice[]> {
    const env = {...process.env};
    delete env[DEVICE_VARIABLE.cuda];
    const probed = await probe("cuda", env);
    return "error" in probed || probed.gpu !== "cuda" ? [] : probed.names.map((name, index) => ({index, name}));
}

function probe(backend: SelectableBackend, env: NodeJS.ProcessEnv): Promise<ProbeMessage> {
    return new Promise((resolve) => {
        const child = fork(new URL("./gpuProbeWorker.js", import.meta.url), [backend], {env, stdio: ["ignore", "ignore", "ignore", "ipc"]});
        const timer = setTimeout(() => child.kill(), PROBE_TIMEOUT_MS);
        let answer: ProbeMessage | undefined;
        child.on("message", (message: ProbeMessage) => answer = message);
        child.on("error", (error) => {
            clearTimeout(timer);
            resolve({error: error.message});
        });
        // "close", not "exit": the probe's last IPC message can still be unread when "exit" is emitted.
        child.on("close", (code, signal) => {
            clearTimeout(timer);
            resolve(answer ?? {error: `the probe ended (${signal ?? `exit code ${code}`}) before it reported`});
        });
    });
}
