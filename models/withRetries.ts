import {setTimeout as sleep} from "node:timers/promises";

/**
 * How Hearth retries what it asks the Hub: network errors and the answers that say "try again" (5xx, 408,
 * 429) are retried with exponential backoff and jitter; anything else fails at once. Downloads and Hub
 * listings share it.
 */

export type RetryOptions = {
    /** Attempts after the first. */
    retries: number,
    /** First retry delay; it doubles on each attempt, up to 15 s. Defaults to 500 ms. */
    retryDelayMs?: number,
    signal?: AbortSignal
};

/** An HTTP status that may well be different on the next try. */
export function isTransientStatus(status: number): boolean {
    return status >= 500 || status === 429 || status === 408;
}

/** A connection that failed or broke off, as Node's `http` reports it or `fetch` wraps it (in `cause`). */
export function isNetworkError(error: unknown): boolean {
    const codeOf = (value: unknown) => (value as {code?: unknown} | undefined)?.code;
    return [codeOf(error), codeOf((error as {cause?: unknown} | undefined)?.cause)].some((code) => typeof code === "string" &&
        /^(ECONNRESET|ECONNREFUSED|ECONNABORTED|EPIPE|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ERR_STREAM_PREMATURE_CLOSE|UND_ERR_SOCKET|UND_ERR_CONNECT_TIMEOUT)$/.test(code));
}

/** The wait before retry number `failures` (1, 2, …): doubling from `firstDelayMs`, at most 15 s, ±25%. */
export function backoffMs(failures: number, firstDelayMs = 500): number {
    return Math.min(firstDelayMs * 2 ** (failures - 1), 15_000) * (0.75 + Math.random() / 2);
}

/** Runs `run` until it succeeds, fails with what `isTransient` rejects, or has been retried `retries` times; then throws its last error. */
export async function withRetries<T>(run: () => Promise<T>, isTransient: (error: unknown) => boolean, {retries, retryDelayMs, signal}: RetryOptions): Promise<T> {
    for (let failures = 0; ; ) {
        try {
            return await run();
        } catch (error) {
            if (signal?.aborted || !isTransient(error) || ++failures > retries)
                throw error;
            await sleep(backoffMs(failures, retryDelayMs), undefined, {signal}).catch(() => undefined);
        }
    }
}
