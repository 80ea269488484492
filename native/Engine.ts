import {stat} from "node:fs/promises";
import {LlamaLogLevel} from "node-llama-cpp";
import type {Llama} from "node-llama-cpp";
import type {ModelShape} from "../models/modelShape.js";
import {readModelShape} from "../models/readModelShape.js";
import {defaultThreadCount} from "./defaultThreadCount.js";
import {HearthError, InvalidRequestError, ModelInUseError, ModelNotFoundError, ModelNotReadyError, ModelTooLargeError} from "./errors.js";
import type {LoadedModel} from "./LoadedModel.js";
import {loadBackend} from "./loadBackend.js";
import type {BackendReport} from "./loadBackend.js";
import {planOffload} from "./planOffload.js";
import type {LoadSettings, MemoryAvailable, OffloadPlan, ProjectorLoad} from "./planOffload.js";
import {memoryAvailable} from "./systemReport.js";
import {PromptCache, defaultPromptCacheBytes} from "./decode/PromptCache.js";
import {nativeGpuDevices} from "./decode/NativeDecodeLoop.js";
import type {EngineOptions, LoadedModelInfo, ModelLease, ModelToLoad} from "./engineTypes.js";
import {loadPlannedModel} from "./loadPlannedModel.js";

export type {Backend} from "./loadBackend.js";
export type {EngineOptions, LoadedModelInfo, ModelCatalog, ModelLease, ModelToLoad} from "./engineTypes.js";

