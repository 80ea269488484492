import {createReadStream, createWriteStream} from "node:fs";
import {stat} from "node:fs/promises";
import path from "node:path";
import type {Llama, LlamaModel, Token} from "node-llama-cpp";
import {fileTypeName, readGgufSummary} from "../../models/readGgufSummary.js";
import {parseQuantization} from "../../models/quantization.js";
import {LoadedModel} from "../LoadedModel.js";
import type {FlashAttentionSetting} from "../flashAttention.js";
import {logSoftmax, QualityMeter} from "./quality.js";

export type ModelBenchSettings = {
    /** Tokens per chunk of the quality text, and the context of each slot. */
    ctxSize: number,
    /** Prompt length for prompt tokens/s. */
    promptTokens: number,
    /** Tokens generated for generation tokens/s. */
    generateTokens: number,
    /** Generations run at once, each on its own slot; tokens/s is then their aggregate. */
    parallel: number,
    repetitions: number,
    threads: number,
    gpuLayers: "auto" | "max" | number,
    flashAttention: FlashAttentionSetting
};

/** A figure measured several times: the median, and the lowest and highest. */
export type Spread = {median: number, min: number, max: number};

export type ModelBenchResult = {
    model: string,
    path: string,
    size_bytes: number,
    quant: string | undefined,
    load_ms: number,
    /** Prompt tokens/s, median of the repetitions. */
    pp_tps: number,
    /** Generation tokens/s after the first token (of all `parallel` generations together), median of the repetitions. */
    tg_tps: number,
    /** Time to first token for the prompt, median of the repetitions. */
    ttft_ms: number,
    /** The highest resident memory of the process that loaded and ran this model alone (before the quality pass). */
    peak_rss_bytes: number,
    /** VRAM the model and its context took; 0 on the CPU. */
    vram_bytes: number,
    perplexity: number,
    /** Mean KL divergence from the reference model's next-token distributions (the first model's; 0 for itself). */
    kld: number,
    /** Positions of the text that perplexity and KLD were measured on. */
    scored_tokens: number,
    repetitions: number,
    spread: {pp_tps: Spread, tg_tps: Spread, ttft_ms: Spread},
    settings: ModelBenchSettings
};

/**
 * The reference distributions the first model writes and every other model reads, position by position:
 * a file of float32 log-probabilities, one full vocabulary per scored position.
 */
export type ReferenceFile = {path: string, mode: "write" | "read"};

/** Measures one model in this process: load, prompt and generation speed, memory, then quality on `text`. */
export async function benchmarkModel(llama: Llama, modelPath: string, text: string, settings: ModelBenchSettings, reference: ReferenceFile): Promise<ModelBenchResult> {
    const [summary, {size}] = await Promise.all([readGgufSummary(modelPath), stat(modelPath)]);
    const vramBefore = llama.gpu !== false ? (await llama.getVramState()).used : 0;
    const loadStarted = performance.now();
    const loaded = await LoadedModel.load(llama, {
        // The slot holds the speed prompt and its generation (plus BOS); quality chunks get their own context.
        names: [path.basename(modelPath, ".gguf")], path: modelPath, parallel: settings.parallel,
        ctxSize: Math.max(settings.ctxSize, settings.promptTokens + settings.generateTokens + 2),
        threads: settings.threads, flashAttention: settings.flashAttention, gpuLayers: settings.gpuLayers, maxQueue: 0
    });
    const loadMs = performance.now() - loadStarted;
    try {
        const vramBytes = llama.gpu !== false ? Math.max(0, (await llama.getVramState()).used - vramBefore) : 0;
        const textTokens = loaded.model.tokenize(text);
        const speed = await measureSpeed(loaded, textTokens, settings);
        // Read before the quality pass, whose full-vocabulary distributions are the benchmark's, not the model's.
        const peakRssBytes = process.resourceUsage().maxRSS * 1024;
        const quality = await measureQuality(loaded.model, textTokens, settings, reference);
        return {
            model: path.basename(modelPath),
            path: modelPath,
            size_bytes: size,
            quant: parseQuantization(path.basename(modelPath)) ?? fileTypeName(summary.modelInfo["general.file_type"]),
            load_ms: loadMs,
            pp_tps: speed.pp.median,
            tg_tps: speed.tg.median,
            ttft_ms: speed.ttft.median,
            peak_rss_bytes: peakRssBytes,
            vram_bytes: vramBytes,
            perplexity: quality.perplexity,
            kld: reference.mode === "write" ? 0 : quality.kld,
            scored_tokens: quality.positions,
            repetitions: settings.repetitions,
            spread: {pp_tps: speed.pp, tg_tps: speed.tg, ttft_ms: speed.ttft},
            settings
        };
    } finally {
        await loaded.dispose();
    }
}

function spread(values: readonly number[]): Spread {
    const sorted = [...values].sort((a, b) => a - b);
    const middle = sorted.length / 2;
    const median = sorted.length % 2 === 1 ? sorted[Math.floor(middle)]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
    return {median, min: sorted[0]!, max: sorted.at(-1)!};
}

/**
 * Generations through Hearth's own engine path (its decode loop, `parallel` slots), greedy. Each prompt
 * starts at another place in the text, so no cached prefix shortens it.
 */
