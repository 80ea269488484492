import os from "node:os";
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
    /** How long a library model stays loaded after its last request; negative keeps it loaded. Defaults to 5 minutes. */
    keepAliveMs?: number,
    /** Library models loaded at once; loading one more unloads the least recently used idle one. Defaults to 3. */
    maxLoadedModels?: number,
    /** The models that load on first use (the library). */
    catalog?: ModelCatalog,
    log?: (level: "info" | "warn" | "error", message: string) => void
};

export type ModelToLoad = {path: string, names: readonly string[], sizeBytes?: number};

/** Where models that are not pinned at start come from: the library, which hands over verified paths only. */
export type ModelCatalog = {
    /** The model a name refers to, with its canonical name first in `names`, or undefined. */
    find(name: string): ModelToLoad | undefined,
    /** Every name it can serve. */
    names(): string[]
};

/** A loaded model held by a request; `release` starts its keep-alive once no request holds it. */
export type ModelLease = {readonly model: LoadedModel, release(): void};

export type LoadedModelInfo = {
    names: readonly string[],
    path: string,
    sizeBytes: number,
    pinned: boolean,
    /** When it unloads if nothing uses it; undefined while in use or for a model kept loaded. */
    expiresAt: Date | undefined
};

type Entry = {
    spec: ModelToLoad,
    /** Loaded at start from --model, and never unloaded by keep-alive. */
    pinned: boolean,
    state: "pending" | "ready" | "failed",
    model?: LoadedModel,
    loading?: Promise<LoadedModel>,
    error?: Error,
    users: number,
    lastUsedMs: number,
    keepAliveMs: number,
    timer?: NodeJS.Timeout,
    expiresAt?: Date
};

const DEFAULT_KEEP_ALIVE_MS = 5 * 60 * 1000;

export class BackendUnavailableError extends HearthError {
    override readonly name = "BackendUnavailableError";

    constructor(backend: string, reason: string) {
        super(`The ${backend} backend is not available on this machine (${reason}). Use --gpu auto to pick the best available one, or --gpu cpu.`,
            {statusCode: 400, code: "backend_unavailable"});
    }
}

/**
 * Owns node-llama-cpp and every loaded model: it loads, keeps alive, evicts and unloads them; routes only
 * acquire and release. It is created before the server listens and loads the pinned models (`--model`)
 * in the background, so `/health` can answer `loading` at once; requests for a model still loading get
 * 503 with `Retry-After`. Library models load on first use and unload after their keep-alive.
 */
export class Engine {
    readonly options: EngineOptions;
    /** Pinned models by each of their names. */
    readonly #pinned = new Map<string, Entry>();
    /** Library models by path, loaded or loading. */
    readonly #onDemand = new Map<string, Entry>();
    #llama: Llama | undefined;
    #threads: number | undefined;
    #started: Promise<void> | undefined;
    #disposed = false;

    constructor(options: EngineOptions, models: readonly ModelToLoad[]) {
        this.options = options;
        for (const spec of models) {
            const entry: Entry = {spec, pinned: true, state: "pending", users: 0, lastUsedMs: 0, keepAliveMs: -1};
            for (const name of spec.names)
                this.#pinned.set(name, entry);
        }
    }

    /** Starts the backend and loads every pinned model; resolves when all have loaded or failed. */
    start(): Promise<void> {
        this.#started ??= this.#start();
        return this.#started;
    }

