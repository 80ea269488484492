/**
 * The gateway's CPU time per forwarded request, as it warms up. One Hearth serves the model (the upstream); another,
 * with no model of its own, forwards to it (`--upstream`). A client sends short streams (`max_tokens: 2`) one after
 * another, in rounds of `--requests` to `/v1/completions`, as many to `/v1/chat/completions`, and as many
 * `GET /health` for scale; the gateway's CPU time (all its threads' schedstat, Linux only) is read around each block.
 * Prints a table and writes JSON to bench/results/.
 *
 *   node dist/bench/gatewayRequests.js [--model FILE] [--requests N] [--rounds N]
 */
import os from "node:os";
import path from "node:path";
import {parseArgs} from "node:util";
import {testModel} from "../test/helpers/testModels.js";
import {startHearth, threadsCpuSeconds, waitForModel} from "./hearthServer.js";
import {describeMachine, printTable, writeResult} from "./report.js";

const {values: args} = parseArgs({options: {
    model: {type: "string"},
    requests: {type: "string", default: "1000"},
    rounds: {type: "string", default: "4"}
}});
const requests = Number(args.requests);
const rounds = Number(args.rounds);
const prompt = "Once upon a time";

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
    const upstream = await startHearth(["--model", modelPath, "--alias", "bench", "--threads", "1", "--parallel", "2", "--ctx-size", "1024"]);
    const gateway = await startHearth(["--upstream", upstream.url]);
    const routes = [...Object.keys(kinds), "/health"] as (keyof typeof kinds | "/health")[];
    const rows = [["round", "forwarded before", ...routes.map((route) => `${route}, CPU a request`)]];
    const measured: {round: number, forwardedBefore: number, cpuMicrosecondsPerRequest: Record<string, number>}[] = [];
    const loadAtStart = os.loadavg();
    try {
        await waitForModel(gateway.url, "bench");
        let forwarded = 0;
        for (let round = 1; round <= rounds; round++) {
            const entry = {round, forwardedBefore: forwarded, cpuMicrosecondsPerRequest: {} as Record<string, number>};
            for (const route of routes) {
                const before = await threadsCpuSeconds(gateway.pid);
                for (let sent = 0; sent < requests; sent++)
                    await send(gateway.url, route);
                entry.cpuMicrosecondsPerRequest[route] = (await threadsCpuSeconds(gateway.pid) - before) * 1e6 / requests;
                if (route !== "/health")
                    forwarded += requests;
            }
            measured.push(entry);
            rows.push([String(round), String(entry.forwardedBefore), ...routes.map((route) => `${entry.cpuMicrosecondsPerRequest[route]!.toFixed(0)} µs`)]);
        }
    } finally {
        await gateway.stop();
        await upstream.stop();
    }
    printTable(rows);
    console.log(`gateway CPU: all its threads, from /proc/PID/task/*/schedstat; load average ${loadAtStart.map((load) => load.toFixed(2)).join(", ")} at the start, ${os.loadavg().map((load) => load.toFixed(2)).join(", ")} at the end`);
    await writeResult("gateway-requests", {
        date: new Date().toISOString(), machine: describeMachine(), loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg(),
        model: path.basename(modelPath), requestsPerBlock: requests, rounds: measured
    });
}

await main();
