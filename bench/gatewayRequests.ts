/**
 * The gateway's CPU time per forwarded request, as it warms up. One Hearth serves the model (the upstream); another,
 * with no model of its own, forwards to it (`--upstream`). A client sends short streams (`max_tokens: 2`) one after
 * another, in rounds of `--requests` to `/v1/completions`, as many to `/v1/chat/completions`, and as many
 * `GET /health` for scale; the gateway's CPU time (all its threads' schedstat, Linux only) is read around each block.
 *
 *   node dist/bench/gatewayRequests.js [--model FILE] [--requests N] [--rounds N]
 */
import {readFile, readdir} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {parseArgs} from "node:util";
import {spawnHearth} from "../test/helpers/spawnHearth.js";
import {testModel} from "../test/helpers/testModels.js";
import {printTable} from "./report.js";

const {values: args} = parseArgs({options: {
    model: {type: "string"},
    requests: {type: "string", default: "1000"},
    rounds: {type: "string", default: "4"}
}});
const requests = Number(args.requests);
const rounds = Number(args.rounds);
const prompt = "Once upon a time";

/** A process's CPU time so far, every thread, in microseconds. */
async function cpuMicroseconds(pid: number): Promise<number> {
    const tasks = `/proc/${pid}/task`;
    let nanoseconds = 0;
    for (const task of await readdir(tasks))
        nanoseconds += Number((await readFile(`${tasks}/${task}/schedstat`, "utf8").catch(() => "0")).split(" ")[0]);
    return nanoseconds / 1e3;
}

async function start(argv: string[]): Promise<{url: string, pid: number, stop(): Promise<void>}> {
    const server = spawnHearth(["serve", "--port", "0", "--gpu", "cpu", ...argv]);
    const [, url] = await server.waitForOutput(/listening on (\S+) /);
    return {url: url!, pid: server.child.pid!, stop: async () => {
        server.child.kill("SIGTERM");
        await server.exited;
    }};
}

const kinds = {
    "/v1/completions": {model: "bench", prompt, max_tokens: 2, temperature: 0, stream: true},
    "/v1/chat/completions": {model: "bench", messages: [{role: "user", content: prompt}], max_tokens: 2, temperature: 0, stream: true}
};

async function send(url: string, route: keyof typeof kinds | "/health"): Promise<void> {
    const response = route === "/health"
        ? await fetch(`${url}/health`)
        : await fetch(`${url}${route}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(kinds[route])});
    const text = await response.text();
    if (!response.ok || (route !== "/health" && !text.includes("[DONE]")))
        throw new Error(`${route} answered ${response.status}: ${text.slice(0, 200)}`);
}

async function main() {
    if (os.platform() !== "linux")
        throw new Error("this benchmark reads the gateway's CPU time from /proc");
    const modelPath = args.model != null ? path.resolve(args.model) : await testModel("stories260K.gguf");
    const upstream = await start(["--model", modelPath, "--alias", "bench", "--threads", "1", "--parallel", "2", "--ctx-size", "1024"]);
    const gateway = await start(["--upstream", upstream.url]);
    const routes = [...Object.keys(kinds), "/health"] as (keyof typeof kinds | "/health")[];
    const rows = [["round", "forwarded before", ...routes.map((route) => `${route}, CPU a request`)]];
    const loadAtStart = os.loadavg();
    try {
        for (let waited = 0; !(await fetch(`${gateway.url}/v1/models`).then((response) => response.text())).includes("\"bench\""); waited++) {
            if (waited > 600)
                throw new Error("the gateway does not list the upstream's model after 60 s");
            await new Promise((resolve) => setTimeout(resolve, 100));
        }
        let forwarded = 0;
        for (let round = 1; round <= rounds; round++) {
            const row = [String(round), String(forwarded)];
            for (const route of routes) {
                const before = await cpuMicroseconds(gateway.pid);
                for (let sent = 0; sent < requests; sent++)
                    await send(gateway.url, route);
                row.push(`${((await cpuMicroseconds(gateway.pid) - before) / requests).toFixed(0)} µs`);
                if (route !== "/health")
                    forwarded += requests;
            }
            rows.push(row);
        }
    } finally {
        await gateway.stop();
        await upstream.stop();
    }
    printTable(rows);
    console.log(`gateway CPU: all its threads, from /proc/PID/task/*/schedstat; load average ${loadAtStart.map((load) => load.toFixed(2)).join(", ")} at the start, ${os.loadavg().map((load) => load.toFixed(2)).join(", ")} at the end`);
}

await main();
