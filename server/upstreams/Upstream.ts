import {normalizeUpstreamUrl} from "../config.js";
import type {UpstreamSpec} from "../config.js";

export type UpstreamSource = "startup" | "stored";
export type UpstreamModel = {id: string, created: number | undefined};
export type UpstreamHealth = "checking" | "up" | "down";

/** How long a failed upstream stays out: doubled at each failure in a row, from `initialMs` up to `maxMs`. */
export type BackoffSettings = {initialMs: number, maxMs: number};

/**
 * One upstream's state, as its pool keeps it: the models it listed last, whether it is up, how long it stays
 * out after failing, and how many requests it is answering now.
 */
export class Upstream {
    readonly id: string;
    /** `http(s)://host[:port][/path]`, without `/v1`. */
    readonly url: string;
    /** How metrics, logs and `owned_by` name it: its host and port (and path, when it has one). */
    readonly name: string;
    readonly key: string | undefined;
    readonly source: UpstreamSource;
    models: readonly UpstreamModel[] = [];
    health: UpstreamHealth = "checking";
    /** Requests being answered now; the pool sends the next request to the upstream with the fewest. */
    inFlight = 0;
    /** Failures in a row; a success resets it. */
    failures = 0;
    /** While down, when it is checked again. */
    retryAtMs = 0;
    lastError: string | undefined;
    checkedAtMs: number | undefined;
    /** A sequence number of the last pick, so upstreams equally busy take turns. */
    lastPicked = 0;
    /** Set when it is removed from its pool; nothing is sent to it after. */
    removed = false;

    constructor(id: string, {url, key}: UpstreamSpec, source: UpstreamSource) {
        this.id = id;
        const normalized = normalizeUpstreamUrl(url);
        if (normalized == null)
            throw new TypeError(`"${url}" is not an upstream URL`);
        this.url = normalized;
        this.key = key;
        this.source = source;
        const parsed = new URL(normalized);
        this.name = `${parsed.host}${parsed.pathname === "/" ? "" : parsed.pathname}`;
    }

    serves(model: string): boolean {
        return this.models.some((entry) => entry.id === model);
    }

    /** Whether requests may be sent to it now. */
    get available(): boolean {
        return this.health === "up" && !this.removed;
    }

    succeeded(nowMs = Date.now()): void {
        this.health = "up";
        this.failures = 0;
        this.lastError = undefined;
        this.checkedAtMs = nowMs;
    }

    /** Takes it out for its back-off period; returns that period in milliseconds. */
    failed(message: string, backoff: BackoffSettings, nowMs = Date.now()): number {
        this.failures += 1;
        const delayMs = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(30, this.failures - 1));
        this.health = "down";
        this.retryAtMs = nowMs + delayMs;
        this.lastError = message;
        this.checkedAtMs = nowMs;
        return delayMs;
    }

    /** What `/api/upstreams` shows: never the key. */
    toJSON() {
        return {
            id: this.id,
            url: this.url,
            name: this.name,
            source: this.source,
            has_key: this.key != null,
            health: this.health,
            models: this.models.map((model) => model.id),
            in_flight: this.inFlight,
            failures: this.failures,
            retry_at: this.health === "down" ? new Date(this.retryAtMs).toISOString() : null,
            last_error: this.lastError ?? null,
            checked_at: this.checkedAtMs != null ? new Date(this.checkedAtMs).toISOString() : null
        };
    }
}
