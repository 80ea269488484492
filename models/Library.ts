import {copyFile, link, mkdir, readdir, rm, rmdir, stat, statfs} from "node:fs/promises";
import path from "node:path";
import {downloadFile} from "./downloadFile.js";
import {DownloadCancelledError, InvalidGgufError, InvalidModelNameError, ModelBusyError, ModelExistsError, ModelNotInLibraryError, NotEnoughDiskSpaceError, QuantizationNotFoundError, UnsafePathError} from "./errors.js";
import type {HubClient, HubRepoFiles} from "./HubClient.js";
import {rescaleShape, weightBytes} from "./modelShape.js";
import type {ModelShape} from "./modelShape.js";
import {formatModelName, localNameFor, parseModelName} from "./modelNames.js";
import {defaultQuantization, parseSplitPart, splitPartPath, withoutSplitPart} from "./quantization.js";
import type {QuantEntry, QuantFile} from "./quantization.js";
import {chooseProjector, findProjectorBeside, visionProjectorProblem} from "./findProjector.js";
import {readGgufSummary} from "./readGgufSummary.js";
import {sha256Of} from "./sha256Of.js";
import {readRemoteModelShape} from "./readModelShape.js";
import {ProgressMeter} from "./ProgressMeter.js";
import {Registry} from "./Registry.js";
import type {LibraryFile, LibraryModel} from "./Registry.js";
import type {Presets} from "./Presets.js";

export type PullProgress =
    | {status: "resolving", name: string}
    /** Waiting for a download slot; `files` are the paths it will write, relative to the models folder. */
    | {status: "queued", name: string, files: string[], modelTotalBytes: number}
    /**
     * `totalBytes` and `completedBytes` are this file's; `model…Bytes` count every file of the model. `fileCount` counts the
     * projector, which comes last (`projector: true`), and `partCount` the model's own files.
     */
    | {status: "downloading", name: string, file: string, sha256: string, fileIndex: number, fileCount: number, partCount: number, projector: boolean,
        totalBytes: number, completedBytes: number, modelTotalBytes: number, modelCompletedBytes: number,
        bytesPerSecond: number, etaSeconds: number | undefined}
    | {status: "verifying", name: string}
    | {status: "success", name: string, model: LibraryModel};

export type PullOptions = {signal?: AbortSignal, onProgress?: (progress: PullProgress) => void};

export type LibraryOptions = {
    /** The data folder: the registry and every model file live under it. */
    home: string,
    hub: HubClient,
    /** Downloads running at once; more wait their turn. Defaults to 2. */
    maxConcurrentDownloads?: number,
    /** Download retry delay, first attempt; see {@link downloadFile}. */
    retryDelayMs?: number
};

/** Bytes kept free beyond what a download needs, so a pull never fills the disk to the last byte. */
const DISK_MARGIN_BYTES = 256 * 1024 * 1024;
const PROGRESS_INTERVAL_MS = 100;

/**
 * The model library: what is on disk, in the data folder, and how it got there. Pulls from the Hub are
 * resolved to a commit, checked against free disk space, downloaded resumably and verified before a row
 * is written; imports copy a local file in. Nothing outside the data folder is ever written or deleted.
 */
export class Library {
    readonly home: string;
    readonly modelsDir: string;
    readonly hub: HubClient;
    readonly #registry: Registry;
    readonly #maxConcurrentDownloads: number;
    readonly #retryDelayMs: number | undefined;
    /** Running pulls by name, with everyone following their progress. */
    readonly #pulls = new Map<string, {result: Promise<LibraryModel>, listeners: Set<(progress: PullProgress) => void>}>();
    #activeDownloads = 0;
    readonly #waiting: (() => void)[] = [];
    /** Files being downloaded, by destination: a projector two quantizations of a repo share is downloaded once. */
    readonly #fileDownloads = new Map<string, Promise<unknown>>();
    /**
     * The files (relative paths) each running pull brings, so that deleting another pull's files (a cancelled one's)
     * leaves those it shares with a running one, such as its repo's projector, and their partial downloads.
     */
    readonly #pullingFiles = new Set<readonly string[]>();

    private constructor(options: LibraryOptions, registry: Registry) {
        this.home = path.resolve(options.home);
        this.modelsDir = path.join(this.home, "models");
        this.hub = options.hub;
        this.#registry = registry;
        this.#maxConcurrentDownloads = options.maxConcurrentDownloads ?? 2;
        this.#retryDelayMs = options.retryDelayMs;
    }

