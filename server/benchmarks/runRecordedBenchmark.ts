import {sha256Of} from "../../models/index.js";
import {runBenchmarks} from "../../native/benchmark/runBenchmarks.js";
import type {BenchmarkPlan, BenchmarkProgress} from "../../native/benchmark/runBenchmarks.js";
import type {BenchRun, BenchStore, SavedModelResult} from "./BenchStore.js";

export type RecordedBenchmark = {
    plan: BenchmarkPlan,
    /** The sha256 of a model file when it is already known (a library model), else it is computed. */
    knownSha256?: (modelPath: string) => string | undefined
};

/**
 * Runs a benchmark and keeps it in the history as it goes: the run is saved when it starts, each model's
 * row when it is measured, and the outcome at the end. Resolves with the finished run (complete or failed).
 */
export async function runRecordedBenchmark(store: BenchStore, run: BenchRun, benchmark: RecordedBenchmark,
    onProgress: (progress: BenchmarkProgress) => void = () => {}): Promise<BenchRun> {
    const results: SavedModelResult[] = [];
    try {
        await runBenchmarks(benchmark.plan, (progress) => {
            onProgress(progress);
            if (progress.result != null)
                results.push({...progress.result, sha256: ""});
            if (benchmark.plan.signal?.aborted !== true)
                store.progress(run.id, {done: progress.done, total: progress.total, model: progress.result == null ? progress.model : null}, results);
        });
        for (const result of results)
            result.sha256 = benchmark.knownSha256?.(result.path) ?? await sha256Of(result.path);
        store.finish(run.id, {results});
    } catch (error) {
        try {
            store.finish(run.id, {error: (error as Error).message});
        } catch {
            // The store closed with the server; the next start marks this run interrupted.
        }
    }
    return store.get(run.id)!;
}
