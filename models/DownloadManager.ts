import {DownloadCancelledError, DownloadNotFoundError} from "./errors.js";
import type {Library, PullProgress} from "./Library.js";
import {formatModelName, parseModelName} from "./modelNames.js";

export type DownloadStatus = "queued" | "downloading" | "verifying" | "paused" | "failed" | "complete";

/** One pull as the desktop app shows it: it outlives the request that started it. */
export type Download = {
    name: string,
    status: DownloadStatus,
    completedBytes: number,
    totalBytes: number,
    bytesPerSecond: number,
    /** Undefined until a speed is known. */
    etaSeconds: number | undefined,
    error: string | undefined,
    updatedAt: string
};

type Entry = {state: Download, files: string[], controller: AbortController | undefined, settled: Promise<void>};

/**
 * Pulls that run in the server, not in a request: a client starts one, then follows, pauses, resumes or
 * cancels it by name, and a reload of the page loses nothing. Pausing keeps the partial files, so resuming
 * continues from the last byte; cancelling deletes them.
 */
export class DownloadManager {
    #bytesReceived = 0;

    /** Bytes received by downloads since this manager started, for `/metrics`. */
    get bytesReceived(): number {
        return this.#bytesReceived;
    }

    readonly #library: Library;
    readonly #downloads = new Map<string, Entry>();

    constructor(library: Library) {
        this.#library = library;
    }

    list(): Download[] {
        return [...this.#downloads.values()].map((entry) => ({...entry.state}));
    }

    /**
     * Starts (or resumes) pulling a Hub model. Resolves once the Hub has answered and the download is
     * queued or running, so a bad name, a missing quantization or a full disk reject here with their status.
     */
    async start(input: string): Promise<Download> {
        const known = this.#entryFor(input);
        if (known != null && known.controller != null)
            return {...known.state};
        const controller = new AbortController();
        let entry: Entry | undefined;
        let onStarted!: (entry: Entry) => void;
        const started = new Promise<Entry>((resolve) => onStarted = resolve);
        const onProgress = (progress: PullProgress) => {
            if (progress.status === "resolving")
                return;
            if (entry == null) {
                const previous = this.#downloads.get(key(progress.name));
                entry = {
                    state: previous?.state ?? blankState(progress.name),
                    files: progress.status === "queued" ? progress.files : [],
                    controller,
                    settled: pull.then(() => undefined, () => undefined)
                };
                this.#downloads.set(key(progress.name), entry);
                onStarted(entry);
            }
            if (progress.status === "downloading")
                this.#bytesReceived += Math.max(0, progress.modelCompletedBytes - entry.state.completedBytes);
            update(entry, progress);
        };
        const pull = this.#library.pull(input, {signal: controller.signal, onProgress});
        pull.then(() => {
            if (entry != null)
                entry.controller = undefined;
        }, (error: unknown) => {
            if (entry == null)
                return;
            entry.controller = undefined;
            const paused = error instanceof DownloadCancelledError || controller.signal.aborted;
            entry.state = {
                ...entry.state, status: paused ? "paused" : "failed", error: paused ? undefined : (error as Error).message,
                bytesPerSecond: 0, etaSeconds: undefined, updatedAt: now()
            };
        });
        // Errors before the first progress (a bad name, the Hub, the disk) belong to the caller.
        return {...(await Promise.race([started, pull.then((model) => this.#downloads.get(key(model.name))!)])).state};
    }

    /** Stops a running download, keeping what it has downloaded. */
    async pause(name: string): Promise<Download> {
        const entry = this.#entryFor(name) ?? notFound(name);
        entry.controller?.abort();
        await entry.settled;
        return {...entry.state};
    }

    /** Stops a download if it runs and deletes its partial files; it disappears from the list. */
    async cancel(name: string): Promise<void> {
        const entry = this.#entryFor(name) ?? notFound(name);
        entry.controller?.abort();
        await entry.settled;
        this.#downloads.delete(key(entry.state.name));
        if (entry.state.status !== "complete")
            await this.#library.deleteFiles(entry.files);
    }

    /** Stops every running download, keeping their partial files. */
    async dispose(): Promise<void> {
        for (const entry of this.#downloads.values())
            entry.controller?.abort();
        await Promise.all([...this.#downloads.values()].map((entry) => entry.settled));
    }

    #entryFor(input: string): Entry | undefined {
        const parsed = parseModelName(input);
        return parsed.kind === "hub" ? this.#downloads.get(key(formatModelName(parsed))) : undefined;
    }
}

function update(entry: Entry, progress: Exclude<PullProgress, {status: "resolving"}>): void {
    const state = entry.state;
    const at = now();
    switch (progress.status) {
        case "queued":
            entry.state = {...state, status: "queued", totalBytes: progress.modelTotalBytes, error: undefined, bytesPerSecond: 0, etaSeconds: undefined, updatedAt: at};
            return;
        case "downloading":
            entry.state = {
                ...state, status: "downloading", completedBytes: progress.modelCompletedBytes, totalBytes: progress.modelTotalBytes,
                bytesPerSecond: progress.bytesPerSecond, etaSeconds: progress.etaSeconds, error: undefined, updatedAt: at
            };
            return;
        case "verifying":
            entry.state = {...state, status: "verifying", completedBytes: state.totalBytes, bytesPerSecond: 0, etaSeconds: undefined, updatedAt: at};
            return;
        case "success": {
            // The projector was downloaded with the model, so the bar ends at both.
            const totalBytes = progress.model.sizeBytes + (progress.model.projector?.sizeBytes ?? 0);
            entry.state = {...state, status: "complete", completedBytes: totalBytes, totalBytes, bytesPerSecond: 0, etaSeconds: undefined, error: undefined, updatedAt: at};
            return;
        }
    }
}

function blankState(name: string): Download {
    return {name, status: "queued", completedBytes: 0, totalBytes: 0, bytesPerSecond: 0, etaSeconds: undefined, error: undefined, updatedAt: now()};
}

const key = (name: string) => name.toLowerCase();
const now = () => new Date().toISOString();

function notFound(name: string): never {
    throw new DownloadNotFoundError(name);
}
