import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import type {Llama} from "node-llama-cpp";
import {defaultThreadCount} from "./defaultThreadCount.js";
import {HearthError, ModelNotFoundError, ModelNotReadyError} from "./errors.js";
import {LoadedModel} from "./LoadedModel.js";

export type Backend = "cuda" | "metal" | "vulkan" | "cpu";

export type EngineOptions = {
    /** Defaults to `"auto"`: CUDA, Metal or Vulkan when usable, else the CPU. */
    gpu: "auto" | Backend,
    gpuLayers: "auto" | "max" | number,
    /** Defaults to `"auto"`: {@link defaultThreadCount} of the machine's math cores. */
    threads: "auto" | number,
    parallel: number,
    ctxSize: number,
    maxQueue: number,
    chatTemplate?: string,
    log?: (level: "info" | "warn" | "error", message: string) => void
};

export type ModelToLoad = {path: string, names: readonly string[]};

type Entry = {spec: ModelToLoad, state: "pending" | "ready" | "failed", model?: LoadedModel, error?: Error};

export class BackendUnavailableError extends HearthError {
    override readonly name = "BackendUnavailableError";

    constructor(backend: string, reason: string) {
        super(`The ${backend} backend is not available on this machine (${reason}). Use --gpu auto to pick the best available one, or --gpu cpu.`,
            {statusCode: 400, code: "backend_unavailable"});
    }
}

/**
 * Owns node-llama-cpp and every loaded model. It is created before the server listens and loads
 * in the background, so `/health` can answer `loading` at once; requests for a model still loading
 * get 503 with `Retry-After`.
 */
export class Engine {
    readonly options: EngineOptions;
    readonly #entries = new Map<string, Entry>();
    #llama: Llama | undefined;
    #threads: number | undefined;
    #started: Promise<void> | undefined;
    #disposed = false;

    constructor(options: EngineOptions, models: readonly ModelToLoad[]) {
        this.options = options;
        for (const spec of models) {
            const entry: Entry = {spec, state: "pending"};
            for (const name of spec.names)
                this.#entries.set(name, entry);
        }
    }

    /** Starts the backend and loads every model; resolves when all have loaded or failed. */
    start(): Promise<void> {
        this.#started ??= this.#start();
        return this.#started;
    }

    get status(): "loading" | "ok" {
        return [...this.#entries.values()].some((entry) => entry.state === "pending") || this.#llama == null ? "loading" : "ok";
    }

    get llama(): Llama | undefined {
        return this.#llama;
    }

    /** Evaluation threads in use; known once started. */
    get threads(): number | undefined {
        return this.#threads;
    }

    get backend(): Backend | undefined {
        const gpu = this.#llama?.gpu;
        return gpu == null ? undefined : gpu === false ? "cpu" : gpu;
    }

    /** Loaded models, each once. */
    get models(): LoadedModel[] {
        return [...new Set([...this.#entries.values()].flatMap((entry) => entry.model != null ? [entry.model] : []))];
    }

    /** Every name a model is served under, loaded or not. */
    get servedNames(): string[] {
        return [...this.#entries.keys()];
    }

    get(name: string): LoadedModel {
        const entry = this.#entries.get(name);
        if (entry == null)
            throw new ModelNotFoundError(name, this.servedNames);
        if (entry.state === "pending")
            throw new ModelNotReadyError(`The model "${name}" is still loading. Retry in a moment.`);
        if (entry.state === "failed")
            throw new ModelNotReadyError(`The model "${name}" failed to load: ${entry.error?.message ?? "unknown error"}`, 60);
        return entry.model!;
    }

    async #start(): Promise<void> {
        const {gpu} = this.options;
        const log = this.options.log ?? (() => undefined);
        try {
            this.#llama = await getLlama({
                gpu: gpu === "cpu" ? false : gpu,
                build: "never",
                logLevel: LlamaLogLevel.error,
                logger: (level, message) => {
                    if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
                        log("error", message.trim());
                }
            });
        } catch (error) {
            const reason = (error as Error).name === "NoBinaryFoundError"
                ? "no node-llama-cpp build for it runs here; its driver or runtime is missing"
                : (error as Error).message;
            throw new BackendUnavailableError(gpu, reason);
        }
        if (gpu !== "auto" && this.backend !== gpu) {
            const fallback = this.backend;
            await this.#llama.dispose();
            this.#llama = undefined;
            throw new BackendUnavailableError(gpu, `node-llama-cpp offered ${fallback} instead`);
        }
        this.#threads = this.options.threads === "auto" ? defaultThreadCount(this.#llama.cpuMathCores) : this.options.threads;
        log("info", `backend ${this.backend}, ${this.#threads} threads`);
        if (gpu === "auto" && this.#llama.gpu === false)
            log("info", "no usable GPU backend (CUDA, Metal, Vulkan) was found; running on the CPU");

        for (const entry of new Set(this.#entries.values())) {
            if (this.#disposed)
                return;
            try {
                entry.model = await LoadedModel.load(this.#llama, {
                    names: entry.spec.names,
                    path: entry.spec.path,
                    parallel: this.options.parallel,
                    ctxSize: this.options.ctxSize,
                    threads: this.#threads,
                    gpuLayers: this.options.gpuLayers,
                    maxQueue: this.options.maxQueue,
                    chatTemplate: this.options.chatTemplate
                });
                entry.state = "ready";
                log("info", `loaded ${entry.spec.names.join(", ")} from ${entry.spec.path}`);
            } catch (error) {
                entry.state = "failed";
                entry.error = error as Error;
                log("error", `could not load ${entry.spec.path}: ${(error as Error).message}`);
            }
        }
    }

    async dispose(): Promise<void> {
        if (this.#disposed)
            return;
        this.#disposed = true;
        await this.#started?.catch(() => undefined);
        for (const model of this.models) {
            model.scheduler.rejectWaiting(new ModelNotReadyError("The server is shutting down"));
            await model.dispose();
        }
        await this.#llama?.dispose();
    }
}
