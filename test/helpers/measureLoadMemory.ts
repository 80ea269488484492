import {execFile} from "node:child_process";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {promisify} from "node:util";
import type {KvCacheType} from "../../native/kvCacheTypes.js";

const measureScript = path.join(path.dirname(fileURLToPath(import.meta.url)), "loadAndMeasure.js");

/** What loading a model used: llama.cpp's buffers as it reports them, and the other memory the load took. */
export type MeasuredLoad = {weightsBytes: number, kvBytes: number, computeBytes: number, outputBytes: number, loadOverheadBytes: number};

/** Loads a model on the CPU in a fresh process (see `loadAndMeasure.ts`) and returns what that used. */
export async function measureLoadMemory(file: string, ctxSize: number, parallel: number, kvCacheType: KvCacheType = "f16"): Promise<MeasuredLoad> {
    const {stdout} = await promisify(execFile)(process.execPath, [measureScript, file, String(ctxSize), String(parallel), kvCacheType]);
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as MeasuredLoad;
}

export function measuredTotalBytes(measured: MeasuredLoad): number {
    return measured.weightsBytes + measured.kvBytes + measured.computeBytes + measured.outputBytes + measured.loadOverheadBytes;
}
