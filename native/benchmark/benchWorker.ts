/**
 * One model's benchmark in a process of its own, so its peak memory is its own and a crash loses one row.
 * Started by `runBenchmarks` with an IPC channel: it receives one {@link WorkerRequest}, answers with
 * progress messages and then `{result}` or `{error}`, and exits.
 */
import {loadBackend} from "../loadBackend.js";
import type {Backend} from "../loadBackend.js";
import {defaultThreadCount} from "../defaultThreadCount.js";
import {benchmarkModel} from "./benchmarkModel.js";
import type {ModelBenchResult, ModelBenchSettings, ReferenceFile} from "./benchmarkModel.js";

export type WorkerRequest = {
    modelPath: string,
    text: string,
    gpu: "auto" | Backend,
    settings: Omit<ModelBenchSettings, "threads"> & {threads: "auto" | number},
    reference: ReferenceFile
};

export type WorkerMessage = {result: ModelBenchResult} | {error: string};

process.once("message", (request: WorkerRequest) => {
    void run(request).then((message) => {
        process.send!(message, () => process.exit(0));
    });
});

async function run(request: WorkerRequest): Promise<WorkerMessage> {
    try {
        const {llama} = await loadBackend(request.gpu);
        const threads = request.settings.threads === "auto" ? defaultThreadCount(llama.cpuMathCores) : request.settings.threads;
        const result = await benchmarkModel(llama, request.modelPath, request.text, {...request.settings, threads}, request.reference);
        await llama.dispose();
        return {result};
    } catch (error) {
        return {error: (error as Error).message};
    }
}
