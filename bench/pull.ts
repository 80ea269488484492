/**
 * `npm run bench:pull`: how fast a pull from a Hub on loopback writes a model to disk, next to a plain
 * `fetch` of the same bytes to a file. The pull also checks free space, hashes every byte, reads the GGUF
 * header and writes the registry row; the ratio is what all of that costs.
 *
 *   node dist/bench/pull.js [--model FILE] [--runs N]
 *
 * The fake Hub runs in a process of its own, so serving does not compete with the client's JavaScript thread.
 */
import {spawn} from "node:child_process";
import {createWriteStream} from "node:fs";
import {mkdtemp, rm, stat} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {Readable} from "node:stream";
import {pipeline} from "node:stream/promises";
import type {ReadableStream} from "node:stream/web";
import {fileURLToPath} from "node:url";
import {parseArgs} from "node:util";
import {HubClient, Library} from "../models/index.js";
import {testModel} from "../test/helpers/testModels.js";
import {describeMachine, printTable, writeResult} from "./report.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const {values: args} = parseArgs({options: {model: {type: "string"}, runs: {type: "string", default: "3"}}});
const runs = Number(args.runs);
const REPO = "bench/synthetic-GGUF";

/** Starts the fake Hub in a child process serving one file; resolves with its URL. */
async function startHubProcess(file: string): Promise<{url: string, stop(): void}> {
    const script = `
        const {startFakeHub} = await import(${JSON.stringify(path.join(here, "..", "test", "helpers", "fakeHub.js"))});
        const hub = await startFakeHub([{id: ${JSON.stringify(REPO)}, files: [{path: "synthetic-F16.gguf", source: ${JSON.stringify(file)}}]}]);
        console.log(hub.url);`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {stdio: ["ignore", "pipe", "inherit"]});
    const url = await new Promise<string>((resolve, reject) => {
        child.stdout.once("data", (data: Buffer) => resolve(data.toString().trim()));
        child.once("exit", (code) => reject(new Error(`the fake Hub exited with code ${code}`)));
    });
    return {url, stop: () => child.kill()};
}

async function timed(run: () => Promise<void>): Promise<number> {
    const start = performance.now();
    await run();
    return (performance.now() - start) / 1000;
}

async function main() {
    const file = args.model != null ? path.resolve(args.model) : await testModel("synthetic/synthetic-llama-23M-F16.gguf");
    const sizeBytes = (await stat(file)).size;
    const hub = await startHubProcess(file);
    const scratch = await mkdtemp(path.join(os.tmpdir(), "hearth-bench-pull-"));
    const fetchSeconds: number[] = [];
    const pullSeconds: number[] = [];
    try {
        for (let run = 0; run < runs; run++) {
            const target = path.join(scratch, "plain.gguf");
            fetchSeconds.push(await timed(async () => {
                const response = await fetch(`${hub.url}/${REPO}/resolve/main/synthetic-F16.gguf`);
                await pipeline(Readable.fromWeb(response.body as ReadableStream), createWriteStream(target));
            }));
            await rm(target);

            const home = path.join(scratch, `home-${run}`);
            const library = await Library.open({home, hub: new HubClient({endpoint: hub.url})});
            pullSeconds.push(await timed(async () => {
                await library.pull(`hf.co/${REPO}:F16`);
            }));
            library.close();
            await rm(home, {recursive: true});
        }
    } finally {
        hub.stop();
        await rm(scratch, {recursive: true, force: true});
    }

    const mbPerSecond = (seconds: number) => sizeBytes / seconds / 1e6;
    const bestFetch = Math.min(...fetchSeconds);
    const bestPull = Math.min(...pullSeconds);
    const ratio = bestFetch / bestPull;
    const rows = [
        ["plain fetch to disk", `${mbPerSecond(bestFetch).toFixed(0)} MB/s`, `${(bestFetch * 1000).toFixed(0)} ms`],
        ["hearth pull (verified, registered)", `${mbPerSecond(bestPull).toFixed(0)} MB/s`, `${(bestPull * 1000).toFixed(0)} ms  (${(ratio * 100).toFixed(1)}% of fetch)`]
    ];
    console.log(`${path.basename(file)}, ${(sizeBytes / 1e6).toFixed(1)} MB from a Hub on loopback, best of ${runs}`);
    printTable(rows);

    const result = {
        date: new Date().toISOString(),
        machine: describeMachine(),
        file: path.basename(file), sizeBytes, runs, fetchSeconds, pullSeconds,
        fetchBytesPerSecond: sizeBytes / bestFetch, pullBytesPerSecond: sizeBytes / bestPull, ratio
    };
    await writeResult("pull", result);
}

await main();
