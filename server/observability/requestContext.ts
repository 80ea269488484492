import {AsyncLocalStorage} from "node:async_hooks";
import type {GenerationReport} from "../../native/LoadedModel.js";

/** What a request did, filled in as it runs, for its log line and audit entry. */
export type RequestRecord = {
    /** The model that generated for it (the first, when `n` > 1). */
    model: string | undefined,
    promptTokens: number,
    completionTokens: number,
    /** The error a reply ended with after its status was sent (a stream that broke): its status and message. */
    error?: RequestError
};

export type RequestError = {status: number, message: string};

const current = new AsyncLocalStorage<RequestRecord>();

/** Runs `next` (the route handler) with `record` as the request in progress. */
export function runWithRecord(record: RequestRecord, next: () => void): void {
    current.run(record, next);
}

/** Adds a finished generation to the request it ran for; the engine knows nothing of requests. */
export function recordGeneration(report: GenerationReport): void {
    const record = current.getStore();
    if (record == null)
        return;
    record.model ??= report.model;
    record.promptTokens += report.usage.promptTokens;
    record.completionTokens += report.usage.completionTokens;
}
