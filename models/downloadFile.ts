import {createHash} from "node:crypto";
import type {Hash} from "node:crypto";
import {createReadStream} from "node:fs";
import {open, readFile, rename, rm, stat, writeFile} from "node:fs/promises";
import type {FileHandle} from "node:fs/promises";
import {setTimeout as sleep} from "node:timers/promises";
import {HearthError} from "../native/errors.js";
import {DownloadCancelledError, HubError, IntegrityError, ModelBusyError} from "./errors.js";

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
    retryDelayMs?: number,
    fetch?: typeof fetch
};

type PartialMeta = {url: string, sha256: string, sizeBytes: number, etag?: string};

class RetryableError extends Error {
    override readonly name = "RetryableError";
}

const MAX_REDIRECTS = 10;

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
    try {
        const meta = await readMeta(metaPath);
        if (meta == null || meta.sha256 !== sha256 || meta.sizeBytes !== sizeBytes)
            await rm(partial, {force: true});
        let etag = meta?.sha256 === sha256 ? meta.etag : undefined;
        const saveMeta = () => writeFile(metaPath, JSON.stringify({url: options.url, sha256, sizeBytes, etag} satisfies PartialMeta));
        await saveMeta();

        // `written` is what is on disk and in `hash`; it stays right when a body breaks off half-way.
        const progress = {hash: createHash("sha256"), written: 0};
        progress.written = await hashExisting(partial, progress.hash, sizeBytes);
        if (progress.written < 0) {
            await rm(partial, {force: true});
            progress.written = 0;
        }
        options.onProgress?.(progress.written);

        const file = await open(partial, "a");
        try {
            let failures = 0;
            while (progress.written < sizeBytes) {
                const before = progress.written;
                try {
                    signal?.throwIfAborted();
                    const response = await request(options, progress.written, etag);
                    if (response.status === 200 && progress.written > 0) {
                        // The server sent the whole file (no Range support, or the file changed): start over.
                        await file.truncate(0);
                        progress.hash = createHash("sha256");
                        progress.written = 0;
                    }
                    const responseEtag = response.headers.get("etag") ?? undefined;
                    if (responseEtag != null && responseEtag !== etag) {
                        etag = responseEtag;
                        await saveMeta();
                    }
                    await appendBody(response, file, progress, sizeBytes, options);
                } catch (error) {
                    if (progress.written > before)
                        failures = 0;
                    if (signal?.aborted)
                        throw new DownloadCancelledError(destination.split("/").at(-1)!);
                    if ((error as NodeJS.ErrnoException).code === "ENOSPC")
                        throw new HearthError(`The disk filled up while downloading ${destination.split("/").at(-1)!}. Free some space and pull again: it resumes where it stopped.`,
                            {statusCode: 507, type: "server_error", code: "insufficient_storage"});
                    if (!(error instanceof RetryableError) && !isNetworkError(error))
                        throw error;
                    if (++failures > (options.retries ?? 6))
                        throw new HubError(`Downloading ${options.url} failed after ${failures} attempts: ${(error as Error).message}`);
                    const delay = Math.min((options.retryDelayMs ?? 500) * 2 ** (failures - 1), 15_000);
                    await sleep(delay * (0.75 + Math.random() / 2), undefined, {signal}).catch(() => undefined);
                }
            }
        } finally {
            await file.close();
        }
        if (signal?.aborted)
            throw new DownloadCancelledError(destination.split("/").at(-1)!);

        const actualSize = (await stat(partial)).size;
        const digest = progress.hash.digest("hex");
        if (actualSize !== sizeBytes || digest !== sha256) {
            await rm(partial, {force: true});
            await rm(metaPath, {force: true});
            throw new IntegrityError(destination.split("/").at(-1)!, actualSize !== sizeBytes
                ? `it is ${actualSize} bytes, the Hub lists ${sizeBytes}`
                : `its sha256 is ${digest}, the Hub lists ${sha256}`);
        }
        await rename(partial, destination);
        await rm(metaPath, {force: true});
    } finally {
        await release();
    }
}

