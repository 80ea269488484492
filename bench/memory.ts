import {readModelShape} from "../models/index.js";
import {estimateMemory} from "../native/planOffload.js";
import {measureLoadMemory, measuredTotalBytes} from "../test/helpers/measureLoadMemory.js";
import {testModel} from "../test/helpers/testModels.js";
import {describeMachine, printTable, writeResult} from "./report.js";

/**
 * `npm run bench:memory`: Hearth's memory estimate for loading each test model on the CPU, next to what
 * loading it used (llama.cpp's weights, KV cache, compute and output buffers, and the rest of the load's
 * own memory), at several context sizes and slot counts.
 */

const cases: [file: string, ctxSize: number, parallel: number][] = [];
for (const file of ["stories260K.gguf", "derived/stories260K-Q8_0.gguf", "derived/stories260K-Q4_0.gguf", "llama-2-tiny-random.gguf",
    "synthetic/synthetic-llama-23M-F16.gguf", "synthetic/synthetic-llama-23M-Q8_0.gguf", "synthetic/synthetic-llama-23M-Q4_K_M.gguf"]) {
    for (const [ctxSize, parallel] of [[2048, 1], [2048, 4], [8192, 2], [32768, 1]] as const)
        cases.push([file, ctxSize, parallel]);
}

const MiB = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const rows = [["model", "ctx x slots", "weights MiB", "KV MiB", "compute MiB", "other MiB", "measured MiB", "estimate MiB", "estimate/measured"]];
const results = [];
for (const [file, ctxSize, parallel] of cases) {
    const modelPath = await testModel(file);
    const measured = await measureLoadMemory(modelPath, ctxSize, parallel);
    const estimate = estimateMemory(await readModelShape(modelPath), {ctxSize, parallel}, 0);
    const measuredBytes = measuredTotalBytes(measured);
    const ratio = estimate.ramBytes / measuredBytes;
    results.push({file, ctxSize, parallel, measured, measuredBytes, estimatedBytes: estimate.ramBytes, ratio});
    rows.push([file, `${ctxSize} x ${parallel}`, MiB(measured.weightsBytes), MiB(measured.kvBytes), MiB(measured.computeBytes),
        MiB(measured.outputBytes + measured.loadOverheadBytes), MiB(measuredBytes), MiB(estimate.ramBytes), ratio.toFixed(3)]);
}
printTable(rows);
const worst = Math.max(...results.map((result) => Math.abs(result.ratio - 1)));
console.log(`largest difference: ${(worst * 100).toFixed(1)}%`);
const result = {date: new Date().toISOString(), machine: describeMachine(), results};
await writeResult("memory", result);
