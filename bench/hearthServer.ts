import {readFile, readdir} from "node:fs/promises";
import {spawnHearth} from "../test/helpers/spawnHearth.js";

/** A `hearth serve` a benchmark started: where it listens, its process, and how to stop it. */
export type BenchServer = {url: string, pid: number, stop(): Promise<void>};

/** Starts `hearth serve` on a free port, on the CPU, with `argv`, and waits until it listens. */
export async function startHearth(argv: readonly string[]): Promise<BenchServer> {
    const server = spawnHearth(["serve", "--port", "0", "--gpu", "cpu", ...argv]);
    const [, url] = await server.waitForOutput(/listening on (\S+) /);
    return {url: url!, pid: server.child.pid!, stop: async () => {
        server.child.kill("SIGTERM");
        await server.exited;
    }};
}

/** Waits (60 s at most) until the server lists `model` on `/v1/models` and its `/health` says ok. */
export async function waitForModel(url: string, model: string): Promise<void> {
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 100))) {
        const response = await fetch(`${url}/v1/models`).catch(() => undefined);
        const models = response?.ok === true ? (await response.json() as {data: {id: string}[]}).data.map((entry) => entry.id) : [];
        if (models.includes(model) && (await fetch(`${url}/health`).then((health) => health.json() as Promise<{status: string}>)).status === "ok")
            return;
    }
    throw new Error(`${url} does not serve ${model} after 60 s`);
}

/**
 * A Linux process's CPU time so far, all its threads, in seconds: each thread's schedstat (nanoseconds), read from
 * /proc without disturbing the process.
 */
export async function threadsCpuSeconds(pid: number): Promise<number> {
    const tasks = `/proc/${pid}/task`;
    let nanoseconds = 0;
    for (const task of await readdir(tasks))
        nanoseconds += Number((await readFile(`${tasks}/${task}/schedstat`, "utf8").catch(() => "0")).split(" ")[0]);
    return nanoseconds / 1e9;
}