async function measureSpeed(loaded: LoadedModel, textTokens: readonly Token[], settings: ModelBenchSettings) {
    if (textTokens.length === 0)
        throw new Error("The benchmark text has no tokens");
    const promptFor = (round: number) => Array.from({length: settings.promptTokens},
        (_, index) => textTokens[(round * 17 + index) % textTokens.length]!);
    const pp: number[] = [];
    const tg: number[] = [];
    const ttft: number[] = [];
    // The first repetition warms caches and the JIT and is not counted.
    for (let repetition = 0; repetition <= settings.repetitions; repetition++) {
        const streams = await Promise.all(Array.from({length: settings.parallel}, async (_, stream) => {
            const generation = await loaded.start(loaded.textPrompt(promptFor(repetition * settings.parallel + stream)), {
                maxTokens: settings.generateTokens, sampling: {temperature: 0}, stop: [], ignoreEos: true
            }, "prompt");
            let firstAt = 0;
            for await (const event of generation.events) {
                if (event.type === "done")
                    return {firstAt: firstAt || performance.now(), doneAt: performance.now(), promptTokens: event.usage.promptTokens,
                        completionTokens: event.usage.completionTokens, promptMs: event.timings.promptMs};
                if (firstAt === 0)
                    firstAt = performance.now();
            }
            throw new Error("The generation ended without a result");
        }));
        if (repetition === 0)
            continue;
        for (const stream of streams) {
            pp.push(stream.promptTokens / (stream.promptMs / 1000));
            ttft.push(stream.promptMs);
        }
        const generatedAfterFirst = streams.reduce((sum, stream) => sum + stream.completionTokens - 1, 0);
        const seconds = (Math.max(...streams.map((stream) => stream.doneAt)) - Math.min(...streams.map((stream) => stream.firstAt))) / 1000;
        tg.push(seconds > 0 ? generatedAfterFirst / seconds : 0);
    }
    return {pp: spread(pp), tg: spread(tg), ttft: spread(ttft)};
}

/**
 * Perplexity (and KLD against the reference) over the text, in chunks of the context size: each chunk is
 * evaluated from an empty sequence, and its second half is scored, so every scored token has at least half
 * a context before it (as llama-perplexity does).
 */
async function measureQuality(model: LlamaModel, textTokens: readonly Token[], settings: ModelBenchSettings, reference: ReferenceFile) {
    const chunkSize = Math.min(settings.ctxSize, textTokens.length);
    if (chunkSize < 8)
        throw new Error(`The benchmark text is too short: ${textTokens.length} tokens (at least 8 are needed)`);
    const context = await model.createContext({contextSize: chunkSize + 1, sequences: 1, threads: settings.threads});
    const vocabularySize = model.fileInfo.metadata.tokenizer.ggml.tokens.length;
    const referenceIo = reference.mode === "write" ? new ReferenceWriter(reference.path) : await ReferenceReader.open(reference.path, vocabularySize);
    const meter = new QualityMeter();
    try {
        const sequence = context.getSequence();
        for (let start = 0; start + chunkSize <= textTokens.length; start += chunkSize) {
            const chunk = textTokens.slice(start, start + chunkSize);
            const firstScored = Math.floor(chunkSize / 2);
            await sequence.clearHistory();
            const input = [model.tokens.bos ?? chunk[0]!, ...chunk].map((token, index) =>
                index >= firstScored && index < chunk.length ? [token, {generateNext: {logits: true}}] as const : token);
            const output = await sequence.controlledEvaluate(input as Parameters<typeof sequence.controlledEvaluate>[0]);
            for (let index = firstScored; index < chunk.length; index++) {
                const logits = new Float32Array(vocabularySize).fill(-Infinity);
                for (const [token, logit] of output[index]!.next.logits!)
                    logits[token] = logit;
                const logProbs = logSoftmax(logits);
                if (referenceIo instanceof ReferenceWriter) {
                    referenceIo.write(logProbs);
                    meter.add(logProbs, chunk[index]!);
                } else {
                    meter.add(logProbs, chunk[index]!, await referenceIo.next());
                }
            }
        }
    } finally {
        await referenceIo.close();
        await context.dispose();
    }
    return meter;
}

class ReferenceWriter {
    readonly #stream;

    constructor(filePath: string) {
        this.#stream = createWriteStream(filePath);
    }

    write(logProbs: Float32Array): void {
        this.#stream.write(Buffer.from(logProbs.buffer, logProbs.byteOffset, logProbs.byteLength));
    }

    close(): Promise<void> {
        return new Promise((resolve, reject) => this.#stream.end((error?: Error | null) => error != null ? reject(error) : resolve()));
    }
}

class ReferenceReader {
    readonly #iterator: AsyncIterator<Buffer>;
    readonly #bytesPerPosition: number;
    #buffered = Buffer.alloc(0);
    readonly #stream;

    private constructor(stream: ReturnType<typeof createReadStream>, vocabularySize: number) {
        this.#stream = stream;
        this.#iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
        this.#bytesPerPosition = vocabularySize * 4;
    }

    static async open(filePath: string, vocabularySize: number): Promise<ReferenceReader> {
        const {size} = await stat(filePath);
        if (size % (vocabularySize * 4) !== 0)
            throw new Error(`The reference model's vocabulary is not this model's (${vocabularySize} tokens): KL divergence needs models of the same family`);
        return new ReferenceReader(createReadStream(filePath), vocabularySize);
    }

    async next(): Promise<Float32Array> {
        while (this.#buffered.length < this.#bytesPerPosition) {
            const {value, done} = await this.#iterator.next();
            if (done === true)
                throw new Error("The reference model scored fewer positions than this one: the models tokenize the text differently");
            this.#buffered = Buffer.concat([this.#buffered, value]);
        }
        const bytes = Buffer.from(this.#buffered.subarray(0, this.#bytesPerPosition));
        this.#buffered = this.#buffered.subarray(this.#bytesPerPosition);
        return new Float32Array(bytes.buffer, bytes.byteOffset, this.#bytesPerPosition / 4);
    }

    async close(): Promise<void> {
        this.#stream.destroy();
    }
}
