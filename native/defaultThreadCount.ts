/**
 * The default number of evaluation threads: every physical math core but one, and at least one.
 *
 * Why not all of them: node-llama-cpp's worker threads spin while they wait for each other, and the
 * JavaScript thread that samples and streams each token needs a core of its own. On a 2-core x86-64
 * machine the tiny model decoded at ~1300 tokens/s with 1 thread and ~95 with 2 (a 14x collapse),
 * because the second worker fought the JS thread for the same core. Leaving one core free keeps
 * the dispatch loop responsive on every machine; `--threads` overrides it.
 */
export function defaultThreadCount(physicalMathCores: number): number {
    return Math.max(1, Math.floor(physicalMathCores) - 1);
}