    static async open(options: LibraryOptions): Promise<Library> {
        const home = path.resolve(options.home);
        await mkdir(path.join(home, "models"), {recursive: true, mode: 0o700});
        return new Library(options, new Registry(path.join(home, "library.db")));
    }

    list(): LibraryModel[] {
        return this.#registry.list();
    }

    /** Models with their settings under a name; see `Preset`. */
    get presets(): Presets {
        return this.#registry.presets;
    }

    /**
     * The library model a name refers to: `hf.co/o/r:Q4_K_M` exactly, `hf.co/o/r` the repo's default
     * quantization among those pulled, a local name exactly. Undefined when it is not in the library.
     */
    find(input: string): LibraryModel | undefined {
        let name;
        try {
            name = parseModelName(input);
        } catch {
            return undefined;
        }
        if (name.kind === "local" || name.quantization != null)
            return this.#registry.get(formatModelName(name));
        const repo = `${name.owner}/${name.repo}`.toLowerCase();
        return defaultQuantization(this.list().filter((model) => model.repo?.toLowerCase() === repo));
    }

    get(input: string): LibraryModel {
        const model = this.find(input);
        if (model == null) {
            parseModelName(input);
            throw new ModelNotInLibraryError(input);
        }
        return model;
    }

    /** Absolute paths of a model's files, the first one being what the engine loads. */
    filePaths(model: LibraryModel): string[] {
        return model.files.map((file) => this.#inside(file.path));
    }

    /** The absolute path of a model's vision projector, or undefined for a model that cannot see. */
    projectorPath(model: LibraryModel): string | undefined {
        return model.projector != null ? this.#inside(model.projector.path) : undefined;
    }

    /**
     * The shape of each quantization in a Hub listing, before anything is downloaded. One header, the
     * reference quantization's, is read from the Hub with `Range` requests (and kept by its sha256); the
     * others are the same model, so their shapes are that one's rescaled to their exact sizes, rather
     * than megabytes of vocabulary fetched again for each.
     */
    async hubShapes(listing: HubRepoFiles, reference: QuantEntry, signal?: AbortSignal): Promise<Map<QuantEntry, ModelShape>> {
        const key = reference.files.map((file) => file.sha256).join(",");
        let shape = this.#registry.shape(key);
        if (shape == null) {
            const files = reference.files.map((file) => ({url: this.hub.fileUrl(listing.repo, listing.commit, file.path), sizeBytes: file.sizeBytes}));
            shape = await readRemoteModelShape(files, (url) => this.hub.headersFor(url), signal);
            this.#registry.putShape(key, shape);
        }
        const headerBytes = reference.sizeBytes - weightBytes(shape);
        return new Map(listing.quantizations.map((entry) => [entry, entry === reference ? shape : rescaleShape(shape, entry.sizeBytes - headerBytes)]));
    }

    /**
     * A Hub repo's files as a pull takes them: its projectors without those a pull found not to be vision projectors
     * (an audio model's mmproj), and the projector a pull brings chosen among the rest.
     */
    async repoFiles(repo: string): Promise<HubRepoFiles> {
        const listing = await this.hub.repoFiles(repo);
        const projectors = listing.projectors.filter((file) => this.#registry.refusedProjector(file.sha256) == null);
        return projectors.length === listing.projectors.length ? listing : {...listing, projectors, projector: chooseProjector(projectors)};
    }

    /**
     * Pulls a Hub model into the library. A second pull of the same name joins the first and gets its
     * progress from then on; only the first one's signal cancels it.
     */
    async pull(input: string, {signal, onProgress}: PullOptions = {}): Promise<LibraryModel> {
        const name = parseModelName(input);
        if (name.kind !== "hub")
            throw new InvalidModelNameError(input, "only Hub models can be pulled; they are named hf.co/{owner}/{repo}:{QUANT}");
        const key = formatModelName(name).toLowerCase();
        let running = this.#pulls.get(key);
        if (running == null) {
            const listeners = new Set<(progress: PullProgress) => void>();
            const result = this.#pull(name, {signal, onProgress: (progress) => listeners.forEach((listener) => listener(progress))})
                .finally(() => this.#pulls.delete(key));
            running = {result, listeners};
            this.#pulls.set(key, running);
        }
        if (onProgress != null)
            running.listeners.add(onProgress);
        try {
            return await running.result;
        } finally {
            if (onProgress != null)
                running.listeners.delete(onProgress);
        }
    }

    async #pull(name: {owner: string, repo: string, quantization?: string}, {signal, onProgress}: PullOptions): Promise<LibraryModel> {
        const requested = formatModelName({kind: "hub", ...name});
        onProgress?.({status: "resolving", name: requested});
        const listing = await this.repoFiles(`${name.owner}/${name.repo}`);
        const entry = name.quantization != null
            ? listing.quantizations.find((candidate) => candidate.quantization === name.quantization)
            : defaultQuantization(listing.quantizations);
        if (entry == null)
            throw new QuantizationNotFoundError(listing.repo, name.quantization ?? "", listing.quantizations.map((candidate) => candidate.quantization));
        const canonical = formatModelName({kind: "hub", owner: name.owner, repo: name.repo, quantization: entry.quantization});

        const existing = this.#registry.get(canonical);
        // A model pulled before Hearth brought projectors gets its repo's now.
        if (existing != null && existing.commit === listing.commit && await this.#filesPresent(existing) && (listing.projector == null || existing.projector != null)) {
            onProgress?.({status: "success", name: canonical, model: existing});
            return existing;
        }

        // Every file mirrors its repo path, so quantizations of one repo share its projector's file.
        const inLibrary = (file: QuantFile): LibraryFile => ({path: path.posix.join("hf.co", name.owner, name.repo, file.path), sizeBytes: file.sizeBytes, sha256: file.sha256});
        const files = entry.files.map(inLibrary);
        const projector = listing.projector != null ? inLibrary(listing.projector) : undefined;
        const downloads = [...entry.files, ...listing.projector != null ? [listing.projector] : []].map((file) => ({repoPath: file.path, file: inLibrary(file)}));
        // Claimed until the model is recorded: deleting a cancelled pull's files must leave those this pull shares with it.
        const claimed = downloads.map((download) => download.file.path);
        this.#pullingFiles.add(claimed);
        try {
            await this.#checkDiskSpace(canonical, downloads.map((download) => download.file));

            if (signal?.aborted)
                throw new DownloadCancelledError(canonical);
            const modelTotalBytes = downloads.reduce((sum, download) => sum + download.file.sizeBytes, 0);
            onProgress?.({status: "queued", name: canonical, files: downloads.map((download) => download.file.path), modelTotalBytes});
            await this.#downloadSlot(canonical, signal);
            try {
                await this.#download(canonical, listing.repo, listing.commit, downloads, files.length, {signal, onProgress});
            } finally {
                this.#releaseDownloadSlot();
            }
            onProgress?.({status: "verifying", name: canonical});
            const gguf = await readGgufSummary(this.#inside(files[0]!.path)).catch((error: Error) => {
                throw new InvalidGgufError(`${canonical} downloaded and matched its sha256, but it is not a readable GGUF model: ${error.message}`, {downloaded: true});
            });
            // An mmproj that is not a vision projector (an audio model's) is not kept: the model is served as text only,
            // and the file is remembered as refused, so that the next pull neither takes it again nor waits for it.
            const problem = projector != null ? await visionProjectorProblem(this.#inside(projector.path)) : undefined;
            if (projector != null && problem != null)
                this.#registry.refuseProjector(projector.sha256, problem);
            const seeing = problem == null ? projector : undefined;
            const model: LibraryModel = {
                name: canonical,
                source: "hub",
                repo: listing.repo,
                commit: listing.commit,
                quantization: entry.quantization,
                files,
                sizeBytes: entry.sizeBytes,
                sha256: files[0]!.sha256,
                ...seeing != null ? {projector: seeing} : {},
                gguf,
                createdAt: new Date().toISOString()
            };
            this.#registry.put(model);
            // Recorded: what it keeps is kept as the library's, and what it does not keep is no longer its to hold.
            this.#pullingFiles.delete(claimed);
            if (projector != null && seeing == null)
                await this.deleteFiles([projector.path]);
            onProgress?.({status: "success", name: canonical, model});
            return model;
        } finally {
            this.#pullingFiles.delete(claimed);
        }
    }

    /** Downloads a model's files (`repoPath`: where each is in the repo; its `partCount` parts, then its projector), in order, each with its progress. */
    async #download(name: string, repo: string, commit: string, downloads: {repoPath: string, file: LibraryFile}[], partCount: number, {signal, onProgress}: PullOptions): Promise<void> {
        const files = downloads.map((download) => download.file);
        const modelTotalBytes = files.reduce((sum, file) => sum + file.sizeBytes, 0);
        let earlierFilesBytes = 0;
        for (const [index, file] of files.entries()) {
            const destination = this.#inside(file.path);
            // Another pull may be bringing this file (a projector quantizations share): wait for it, then check it like
            // any file on disk. Nothing is awaited between the last look and claiming the file, so only one pull claims it.
            for (let running = this.#fileDownloads.get(destination); running != null; running = this.#fileDownloads.get(destination))
                await running.catch(() => undefined);
            const meter = new ProgressMeter();
            let lastReport = 0;
            const report = (completedBytes: number, force = false) => {
                const now = performance.now();
                const bytesPerSecond = meter.add(now, completedBytes);
                if (!force && now - lastReport < PROGRESS_INTERVAL_MS)
                    return;
                lastReport = now;
                onProgress?.({
                    status: "downloading", name, file: file.path, sha256: file.sha256, fileIndex: index, fileCount: files.length, partCount, projector: index >= partCount,
                    totalBytes: file.sizeBytes, completedBytes, modelTotalBytes, modelCompletedBytes: earlierFilesBytes + completedBytes, bytesPerSecond,
                    etaSeconds: bytesPerSecond > 0 ? (modelTotalBytes - earlierFilesBytes - completedBytes) / bytesPerSecond : undefined
                });
            };
            const fetchFile = async (): Promise<boolean> => {
                if (await stat(destination).then((stats) => stats.size === file.sizeBytes, () => false) && await sha256Of(destination) === file.sha256)
                    return false;
                await mkdir(path.dirname(destination), {recursive: true, mode: 0o700});
                await downloadFile({
                    url: this.hub.fileUrl(repo, commit, downloads[index]!.repoPath),
                    headersFor: (url) => this.hub.headersFor(url),
                    destination,
                    sizeBytes: file.sizeBytes,
                    sha256: file.sha256,
                    signal,
                    onProgress: report,
                    retryDelayMs: this.#retryDelayMs
                });
                return true;
            };
            const fetching = fetchFile();
            this.#fileDownloads.set(destination, fetching);
            let downloaded;
            try {
                downloaded = await fetching;
            } finally {
                this.#fileDownloads.delete(destination);
            }
            if (downloaded)
                report(file.sizeBytes, true);
            earlierFilesBytes += file.sizeBytes;
        }
    }

    async #checkDiskSpace(name: string, files: readonly LibraryFile[]): Promise<void> {
        let neededBytes = 0;
        for (const file of files) {
            const destination = this.#inside(file.path);
            const done = await stat(destination).then((stats) => stats.size === file.sizeBytes, () => false);
            const partialBytes = await stat(`${destination}.partial`).then((stats) => stats.size, () => 0);
            neededBytes += done ? 0 : Math.max(0, file.sizeBytes - partialBytes);
        }
        const stats = await statfs(this.modelsDir);
        const freeBytes = stats.bavail * stats.bsize;
        if (neededBytes + DISK_MARGIN_BYTES > freeBytes)
            throw new NotEnoughDiskSpaceError(name, neededBytes, freeBytes, this.modelsDir);
    }

    async #downloadSlot(name: string, signal: AbortSignal | undefined): Promise<void> {
        if (this.#activeDownloads < this.#maxConcurrentDownloads) {
            this.#activeDownloads++;
            return;
        }
        await new Promise<void>((resolve, reject) => {
            const onAbort = () => {
                this.#waiting.splice(this.#waiting.indexOf(admit), 1);
                reject(new DownloadCancelledError(name));
            };
            const admit = () => {
                signal?.removeEventListener("abort", onAbort);
                this.#activeDownloads++;
                resolve();
            };
            this.#waiting.push(admit);
            signal?.addEventListener("abort", onAbort, {once: true});
        });
    }