type Entry = {
    spec: ModelToLoad,
    settings: LoadSettings,
    plan?: OffloadPlan,
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

/**
 * Owns node-llama-cpp and every loaded model: it loads, keeps alive, evicts and unloads them; routes only
 * acquire and release. It is created before the server listens and loads the pinned models (`--model`)
 * in the background, so `/health` can answer `loading` at once; requests for a model still loading get
 * 503 with `Retry-After`. Library models load on first use (or on an explicit {@link load}) and unload
 * after their keep-alive. Every load is planned first: layers go to the GPU as far as they fit, and a
 * model that cannot fit in free memory is refused with 422 instead of being loaded to crash the process.
 */
export class Engine {
    readonly options: EngineOptions;
    /** Pinned models by each of their names. */
    readonly #pinned = new Map<string, Entry>();
    /** Library models by path, loaded or loading. */
    readonly #onDemand = new Map<string, Entry>();
    #llama: Llama | undefined;
    #backendReport: BackendReport | undefined;
    /** Decode-loop fallback reasons already logged. */
    readonly #loggedLoopReasons = new Set<string>();
    #threads: number | undefined;
    #backendStarted: Promise<Llama> | undefined;
    #started: Promise<void> | undefined;
    #disposed = false;
    /** The RAM cache of evicted slot states, one for every model (`--cache-ram`). */
    readonly promptCache: PromptCache;

    constructor(options: EngineOptions, models: readonly ModelToLoad[]) {
        this.options = options;
        this.promptCache = new PromptCache(options.cacheRamBytes ?? defaultPromptCacheBytes());
        for (const spec of models) {
            const entry: Entry = {spec, settings: this.defaultSettings, pinned: true, state: "pending", users: 0, lastUsedMs: 0, keepAliveMs: -1};
            for (const name of spec.names)
                this.#pinned.set(name, entry);
        }
    }

    /** Starts the backend and loads every pinned model; resolves when all have loaded or failed. */
    start(): Promise<void> {
        this.#started ??= this.#start();
        return this.#started;
    }

    /** The backend, started if it was not (without waiting for pinned models to load). */
    startBackend(): Promise<Llama> {
        this.#backendStarted ??= this.#startBackend();
        return this.#backendStarted;
    }

    /** The settings a model loads with unless a load asks for others: the server's flags. */
    get defaultSettings(): LoadSettings {
        return {ctxSize: this.options.ctxSize, parallel: this.options.parallel, gpuLayers: this.options.gpuLayers, kvCacheType: this.options.kvCacheType ?? "f16"};
    }

    /** Evaluation threads each model uses; known once the backend has started. */
    get threads(): number | undefined {
        return this.#threads;
    }

    /** Which backend was chosen and why; known once the backend has started. */
    get backendReport(): BackendReport | undefined {
        return this.#backendReport;
    }

    get status(): "loading" | "ok" {
        return [...this.#pinned.values()].some((entry) => entry.state === "pending") || this.#llama == null ? "loading" : "ok";
    }

    /** Loaded models, each once. */
    get models(): LoadedModel[] {
        return this.#entries().flatMap((entry) => entry.model != null ? [entry.model] : []);
    }

    get loadedModels(): LoadedModelInfo[] {
        return this.#entries().filter((entry) => entry.model != null).map((entry) => ({
            names: entry.spec.names,
            path: entry.spec.path,
            pinned: entry.pinned,
            expiresAt: entry.expiresAt,
            plan: entry.plan!,
            decodeLoop: entry.model!.decodeLoop,
            speculation: entry.model!.speculation
        }));
    }

    /** Every name a model is served under, loaded or not. */
    get servedNames(): string[] {
        return [...new Set([...this.#pinned.keys(), ...this.options.catalog?.names() ?? []])];
    }

    /** The file a served name loads from, pinned or in the library. */
    pathOf(name: string): string | undefined {
        return this.#pinned.get(name)?.spec.path ?? this.options.catalog?.find(name)?.path;
    }

    /** The projector (mmproj) a served name loads with, pinned or in the library; undefined for a model that cannot see. */
    projectorOf(name: string): string | undefined {
        const pinned = this.#pinned.get(name);
        return pinned != null ? pinned.spec.projectorPath : this.options.catalog?.find(name)?.projectorPath;
    }

    #entries(): Entry[] {
        return [...new Set([...this.#pinned.values(), ...this.#onDemand.values()])];
    }

    /** A pinned model that has loaded; throws 404 or 503 otherwise. For library models use {@link acquire}. */
    get(name: string): LoadedModel {
        const entry = this.#pinnedEntry(name);
        if (entry == null)
            throw new ModelNotFoundError(name, this.servedNames);
        return this.#readyModel(name, entry);
    }

    #readyModel(name: string, entry: Entry): LoadedModel {
        if (entry.state === "pending")
            throw new ModelNotReadyError(`The model "${name}" is still loading. Retry in a moment.`);
        if (entry.state === "failed" && entry.error instanceof HearthError)
            throw entry.error;
        if (entry.state === "failed")
            throw new ModelNotReadyError(`The model "${name}" failed to load: ${entry.error?.message ?? "unknown error"}`, 60);
        return entry.model!;
    }

    /**
     * The model a request runs on, loading a library model first if needed. Release the lease when the
     * request is done; `keepAliveMs` (a request's `keep_alive`) then says how long it stays loaded.
     */
    async acquire(name: string, {keepAliveMs}: {keepAliveMs?: number} = {}): Promise<ModelLease> {
        const pinned = this.#pinnedEntry(name);
        if (pinned != null)
            return this.#lease(pinned, this.#readyModel(name, pinned), keepAliveMs);
        await this.#backendStarting();
        const entry = this.#onDemandEntry(this.#find(name), undefined);
        return this.#leaseWhenLoaded(entry, keepAliveMs);
    }

    /**
     * Loads a model with these settings now (`POST /api/load`); settings not given keep those it is loaded
     * with (the server's flags for a model not loaded). A model loaded with other settings is reloaded with
     * these when it is idle, pinned ones too (they stay pinned); one in use or still loading is refused with
     * {@link ModelInUseError}, naming what differs, and never answered with its old settings. A reload that
     * fails (it does not fit) loads the model back as it was and throws. A library model stays loaded for
     * `keepAliveMs` after its last request; by default until unloaded.
     */
    async load(name: string, settings: Partial<LoadSettings> = {}, {keepAliveMs = -1}: {keepAliveMs?: number} = {}): Promise<LoadedModelInfo> {
        const pinned = this.#pinnedEntry(name);
        if (pinned != null) {
            await this.#loadPinned(name, pinned, settings);
            return this.loadedModels.find((loaded) => loaded.path === pinned.spec.path)!;
        }
        await this.#backendStarting();
        const spec = this.#find(name);
        for (;;) {
            const current = this.#onDemand.get(spec.path);
            const differing = current != null ? settingsDiffering(current, settings) : [];
            if (current == null || differing.length === 0) {
                const wanted = {...this.defaultSettings, ...settings};
                const lease = await this.#leaseWhenLoaded(current ?? this.#onDemandEntry(spec, wanted), keepAliveMs);
                lease.release();
                return this.loadedModels.find((loaded) => loaded.path === spec.path)!;
            }
            refuseIfInUse(name, current, settings, differing);
            await this.#unload(current);
            if (this.#onDemand.has(spec.path))
                continue; // Another request loaded it again meanwhile: compare with that one.
            try {
                const lease = await this.#leaseWhenLoaded(this.#onDemandEntry(spec, {...current.settings, ...settings}), keepAliveMs);
                lease.release();
                return this.loadedModels.find((loaded) => loaded.path === spec.path)!;
            } catch (error) {
                if (!this.#onDemand.has(spec.path) && !this.#disposed)
                    await this.#leaseWhenLoaded(this.#onDemandEntry(spec, current.settings), current.keepAliveMs).then((lease) => lease.release(), () => undefined);
                throw error;
            }
        }
    }

    /** The pinned model a name is served by: one of its own names, or a library name for the same file. */
    #pinnedEntry(name: string): Entry | undefined {
        const entry = this.#pinned.get(name);
        if (entry != null)
            return entry;
        const path = this.options.catalog?.find(name)?.path;
        return path != null ? [...this.#pinned.values()].find((candidate) => candidate.spec.path === path) : undefined;
    }

    /**
     * `load` for a pinned model: nothing to do when it is loaded with these settings; else, when idle (or it
     * failed to load), it is unloaded and loaded again with them, staying pinned. Requests that come
     * meanwhile get 503 "still loading", as at start.
     */
    async #loadPinned(name: string, entry: Entry, settings: Partial<LoadSettings>): Promise<void> {
        if (entry.state === "pending")
            this.#readyModel(name, entry);
        const differing = settingsDiffering(entry, settings);
        if (entry.state === "ready") {
            if (differing.length === 0)
                return;
            refuseIfInUse(name, entry, settings, differing);
        }
        const previous = entry.state === "ready" ? entry.settings : undefined;
        const old = entry.model;
        entry.state = "pending";
        entry.model = undefined;
        if (old != null) {
            old.scheduler.rejectWaiting(new ModelNotReadyError(`The model "${name}" is being reloaded with other settings. Retry in a moment.`));
            await old.dispose();
            this.options.log?.("info", `unloaded ${entry.spec.names[0]} to reload it with other settings`);
        }
        try {
            await this.#loadPinnedWith(entry, {...entry.settings, ...settings});
        } catch (error) {
            if (previous != null) {
                await this.#loadPinnedWith(entry, previous).catch((restoreError: unknown) => {
                    entry.state = "failed";
                    entry.error = restoreError as Error;
                });
            } else {
                entry.state = "failed";
                entry.error = error as Error;
            }
            throw error;
        }
    }

    async #loadPinnedWith(entry: Entry, settings: LoadSettings): Promise<void> {
        const plan = await this.plan(await shapeOf(entry.spec), settings, await this.#projectorLoad(entry.spec), await draftShapeOf(entry.spec));
        if (!plan.fits)
            throw new ModelTooLargeError(entry.spec.names[0]!, plan.message!);
        const model = await this.#loadModel({...entry, settings}, plan);
        if (this.#disposed) {
            await model.dispose();
            throw new ModelNotReadyError("The server is shutting down");
        }
        entry.settings = settings;
        entry.plan = plan;
        entry.model = model;
        entry.state = "ready";
        entry.error = undefined;
        this.options.log?.("info", `loaded ${entry.spec.names.join(", ")} from ${entry.spec.path} (${describePlan(plan)})`);
    }

    /**
     * A library request that comes while the backend is still starting (choosing a GPU backend can take seconds)
     * waits for it rather than being turned away.
     */
    async #backendStarting(): Promise<void> {
        if (this.#llama == null)
            await this.#backendStarted?.catch(() => undefined);
    }

    #find(name: string): ModelToLoad {
        const spec = this.options.catalog?.find(name);
        if (spec == null)
            throw new ModelNotFoundError(name, this.servedNames);
        if (this.#llama == null)
            throw new ModelNotReadyError("The server is still starting. Retry in a moment.");
        return spec;
    }

    #onDemandEntry(spec: ModelToLoad, settings: LoadSettings | undefined): Entry {
        let entry = this.#onDemand.get(spec.path);
        if (entry == null) {
            entry = {spec, settings: settings ?? this.defaultSettings, pinned: false, state: "pending", users: 0, lastUsedMs: 0, keepAliveMs: this.options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS};
            this.#onDemand.set(spec.path, entry);
        }
        return entry;
    }

    async #leaseWhenLoaded(entry: Entry, keepAliveMs: number | undefined): Promise<ModelLease> {
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
        try {
            entry.plan = await this.#makeRoomFor(entry);
            const model = await this.#loadModel(entry, entry.plan);
            if (this.#disposed) {
                await model.dispose();
                throw new ModelNotReadyError("The server is shutting down");
            }
            entry.model = model;
            entry.state = "ready";
            log("info", `loaded ${entry.spec.names[0]} from ${entry.spec.path} (${describePlan(entry.plan)})`);
            return model;
        } catch (error) {
            this.#onDemand.delete(entry.spec.path);
            if (error instanceof HearthError)
                throw error;
            log("error", `could not load ${entry.spec.path}: ${(error as Error).message}`);
            throw new ModelNotReadyError(`The model "${entry.spec.names[0]}" could not be loaded: ${(error as Error).message}`, 30);
        }
    }

    /**
     * Unloads least recently used idle library models while too many are loaded or the new one does not
     * fit in free memory; returns the plan it loads with, or refuses it if it cannot fit even then.
     */
    async #makeRoomFor(entry: Entry): Promise<OffloadPlan> {
        const maxLoaded = this.options.maxLoadedModels ?? 3;
        const shape = await shapeOf(entry.spec);
        const projector = await this.#projectorLoad(entry.spec);
        const draft = await draftShapeOf(entry.spec);
        for (;;) {
            const loaded = [...this.#onDemand.values()].filter((other) => other !== entry && other.model != null);
            const tooMany = loaded.length >= maxLoaded;
            const plan = await this.plan(shape, entry.settings, projector, draft);
            if (!tooMany && plan.fits)
                return plan;
            const idle = loaded.filter((other) => other.users === 0 && other.model!.scheduler.busySlots === 0).sort((a, b) => a.lastUsedMs - b.lastUsedMs)[0];
            if (idle == null) {
                if (tooMany)
                    throw new ModelNotReadyError(`${loaded.length} models are loaded and all of them are in use; "${entry.spec.names[0]}" can load when one is free.`, 5);
                throw new ModelTooLargeError(entry.spec.names[0]!, plan.message! + (loaded.length > 0 ? ` ${loaded.length} other models are loaded and in use.` : ""));
            }
            await this.#unload(idle);
        }
    }

    /**
     * Memory free for another model now. Weights of loaded models are mapped from their files, and the
     * OS counts such pages as reclaimable; they are not, while the model is in use, so they are taken off.
     */
    async memoryAvailable(): Promise<MemoryAvailable> {
        const llama = await this.startBackend();
        const ram = memoryAvailable();
        const mappedBytes = this.#entries().reduce((sum, entry) => sum + (entry.model != null ? entry.plan?.ramWeightsBytes ?? 0 : 0), 0);
        const vram = llama.gpu !== false ? await llama.getVramState() : {total: 0, free: 0, unifiedSize: 0};
        return {
            ramFreeBytes: Math.max(0, ram.freeBytes - mappedBytes),
            ramTotalBytes: ram.totalBytes,
            vramFreeBytes: vram.free,
            vramTotalBytes: vram.total,
            unifiedMemory: vram.unifiedSize > 0,
            ...vramMaxTensorBytes(llama)
        };
    }

    /** How a model would load on this machine now, with the server's settings unless others are given (and its draft model's shape, if any). */
    async plan(shape: ModelShape, settings: Partial<LoadSettings> = {}, projector?: ProjectorLoad, draft?: ModelShape): Promise<OffloadPlan> {
        return planOffload(shape, {...this.defaultSettings, ...settings}, await this.memoryAvailable(), projector, draft);
    }

    /** A projector's bytes where the plan puts it, for a model loaded with one (or `sizeBytes` for a listed model not yet downloaded). */
    projectorLoad(sizeBytes: number): ProjectorLoad {
        return {sizeBytes, offload: this.options.mmprojOffload ?? true};
    }

    async #projectorLoad(spec: ModelToLoad): Promise<ProjectorLoad | undefined> {
        // A projector that cannot be read is not counted here: loading it fails with the reason.
        const sizeBytes = spec.projectorPath != null ? await stat(spec.projectorPath).then((stats) => stats.size, () => undefined) : undefined;
        return sizeBytes != null ? this.projectorLoad(sizeBytes) : undefined;
    }

    /** How a served model (pinned or in the library) would load now: `GET /api/estimate`, `hearth estimate`. */
    async estimate(name: string, settings: Partial<LoadSettings> = {}): Promise<OffloadPlan> {
        const spec = this.#pinned.get(name)?.spec ?? this.options.catalog?.find(name);
        if (spec == null)
            throw new ModelNotFoundError(name, this.servedNames);
        return this.plan(await shapeOf(spec), settings, await this.#projectorLoad(spec), await draftShapeOf(spec));
    }

    async #loadModel(entry: Entry, plan: OffloadPlan): Promise<LoadedModel> {
        const model = await loadPlannedModel(this.#llama!, entry.spec, entry.settings, plan, {
            threads: this.#threads!, flashAttention: this.options.flashAttention ?? "auto", maxQueue: this.options.maxQueue,
            promptCache: this.promptCache,
            decodeLoop: this.options.decodeLoop ?? "auto",
            ...this.options.speculation != null ? {speculation: this.options.speculation} : {},
            chatTemplate: this.options.chatTemplate, onGenerationDone: this.options.onGenerationDone,
            // Where the plan put it: on the GPU when it fits there (and --no-mmproj-offload was not given).
            projectorOnGpu: plan.projectorBytes > 0 ? plan.projectorOnGpu : this.options.mmprojOffload !== false
        });
        if (model.draftModelUnavailable != null)
            this.options.log?.("warn", `${entry.spec.names[0]} does not draft with its draft model: ${model.draftModelUnavailable}`);
        const vision = model.vision;
        if (entry.spec.projectorPath != null && !vision.available)
            this.options.log?.("warn", `${entry.spec.names[0]} cannot see images here: ${vision.reason}`);
        // A model that falls back for a reason the backend did not give is logged, once per reason.
        const loop = model.decodeLoop;
        if (loop.kind === "javascript" && !this.#loggedLoopReasons.has(loop.reason)) {
            this.#loggedLoopReasons.add(loop.reason);
            this.options.log?.("warn", `decoding ${entry.spec.names[0]} with the JavaScript loop: ${loop.reason}`);
        }
        return model;
    }

    /** Unloads a library model now, unless a request holds it. A model served with `--model` stays, and saying so is an error. */
    async unload(name: string): Promise<boolean> {
        if (this.#pinnedEntry(name) != null)
            throw new ModelInUseError(`"${name}" is served with --model: it stays loaded while the server runs (stop the server, or serve it from the library without --model, to unload or delete it).`, "model");
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

    async #startBackend(): Promise<Llama> {
        const log = this.options.log ?? (() => undefined);
        const {llama, report} = await loadBackend(this.options.gpu, {
            decodeLoop: this.options.decodeLoop,
            gpuDevices: this.options.gpuDevices,
            verbose: this.options.logLlamaCpp ?? false,
            logger: (level, message) => {
                if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
                    log("error", message.trim());
                else if (message.trim() !== "")
                    log("debug", message.trim());
            }
        });
        this.#llama = llama;
        this.#backendReport = report;
        this.#threads = this.options.threads === "auto" ? defaultThreadCount(llama.cpuMathCores) : this.options.threads;
        log("info", `backend ${report.selected} (${report.binary} binary), ${this.#threads} threads` + (report.reason != null && this.options.gpu === "auto" ? ` (${report.reason})` : ""));
        if (report.decodeLoopReason != null) {
            this.#loggedLoopReasons.add(report.decodeLoopReason);
            log("warn", `decoding with the JavaScript loop: the native decode loop is not available (${report.decodeLoopReason})`);
        }
        return llama;
    }

    async #start(): Promise<void> {
        const log = this.options.log ?? (() => undefined);
        await this.startBackend();
        for (const entry of new Set(this.#pinned.values())) {
            if (this.#disposed)
                return;
            try {
                await this.#loadPinnedWith(entry, entry.settings);
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
        await this.#backendStarted?.catch(() => undefined);
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

/** The shape of a model's draft model (`--draft-model`), which its plan counts; undefined without one, or with a projector (it is not loaded then). */
async function draftShapeOf(spec: ModelToLoad): Promise<ModelShape | undefined> {
    if (spec.draftModelPath == null || spec.projectorPath != null)
        return undefined;
    try {
        return await readModelShape(spec.draftModelPath);
    } catch (error) {
        throw new InvalidRequestError(`The draft model of "${spec.names[0]}" cannot be loaded: its GGUF header could not be read (${(error as Error).message}).`, "model", "invalid_model_file");
    }
}

async function shapeOf(spec: ModelToLoad): Promise<ModelShape> {
    try {
        return await readModelShape(spec.path);
    } catch (error) {
        throw new InvalidRequestError(`The model "${spec.names[0]}" cannot be loaded: its GGUF header could not be read (${(error as Error).message}).`, "model", "invalid_model_file");
    }
}

/** The load settings as `/api/load` names them, for messages a person reads. */
const SETTING_NAMES: Record<keyof LoadSettings, string> = {ctxSize: "ctx_size", parallel: "parallel", gpuLayers: "gpu_layers", kvCacheType: "kv_cache_type"};

/**
 * The settings asked for that differ from a model's: a value matches what it was loaded with, or what that
 * came to (`auto` planned to 3 GPU layers matches 3).
 */
/**
 * The largest tensor every GPU device in use runs operations on (the smallest of their limits), where Hearth's addon
 * is loaded for the backend and a device has a limit; else nothing, and planning applies no such limit.
 */
function vramMaxTensorBytes(llama: Llama): {vramMaxTensorBytes?: number} {
    if (llama.gpu === false)
        return {};
    const limits = (nativeGpuDevices(llama) ?? []).flatMap((device) => device.maxTensorBytes != null ? [device.maxTensorBytes] : []);
    return limits.length > 0 ? {vramMaxTensorBytes: Math.min(...limits)} : {};
}

function settingsDiffering(entry: Entry, settings: Partial<LoadSettings>): (keyof LoadSettings)[] {
    const planned: Partial<Record<keyof LoadSettings, unknown>> = entry.plan != null
        ? {ctxSize: entry.plan.contextSize, parallel: entry.plan.parallel, gpuLayers: entry.plan.gpuLayers, kvCacheType: entry.plan.kvCacheType}
        : {};
    return (Object.keys(SETTING_NAMES) as (keyof LoadSettings)[])
        .filter((key) => settings[key] !== undefined && settings[key] !== entry.settings[key] && settings[key] !== planned[key]);
}

/** Refuses to reload a model that a request holds, is generating on, or is still loading, naming what differs. */
function refuseIfInUse(name: string, entry: Entry, settings: Partial<LoadSettings>, differing: readonly (keyof LoadSettings)[]): void {
    const busy = entry.state === "pending" || entry.users > 0 || (entry.model?.scheduler.busySlots ?? 0) > 0;
    if (!busy)
        return;
    const describe = (values: Partial<Record<keyof LoadSettings, unknown>>, keys: readonly (keyof LoadSettings)[]) =>
        keys.map((key) => `${SETTING_NAMES[key]} ${String(values[key])}`).join(", ");
    const shown: (keyof LoadSettings)[] = ["ctxSize", "parallel", ...differing.includes("gpuLayers") ? ["gpuLayers" as const] : []];
    const loadedWith = entry.plan != null ? {ctxSize: entry.plan.contextSize, parallel: entry.plan.parallel, gpuLayers: entry.plan.gpuLayers} : entry.settings;
    throw new ModelInUseError(
        entry.state === "pending"
            ? `"${name}" is still loading with ${describe(entry.settings, shown)}; it can be reloaded with ${describe(settings, differing)} once it has loaded and its requests finish.`
            : `"${name}" is loaded with ${describe(loadedWith, shown)} and in use; it can be reloaded with ${describe(settings, differing)} when its requests finish.`,
        SETTING_NAMES[differing[0]!]
    );
}

function describePlan(plan: OffloadPlan): string {
    return `${plan.gpuLayers}/${plan.layersTotal} layers on the GPU, ${plan.contextSize} tokens x ${plan.parallel} slots: ${plan.contextReason}` +
        (plan.kvCacheType !== "f16" ? `, ${plan.kvCacheType} KV cache` : "") +
        (plan.draft != null ? `; draft model ${Math.round((plan.draft.ramBytes + plan.draft.vramBytes) / 2 ** 20)} MiB, ${plan.draft.gpuLayers > 0 ? "on the GPU" : "on the CPU"}` : "");
}
