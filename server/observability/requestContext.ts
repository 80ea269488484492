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

/**
 * Adds a finished generation to the request it ran for; the engine knows nothing of requests, and is handed this as
 * the generation's `onDone`. (Passed along rather than found in an AsyncLocalStorage: on Node.js 20 that puts a hook
 * on every promise the server makes, about a sixth of what a short streamed request allocated.)
 */
export function recordGeneration(record: RequestRecord, report: GenerationReport): void {
    record.model ??= report.model;
    record.promptTokens += report.usage.promptTokens;
    record.completionTokens += report.usage.completionTokens;
}