    get status(): "loading" | "ok" {
        return [...this.#pinned.values()].some((entry) => entry.state === "pending") || this.#llama == null ? "loading" : "ok";
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
        return this.#entries().flatMap((entry) => entry.model != null ? [entry.model] : []);
    }

    get loadedModels(): LoadedModelInfo[] {
        return this.#entries().filter((entry) => entry.model != null).map((entry) => ({
            names: entry.spec.names,
            path: entry.spec.path,
            sizeBytes: entry.spec.sizeBytes ?? 0,
            pinned: entry.pinned,
            expiresAt: entry.expiresAt
        }));
    }

    /** Every name a model is served under, loaded or not. */
    get servedNames(): string[] {
        return [...new Set([...this.#pinned.keys(), ...this.options.catalog?.names() ?? []])];
    }

    #entries(): Entry[] {
        return [...new Set([...this.#pinned.values(), ...this.#onDemand.values()])];
    }

    /** A pinned model that has loaded; throws 404 or 503 otherwise. For library models use {@link acquire}. */
    get(name: string): LoadedModel {
        const entry = this.#pinned.get(name);
        if (entry == null)
            throw new ModelNotFoundError(name, this.servedNames);
        return this.#readyModel(name, entry);
    }

    #readyModel(name: string, entry: Entry): LoadedModel {
        if (entry.state === "pending")
            throw new ModelNotReadyError(`The model "${name}" is still loading. Retry in a moment.`);
        if (entry.state === "failed")
            throw new ModelNotReadyError(`The model "${name}" failed to load: ${entry.error?.message ?? "unknown error"}`, 60);
        return entry.model!;
    }

    /**
     * The model a request runs on, loading a library model first if needed. Release the lease when the
     * request is done; `keepAliveMs` (a request's `keep_alive`) then says how long it stays loaded.
     */
    async acquire(name: string, {keepAliveMs}: {keepAliveMs?: number} = {}): Promise<ModelLease> {
        const pinned = this.#pinned.get(name);
        if (pinned != null)
            return this.#lease(pinned, this.#readyModel(name, pinned), keepAliveMs);

        const spec = this.options.catalog?.find(name);
        if (spec == null)
            throw new ModelNotFoundError(name, this.servedNames);
        if (this.#llama == null)
            throw new ModelNotReadyError("The server is still starting. Retry in a moment.");
        let entry = this.#onDemand.get(spec.path);
        if (entry == null) {
            entry = {spec, pinned: false, state: "pending", users: 0, lastUsedMs: 0, keepAliveMs: this.options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS};
            this.#onDemand.set(spec.path, entry);
        }
        entry.users++;
        this.#clearTimer(entry);
        try {
            entry.loading ??= this.#loadOnDemand(entry);
            const model = await entry.loading;
            entry.users--;
            return this.#lease(entry, model, keepAliveMs);
        } catch (error) {
            entry.users--;
            throw error;
        }
    }

    #lease(entry: Entry, model: LoadedModel, keepAliveMs: number | undefined): ModelLease {
        entry.users++;
        entry.lastUsedMs = performance.now();
        if (keepAliveMs != null && !entry.pinned)
            entry.keepAliveMs = keepAliveMs;
        this.#clearTimer(entry);
        let released = false;
        return {
            model,
            release: () => {
                if (released)
                    return;
                released = true;
                entry.users--;
                entry.lastUsedMs = performance.now();
                if (entry.users === 0)
                    this.#startKeepAlive(entry);
            }
        };
    }

    #startKeepAlive(entry: Entry): void {
        if (entry.pinned || entry.keepAliveMs < 0 || this.#disposed)
            return;
        if (entry.keepAliveMs === 0) {
            void this.#unload(entry);
            return;
        }
        entry.expiresAt = new Date(Date.now() + entry.keepAliveMs);
        entry.timer = setTimeout(() => void this.#unload(entry), Math.min(entry.keepAliveMs, 2 ** 31 - 1));
        entry.timer.unref();
    }

    #clearTimer(entry: Entry): void {
        clearTimeout(entry.timer);
        entry.timer = undefined;
        entry.expiresAt = undefined;
    }

    async #loadOnDemand(entry: Entry): Promise<LoadedModel> {
        const log = this.options.log ?? (() => undefined);
        await this.#makeRoomFor(entry);
        try {
            const model = await LoadedModel.load(this.#llama!, this.#loadOptions(entry.spec));
            if (this.#disposed) {
                await model.dispose();
                throw new ModelNotReadyError("The server is shutting down");
            }
            entry.model = model;
            entry.state = "ready";
            log("info", `loaded ${entry.spec.names[0]} from ${entry.spec.path}`);
            return model;
        } catch (error) {
            this.#onDemand.delete(entry.spec.path);
            if (error instanceof HearthError)
                throw error;
            log("error", `could not load ${entry.spec.path}: ${(error as Error).message}`);
            throw new ModelNotReadyError(`The model "${entry.spec.names[0]}" could not be loaded: ${(error as Error).message}`, 30);
        }
    }

    /** Unloads least recently used idle library models while too many are loaded or memory is short. */
    async #makeRoomFor(entry: Entry): Promise<void> {
        const maxLoaded = this.options.maxLoadedModels ?? 3;
        const neededBytes = entry.spec.sizeBytes ?? 0;
        for (;;) {
            const loaded = [...this.#onDemand.values()].filter((other) => other !== entry && other.model != null);
            const tooMany = loaded.length >= maxLoaded;
            const memoryShort = neededBytes > os.freemem();
            if (!tooMany && !memoryShort)
                return;
            const idle = loaded.filter((other) => other.users === 0 && other.model!.scheduler.busySlots === 0).sort((a, b) => a.lastUsedMs - b.lastUsedMs)[0];
            if (idle == null) {
                if (tooMany)
                    throw new ModelNotReadyError(`${loaded.length} models are loaded and all of them are in use; "${entry.spec.names[0]}" can load when one is free.`, 5);
                return; // Memory is short but nothing can be freed: try anyway; node-llama-cpp refuses what cannot fit.
            }
            await this.#unload(idle);
        }
    }

    /** Unloads a library model now, unless a request holds it. */
    async unload(name: string): Promise<boolean> {
        const spec = this.options.catalog?.find(name);
        const entry = spec != null ? this.#onDemand.get(spec.path) : undefined;
        if (entry == null)
            return false;
        if (entry.users > 0)
            throw new ModelNotReadyError(`The model "${name}" is in use; it can be unloaded when its requests finish.`, 5);
        await this.#unload(entry);
        return true;
    }

    async #unload(entry: Entry): Promise<void> {
        if (entry.users > 0 || this.#onDemand.get(entry.spec.path) !== entry)
            return;
        if ((entry.model?.scheduler.busySlots ?? 0) > 0) {
            // A generation whose client left stops at its next token; unload right after.
            setTimeout(() => void this.#unload(entry), 50).unref();
            return;
        }
        this.#clearTimer(entry);
        this.#onDemand.delete(entry.spec.path);
        const model = await entry.loading?.catch(() => undefined);
        if (model != null) {
            await model.dispose();
            this.options.log?.("info", `unloaded ${entry.spec.names[0]}`);
        }
    }

    #loadOptions(spec: ModelToLoad) {
        return {
            names: spec.names,
            path: spec.path,
            parallel: this.options.parallel,
            ctxSize: this.options.ctxSize,
            threads: this.#threads!,
            gpuLayers: this.options.gpuLayers,
            maxQueue: this.options.maxQueue,
            chatTemplate: this.options.chatTemplate
        };
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

        for (const entry of new Set(this.#pinned.values())) {
            if (this.#disposed)
                return;
            try {
                entry.model = await LoadedModel.load(this.#llama, this.#loadOptions(entry.spec));
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
        for (const entry of this.#entries())
            this.#clearTimer(entry);
        await Promise.all([...this.#onDemand.values()].map((entry) => entry.loading?.catch(() => undefined)));
        for (const model of this.models) {
            model.scheduler.rejectWaiting(new ModelNotReadyError("The server is shutting down"));
            await model.dispose();
        }
        await this.#llama?.dispose();
    }
}
