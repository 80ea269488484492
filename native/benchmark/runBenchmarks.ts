import {fork} from "node:child_process";
import {mkdir, mkdtemp, rm} from "node:fs/promises";
import path from "node:path";
import {BenchmarkError} from "../errors.js";
import type {ModelBenchResult} from "./benchmarkModel.js";
import type {WorkerMessage, WorkerRequest} from "./benchWorker.js";

export type BenchmarkPlan = Omit<WorkerRequest, "modelPath" | "reference"> & {
    modelPaths: readonly string[],
    /** Where the reference model's distributions are kept while the run lasts. */
    scratchDir: string,
    /** Stops the model being measured (its process is killed) and the run. */
    signal?: AbortSignal
};

export type BenchmarkProgress = {done: number, total: number, model: string, result?: ModelBenchResult};

/**
 * Benchmarks each model in turn, each in its own process; the first is the reference for KL divergence.
 * A model that fails stops the run with its error (a later row without the reference would mean nothing).
 */
export async function runBenchmarks(plan: BenchmarkPlan, onProgress: (progress: BenchmarkProgress) => void = () => {}): Promise<ModelBenchResult[]> {
    if (plan.modelPaths.length === 0)
        throw new BenchmarkError("Name at least one model to benchmark");
    await mkdir(plan.scratchDir, {recursive: true});
    const scratch = await mkdtemp(path.join(plan.scratchDir, "bench-"));
    const referencePath = path.join(scratch, "reference.f32");
    const results: ModelBenchResult[] = [];
    try {
        for (const [index, modelPath] of plan.modelPaths.entries()) {
            onProgress({done: index, total: plan.modelPaths.length, model: path.basename(modelPath)});
            const result = await inWorker({
                modelPath, text: plan.text, gpu: plan.gpu, settings: plan.settings,
                reference: {path: referencePath, mode: index === 0 ? "write" : "read"}
            }, plan.signal);
            results.push(result);
            onProgress({done: index + 1, total: plan.modelPaths.length, model: path.basename(modelPath), result});
        }
    } finally {
        await rm(scratch, {recursive: true, force: true});
    }
    return results;
}

function inWorker(request: WorkerRequest, signal: AbortSignal | undefined): Promise<ModelBenchResult> {
    return new Promise((resolve, reject) => {
        if (signal?.aborted === true)
            return reject(new BenchmarkError("The benchmark was stopped"));
        const worker = fork(new URL("./benchWorker.js", import.meta.url), [], {stdio: ["ignore", "ignore", "pipe", "ipc"]});
        const stop = () => worker.kill();
        signal?.addEventListener("abort", stop, {once: true});
        worker.on("exit", () => signal?.removeEventListener("abort", stop));
        let stderr = "";
        worker.stderr!.on("data", (data: Buffer) => stderr = (stderr + data.toString()).slice(-2000));
        let answered = false;
        worker.on("message", (message: WorkerMessage) => {
            answered = true;
            if ("result" in message)
                resolve(message.result);
            else
                reject(new BenchmarkError(`${path.basename(request.modelPath)}: ${message.error}`));
        });
        // "close", not "exit": a child's last IPC message can still be unread when "exit" is emitted.
        worker.on("close", (code, signal) => {
            if (!answered)
                reject(new BenchmarkError(`${path.basename(request.modelPath)}: the benchmark process ended (${signal ?? `exit code ${code}`}) before it reported${stderr ? `: ${stderr.trim()}` : ""}`));
        });
        worker.send(request);
    });
}
