import {createHash} from "node:crypto";
import type {Hash} from "node:crypto";
import {once} from "node:events";
import path from "node:path";
import {createReadStream, createWriteStream} from "node:fs";
import {readFile, rename, rm, stat, truncate, writeFile} from "node:fs/promises";
import {setTimeout as sleep} from "node:timers/promises";
import {DiskFullError, DownloadCancelledError, HubError, IntegrityError, ModelBusyError} from "./errors.js";
import {getFollowingRedirects} from "./getFollowingRedirects.js";
import type {HttpAnswer} from "./getFollowingRedirects.js";
import {backoffMs, isNetworkError, isTransientStatus} from "./withRetries.js";

export type DownloadFileOptions = {
    url: string,
    /** Headers for a URL on the way (the first one and every redirect): credentials go only where they belong. */
    headersFor?: (url: string) => Record<string, string>,
    /** The verified file's path. While downloading, bytes go to `<destination>.partial`. */
    destination: string,
    sizeBytes: number,
    sha256: string,
    signal?: AbortSignal,
    /** Bytes on disk so far, called as they arrive (including what a resumed partial already had). */
    onProgress?: (completedBytes: number) => void,
    /** Attempts after a network error or a 5xx without any progress in between. Defaults to 6. */
    retries?: number,
    /** First retry delay; it doubles on each attempt, up to 15 s. Defaults to 500 ms. */
    retryDelayMs?: number
};

/** What the partial file was for, kept beside it so a later call resumes only the same file. */
type PartialMeta = {sha256: string, sizeBytes: number, etag?: string};

class RetryableError extends Error {
    override readonly name = "RetryableError";
}

/**
 * Downloads one file to `destination`, surviving the real world: bytes go to a partial file that a later
 * call resumes with `Range` (also after the process was killed), network errors and 5xx are retried with
 * backoff, and the file is renamed into place only when its size and sha256 match. A mismatch deletes
 * the partial. A cancel leaves the partial for the next call to resume.
 */
export async function downloadFile(options: DownloadFileOptions): Promise<void> {
    const {destination, sizeBytes, sha256, signal} = options;
    const partial = `${destination}.partial`;
    const metaPath = `${partial}.json`;
    const release = await lock(`${destination}.lock`, destination);
    const progress: Progress = {hash: createHash("sha256"), written: 0};
    try {
        const meta = await readMeta(metaPath);
        const sameFile = meta?.sha256 === sha256 && meta.sizeBytes === sizeBytes;
        if (!sameFile || await stat(partial).then((stats) => stats.size > sizeBytes, () => false))
            await rm(partial, {force: true});
        const state: PartialMeta = {sha256, sizeBytes, etag: sameFile ? meta.etag : undefined};
        await writeFile(metaPath, JSON.stringify(state));

        progress.written = await hashExisting(partial, progress.hash);
        options.onProgress?.(progress.written);
        await receive(options, partial, progress, state, () => writeFile(metaPath, JSON.stringify(state)));
        if (signal?.aborted)
            throw new DownloadCancelledError(path.basename(destination));

        const actualSize = (await stat(partial)).size;
        const digest = progress.hash.digest("hex");
        if (actualSize !== sizeBytes || digest !== sha256) {
            await rm(partial, {force: true});
            await rm(metaPath, {force: true});
            throw new IntegrityError(path.basename(destination), actualSize !== sizeBytes
                ? `it is ${actualSize} bytes, the Hub lists ${sizeBytes}`
                : `its sha256 is ${digest}, the Hub lists ${sha256}`);
        }
        await rename(partial, destination);
        await rm(metaPath, {force: true});
    } finally {
        await release();
    }
}

/** What is on disk in the partial file and fed to `hash`; it stays right when a body breaks off half-way. */
type Progress = {hash: Hash, written: number};

/** Requests the rest of the file until it is all on disk, retrying network errors and 5xx with backoff. */
async function receive(options: DownloadFileOptions, partial: string, progress: Progress, state: PartialMeta, saveState: () => Promise<void>): Promise<void> {
    const {sizeBytes, signal} = options;
    let failures = 0;
    while (progress.written < sizeBytes) {
        const before = progress.written;
        try {
            signal?.throwIfAborted();
            const response = await request(options, progress.written, state.etag);
            if (response.status === 200 && progress.written > 0) {
                // The server sent the whole file (no Range support, or the file changed): start over.
                await truncate(partial, 0);
                progress.hash = createHash("sha256");
                progress.written = 0;
            }
            const etag = response.headers.etag;
            if (etag != null && etag !== state.etag) {
                state.etag = etag;
                await saveState();
            }
            await appendBody(response, partial, progress, sizeBytes, options);
        } catch (error) {
            if (signal?.aborted)
                throw new DownloadCancelledError(path.basename(options.destination));
            if ((error as NodeJS.ErrnoException).code === "ENOSPC")
                throw new DiskFullError(path.basename(options.destination));
            if (!(error instanceof RetryableError) && !isNetworkError(error))
                throw error;
            if (progress.written > before)
                failures = 0;
            if (++failures > (options.retries ?? 6))
                throw new HubError(`Downloading ${options.url} failed after ${failures} attempts: ${(error as Error).message}`);
            await sleep(backoffMs(failures, options.retryDelayMs), undefined, {signal}).catch(() => undefined);
        }
    }
}

