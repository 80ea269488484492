import {spawnHearth} from "../test/helpers/spawnHearth.js";
import type {PeerBackend} from "./llamaServer.js";

/** `hearth serve` as `npm run bench:peer` starts it beside llama-server: one model, the peer's settings. */
export type HearthServer = {url: string, pid: number, threads: number, decodeLoop: string, decodeLoopReason: string | undefined, stop(): Promise<void>};

export type HearthSettings = {
    backend: PeerBackend, gpuLayers: number, parallel: number, ctxSizePerSlot: number,
    /** "default": Hearth's own choice. */
    threads: number | "default",
    /** More `hearth serve` flags, as given. */
    extraArgs?: readonly string[]
};

/** Starts Hearth on a free port serving `model` as "bench", and waits until the model is ready. */
export async function startHearth(model: string, settings: HearthSettings): Promise<HearthServer> {
    const server = spawnHearth([
        "serve", "--model", model, "--alias", "bench", "--port", "0", "--gpu", settings.backend, "--gpu-layers", String(settings.gpuLayers),
        "--parallel", String(settings.parallel), "--ctx-size", String(settings.ctxSizePerSlot),
        ...(settings.threads === "default" ? [] : ["--threads", String(settings.threads)]), ...settings.extraArgs ?? []
    ], {HEARTH_LOG_LEVEL: "info"});
    const [, url] = await server.waitForOutput(/listening on (\S+) /);
    await server.waitForOutput(/Ready/);
    const info = await (await fetch(`${url}/api/server`)).json() as {defaults: {threads: number}, backend?: {decode_loop?: string, decode_loop_reason?: string}};
    return {url: url!, pid: server.child.pid!, threads: info.defaults.threads, decodeLoop: info.backend?.decode_loop ?? "unknown", decodeLoopReason: info.backend?.decode_loop_reason, stop: async () => {
        server.child.kill("SIGTERM");
        await server.exited;
    }};
}
