/**
 * Run as its own process (a fresh heap and a quiet allocator): loads a model on the CPU as the engine
 * does, with `ctxSize` per slot, `parallel` slots and a K/V cache type (`f16` unless given), and prints what that used as JSON: the buffers
 * llama.cpp reports allocating (weights, KV cache, compute, output) and the other memory the load took
 * (the growth of the process's anonymous memory across `loadModel`: vocabulary tables and metadata).
 */
import {readFileSync} from "node:fs";
import {setTimeout as sleep} from "node:timers/promises";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import {ggmlTypeName, isQuantizedKvCache} from "../../native/kvCacheTypes.js";
import type {KvCacheType} from "../../native/kvCacheTypes.js";

const [modelPath = "", ctxSizeArg, parallelArg, kvCacheType = "f16"] = process.argv.slice(2);
const ctxSize = Number(ctxSizeArg);
const parallel = Number(parallelArg);

const bufferMiB: Record<string, number> = {};
const llama = await getLlama({
    gpu: false,
    build: "never",
    logLevel: LlamaLogLevel.debug,
    logger: (_level, message) => {
        const match = /\b(model|KV|compute|output) buffer size\s*=\s*([\d.]+) MiB/.exec(message);
        if (match != null)
            bufferMiB[match[1]!] = (bufferMiB[match[1]!] ?? 0) + Number(match[2]);
    }
});

const anonymousBytes = () => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]) * 1024;
const before = anonymousBytes();
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const loadOverheadBytes = anonymousBytes() - before;
const cacheType = ggmlTypeName(kvCacheType as KvCacheType);
await model.createContext({
    contextSize: ctxSize, sequences: parallel, threads: 1, batchSize: Math.min(512, ctxSize * parallel),
    // As LoadedModel does: a quantized V cache is read only by the flash-attention kernel.
    ...isQuantizedKvCache(kvCacheType as KvCacheType) ? {flashAttention: true} : {},
    experimentalKvCacheKeyType: cacheType, experimentalKvCacheValueType: cacheType
});
await sleep(200); // llama.cpp's log lines arrive asynchronously
const bytes = (key: string) => Math.round((bufferMiB[key] ?? 0) * 1024 * 1024);
console.log(JSON.stringify({
    weightsBytes: bytes("model"),
    kvBytes: bytes("KV"),
    computeBytes: bytes("compute"),
    outputBytes: bytes("output"),
    loadOverheadBytes
}));
process.exit(0);