/** Asks for the file from `offset`, following redirects; resolves with a 200 or a 206 that starts at `offset`. */
async function request(options: DownloadFileOptions, offset: number, etag: string | undefined): Promise<HttpAnswer> {
    const answer = await getFollowingRedirects(options.url, (url) => {
        const headers: Record<string, string> = {...options.headersFor?.(url) ?? {}};
        if (offset > 0) {
            headers.range = `bytes=${offset}-`;
            if (etag != null && !etag.startsWith("W/"))
                headers["if-range"] = etag;
        }
        return headers;
    }, options.signal);
    const {status} = answer;
    if (status === 206) {
        const start = /^bytes (\d+)-/.exec(answer.headers["content-range"] ?? "")?.[1];
        if (Number(start) !== offset) {
            answer.body.destroy();
            throw new RetryableError(`the server resumed at byte ${start ?? "?"} instead of ${offset}`);
        }
        return answer;
    }
    if (status === 200)
        return answer;
    answer.body.resume();
    if (status === 416)
        throw new RetryableError("the server refused the resume range");
    if (isTransientStatus(status))
        throw new RetryableError(`HTTP ${status}`);
    if (status === 401 || status === 403)
        throw new HubError(`Downloading ${options.url} was refused (HTTP ${status}). For a gated or private repo, accept its terms on the Hub and set HF_TOKEN.`, "hub_access_denied");
    throw new HubError(`Downloading ${options.url} failed: HTTP ${status}`, status === 404 ? "file_not_found" : "hub_error");
}

/**
 * Appends a response body to the partial file, hashing as it goes; `progress` is updated after every chunk.
 * Writes are buffered (waiting only when the buffer is full) and flushed before it returns or throws.
 */
async function appendBody(answer: HttpAnswer, partial: string, progress: Progress, sizeBytes: number, options: DownloadFileOptions): Promise<void> {
    const out = createWriteStream(partial, {flags: "a", highWaterMark: 4 << 20});
    let writeError: Error | undefined;
    out.on("error", (error) => writeError = error);
    try {
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
            if (progress.written + chunk.byteLength > sizeBytes) {
                answer.body.destroy();
                throw new IntegrityError(path.basename(options.destination), `the server sent more than the ${sizeBytes} bytes the Hub lists`);
            }
            if (writeError != null)
                throw writeError;
            progress.hash.update(chunk);
            progress.written += chunk.byteLength;
            if (!out.write(chunk))
                await once(out, "drain");
            options.onProgress?.(progress.written);
        }
    } finally {
        answer.body.destroy();
        out.end();
        await once(out, "close").catch(() => undefined);
    }
    if (writeError != null)
        throw writeError;
    if (progress.written < sizeBytes)
        throw new RetryableError(`the connection ended at byte ${progress.written} of ${sizeBytes}`);
}

/** Feeds a partial file's bytes to `hash`; returns its size (0 when there is none). */
async function hashExisting(partial: string, hash: Hash): Promise<number> {
    const size = await stat(partial).then((stats) => stats.size, () => 0);
    if (size > 0) {
        for await (const chunk of createReadStream(partial, {end: size - 1, highWaterMark: 1 << 20}))
            hash.update(chunk as Buffer);
    }
    return size;
}

async function readMeta(file: string): Promise<PartialMeta | undefined> {
    try {
        const meta = JSON.parse(await readFile(file, "utf8")) as Partial<PartialMeta>;
        return typeof meta.sha256 === "string" && typeof meta.sizeBytes === "number" ? meta as PartialMeta : undefined;
    } catch {
        return undefined;
    }
}

const heldLocks = new Set<string>();

/** One download per file across processes: a lock file holding the owner's pid; a dead owner's lock is taken over. */
async function lock(lockPath: string, destination: string): Promise<() => Promise<void>> {
    if (heldLocks.has(lockPath))
        throw new ModelBusyError(path.basename(destination), "is already being downloaded");
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            await writeFile(lockPath, String(process.pid), {flag: "wx"});
            heldLocks.add(lockPath);
            return async () => {
                heldLocks.delete(lockPath);
                await rm(lockPath, {force: true});
            };
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EEXIST")
                throw error;
            const owner = Number(await readFile(lockPath, "utf8").catch(() => ""));
            if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner))
                throw new ModelBusyError(path.basename(destination), `is being downloaded by another Hearth process (pid ${owner})`);
            await rm(lockPath, {force: true});
        }
    }
    throw new ModelBusyError(path.basename(destination), "is being downloaded by another Hearth process");
}

function isAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}