async function request(options: DownloadFileOptions, offset: number, etag: string | undefined): Promise<Response> {
    const fetchImpl = options.fetch ?? fetch;
    let url = options.url;
    for (let redirects = 0; ; redirects++) {
        const headers: Record<string, string> = {...options.headersFor?.(url) ?? {}};
        if (offset > 0) {
            headers.range = `bytes=${offset}-`;
            if (etag != null && !etag.startsWith("W/"))
                headers["if-range"] = etag;
        }
        const response = await fetchImpl(url, {headers, redirect: "manual", signal: options.signal});
        if (response.status >= 300 && response.status < 400 && response.headers.has("location")) {
            await response.body?.cancel();
            if (redirects >= MAX_REDIRECTS)
                throw new HubError(`Downloading ${options.url} failed: more than ${MAX_REDIRECTS} redirects`);
            url = new URL(response.headers.get("location")!, url).href;
            continue;
        }
        if (response.status === 206) {
            const start = /^bytes (\d+)-/.exec(response.headers.get("content-range") ?? "")?.[1];
            if (Number(start) !== offset) {
                await response.body?.cancel();
                throw new RetryableError(`the server resumed at byte ${start ?? "?"} instead of ${offset}`);
            }
            return response;
        }
        if (response.status === 200)
            return response;
        await response.body?.cancel();
        if (response.status === 416)
            throw new RetryableError("the server refused the resume range");
        if (response.status >= 500 || response.status === 429 || response.status === 408)
            throw new RetryableError(`HTTP ${response.status}`);
        if (response.status === 401 || response.status === 403)
            throw new HubError(`Downloading ${options.url} was refused (HTTP ${response.status}). For a gated or private repo, accept its terms on the Hub and set HF_TOKEN.`, 403, "hub_access_denied");
        throw new HubError(`Downloading ${options.url} failed: HTTP ${response.status}`, response.status === 404 ? 404 : 502);
    }
}

/** Appends a response body to the partial file, hashing as it goes; `progress` is updated after every chunk. */
async function appendBody(response: Response, file: FileHandle, progress: {hash: Hash, written: number}, sizeBytes: number,
    options: DownloadFileOptions): Promise<void> {
    if (response.body == null)
        throw new RetryableError("the response had no body");
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        if (progress.written + chunk.byteLength > sizeBytes) {
            await response.body.cancel().catch(() => undefined);
            throw new IntegrityError(options.destination.split("/").at(-1)!, `the server sent more than the ${sizeBytes} bytes the Hub lists`);
        }
        await file.write(chunk);
        progress.hash.update(chunk);
        progress.written += chunk.byteLength;
        options.onProgress?.(progress.written);
    }
    if (progress.written < sizeBytes)
        throw new RetryableError(`the connection ended at byte ${progress.written} of ${sizeBytes}`);
}

/** Feeds a partial file's bytes to `hash`; returns its size, or -1 when it is larger than the file can be. */
async function hashExisting(partial: string, hash: Hash, sizeBytes: number): Promise<number> {
    const size = await stat(partial).then((stats) => stats.size, () => 0);
    if (size > sizeBytes)
        return -1;
    if (size > 0) {
        for await (const chunk of createReadStream(partial, {end: size - 1, highWaterMark: 1 << 20}))
            hash.update(chunk as Buffer);
    }
    return size;
}

async function readMeta(path: string): Promise<PartialMeta | undefined> {
    try {
        const meta = JSON.parse(await readFile(path, "utf8")) as Partial<PartialMeta>;
        return typeof meta.sha256 === "string" && typeof meta.sizeBytes === "number" ? meta as PartialMeta : undefined;
    } catch {
        return undefined;
    }
}

function isNetworkError(error: unknown): boolean {
    if (error instanceof TypeError)
        return true; // fetch() rejects with "fetch failed" and the socket error as its cause
    const code = (error as {code?: unknown}).code;
    return typeof code === "string" && /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|UND_ERR_.*)$/.test(code);
}

const heldLocks = new Set<string>();

/** One download per file across processes: a lock file holding the owner's pid; a dead owner's lock is taken over. */
async function lock(path: string, destination: string): Promise<() => Promise<void>> {
    if (heldLocks.has(path))
        throw new ModelBusyError(destination.split("/").at(-1)!, "is already being downloaded");
    for (let attempt = 0; attempt < 2; attempt++) {
        try {
            await writeFile(path, String(process.pid), {flag: "wx"});
            heldLocks.add(path);
            return async () => {
                heldLocks.delete(path);
                await rm(path, {force: true});
            };
        } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== "EEXIST")
                throw error;
            const owner = Number(await readFile(path, "utf8").catch(() => ""));
            if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && isAlive(owner))
                throw new ModelBusyError(destination.split("/").at(-1)!, `is being downloaded by another Hearth process (pid ${owner})`);
            await rm(path, {force: true});
        }
    }
    throw new ModelBusyError(destination.split("/").at(-1)!, "is being downloaded by another Hearth process");
}

function isAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (error) {
        return (error as NodeJS.ErrnoException).code === "EPERM";
    }
}
