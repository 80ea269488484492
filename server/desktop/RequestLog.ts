/** One finished HTTP request, as the Server view lists it. No bodies, headers or query strings are kept. */
export type RequestLogEntry = {
    id: number,
    at: string,
    method: string,
    /** The path without its query string. */
    path: string,
    status: number,
    durationMs: number,
    /** The error a reply ended with after its status was sent (a stream that broke): its status and message. */
    error?: {status: number, message: string}
};

export type RequestMetrics = {
    uptimeSeconds: number,
    requestsTotal: number,
    requestsInFlight: number,
    clientErrorsTotal: number,
    serverErrorsTotal: number,
    /** Over the last {@link RequestLog} capacity requests; undefined before the first. */
    medianDurationMs: number | undefined,
    requestsLastMinute: number
};

/** The last few hundred requests and running counts, in memory only; the Server view polls them. */
export class RequestLog {
    readonly #capacity: number;
    readonly #entries: RequestLogEntry[] = [];
    readonly #startedAtMs = Date.now();
    #nextId = 1;
    #inFlight = 0;
    #total = 0;
    #clientErrors = 0;
    #serverErrors = 0;

    constructor(capacity = 200) {
        this.#capacity = capacity;
    }

    started(): void {
        this.#inFlight++;
    }

    /** A request counted by {@link started} has finished. */
    finished(entry: Omit<RequestLogEntry, "id" | "at">): void {
        this.#inFlight = Math.max(0, this.#inFlight - 1);
        this.record(entry);
    }

    /** Logs a finished request that was not counted in flight. */
    record(entry: Omit<RequestLogEntry, "id" | "at">): void {
        this.#total++;
        // A stream that broke after its 200 counts as the error it ended with.
        const status = entry.error?.status ?? entry.status;
        if (status >= 500)
            this.#serverErrors++;
        else if (status >= 400)
            this.#clientErrors++;
        this.#entries.push({id: this.#nextId++, at: new Date().toISOString(), ...entry, path: entry.path.split("?")[0]!});
        if (this.#entries.length > this.#capacity)
            this.#entries.shift();
    }

    /** Entries newer than `afterId`, oldest first. */
    since(afterId = 0): RequestLogEntry[] {
        return this.#entries.filter((entry) => entry.id > afterId);
    }

    metrics(): RequestMetrics {
        const durations = this.#entries.map((entry) => entry.durationMs).sort((a, b) => a - b);
        const minuteAgo = Date.now() - 60_000;
        return {
            uptimeSeconds: Math.round((Date.now() - this.#startedAtMs) / 1000),
            requestsTotal: this.#total,
            requestsInFlight: this.#inFlight,
            clientErrorsTotal: this.#clientErrors,
            serverErrorsTotal: this.#serverErrors,
            medianDurationMs: durations.length > 0 ? durations[Math.floor(durations.length / 2)] : undefined,
            requestsLastMinute: this.#entries.filter((entry) => Date.parse(entry.at) >= minuteAgo).length
        };
    }
}