    #releaseDownloadSlot(): void {
        this.#activeDownloads--;
        this.#waiting.shift()?.();
    }

    /**
     * Imports a local GGUF file under a short name: hard-linked when it can be, else copied into the data
     * folder. For a split model, give its first part; every part comes along, keeping llama.cpp's part names.
     * A vision projector beside it (see `findProjectorBeside`) comes along too.
     */
    async import(file: string, nameInput?: string): Promise<LibraryModel> {
        const source = path.resolve(file);
        const split = parseSplitPart(source);
        if (split != null && split.part !== 1)
            throw new InvalidGgufError(`${source} is part ${split.part} of a split model; import its first part (${path.basename(splitPartPath(source, 1, split.of))})`, {downloaded: false});
        const sources = split == null ? [source] : Array.from({length: split.of}, (_, index) => splitPartPath(source, index + 1, split.of));
        const gguf = await readGgufSummary(source).catch((error: Error) => {
            throw new InvalidGgufError(`${source} is not a GGUF model file (or a part of it is missing): ${error.message}`, {downloaded: false});
        });
        const parsed = parseModelName(nameInput ?? localNameFor(withoutSplitPart(source)));
        if (parsed.kind !== "local")
            throw new InvalidModelNameError(nameInput ?? source, "an imported model gets a local name, not an hf.co name");
        if (this.#registry.get(parsed.name) != null)
            throw new ModelExistsError(parsed.name);
        const files: LibraryFile[] = [];
        for (const [index, from] of sources.entries()) {
            const relative = split == null ? `local/${parsed.name}.gguf` : splitPartPath(`local/${parsed.name}.gguf`, index + 1, split.of);
            const destination = this.#inside(relative);
            await mkdir(path.dirname(destination), {recursive: true, mode: 0o700});
            await rm(destination, {force: true});
            await link(from, destination).catch(() => copyFile(from, destination));
            files.push({path: relative, sizeBytes: (await stat(destination)).size, sha256: await sha256Of(destination)});
        }
        const projectorSource = await findProjectorBeside(source);
        let projector: LibraryFile | undefined;
        if (projectorSource != null) {
            const relative = `local/mmproj-${parsed.name}.gguf`;
            const destination = this.#inside(relative);
            await rm(destination, {force: true});
            await link(projectorSource, destination).catch(() => copyFile(projectorSource, destination));
            projector = {path: relative, sizeBytes: (await stat(destination)).size, sha256: await sha256Of(destination)};
        }
        const model: LibraryModel = {
            name: parsed.name,
            source: "local",
            quantization: undefined,
            files,
            sizeBytes: files.reduce((sum, part) => sum + part.sizeBytes, 0),
            sha256: files[0]!.sha256,
            ...projector != null ? {projector} : {},
            gguf,
            createdAt: new Date().toISOString()
        };
        this.#registry.put(model);
        return model;
    }

    /**
     * Deletes files and any partial download of them, keeping those a model in the library still uses and those a
     * running pull is bringing, then folders left empty. `files` are paths relative to the models folder, as a pull's
     * `queued` progress and the registry give them.
     */
    async deleteFiles(files: readonly string[]): Promise<void> {
        const used = new Set(this.list().flatMap((model) => [...model.files, ...model.projector != null ? [model.projector] : []].map((file) => file.path)));
        const pulling = new Set([...this.#pullingFiles].flat());
        for (const file of files) {
            // A running pull is bringing it too (a projector two quantizations share): its partial download is that pull's.
            if (pulling.has(file))
                continue;
            const absolute = this.#inside(file);
            await rm(`${absolute}.partial`, {force: true});
            await rm(`${absolute}.partial.json`, {force: true});
            if (!used.has(file))
                await rm(absolute, {force: true});
            await this.#removeEmptyParents(path.dirname(absolute));
        }
    }

    /** Deletes a model's row and its files. The caller unloads it first. */
    async remove(input: string): Promise<LibraryModel> {
        const model = this.get(input);
        if (this.#pulls.has(model.name.toLowerCase()))
            throw new ModelBusyError(model.name, "is being pulled");
        this.#registry.remove(model.name);
        // A projector another quantization of the repo still uses stays (see deleteFiles).
        await this.deleteFiles([...model.files, ...model.projector != null ? [model.projector] : []].map((file) => file.path));
        return model;
    }

    async #filesPresent(model: LibraryModel): Promise<boolean> {
        for (const file of [...model.files, ...model.projector != null ? [model.projector] : []]) {
            if (!await stat(this.#inside(file.path)).then((stats) => stats.size === file.sizeBytes, () => false))
                return false;
        }
        return true;
    }

    async #removeEmptyParents(folder: string): Promise<void> {
        let current = folder;
        while (current.startsWith(this.modelsDir + path.sep) && (await readdir(current).catch(() => ["?"])).length === 0) {
            await rmdir(current).catch(() => undefined);
            current = path.dirname(current);
        }
    }

    /** A stored relative path made absolute, refusing anything that would land outside the models folder. */
    #inside(relative: string): string {
        const absolute = path.resolve(this.modelsDir, ...relative.split("/"));
        if (!absolute.startsWith(this.modelsDir + path.sep))
            throw new UnsafePathError(relative);
        return absolute;
    }

    close(): void {
        this.#registry.close();
    }
}
