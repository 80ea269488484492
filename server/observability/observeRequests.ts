import {randomUUID} from "node:crypto";
import type {FastifyInstance, FastifyRequest} from "fastify";
import {needsKey} from "../access/accessRules.js";
import type {RequestLog} from "../desktop/RequestLog.js";
import {routeConfigOf} from "../routeConfig.js";
import type {AuditLog} from "./AuditLog.js";
import type {RequestRecord} from "./requestContext.js";
import type {ServerMetrics} from "./ServerMetrics.js";

declare module "fastify" {
    interface FastifyRequest {
        /** What the request did, for its log line and audit entry. */
        record: RequestRecord
    }
}

/** HEAD and OPTIONS (preflights) are kept out of the logs, as the routes declared `quiet` (polled reads) are. */
const LOGGED_METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);

function isQuiet(request: FastifyRequest): boolean {
    return !LOGGED_METHODS.has(request.method) || routeConfigOf(request).quiet === true;
}

/** A request id from the client's `x-request-id` when it is a sane one, else a new one. */
export function requestIdFor(header: string | string[] | undefined): string {
    return typeof header === "string" && /^[\w.:-]{1,100}$/.test(header) ? header : randomUUID();
}

export type ObserveOptions = {
    log: RequestLog,
    metrics: ServerMetrics,
    audit: AuditLog
};

/**
 * Follows every request from its arrival to the close of its connection — "close", not Fastify's
 * onResponse, because a stream the client stopped never emits "finish" — into the Server view's request
 * log, `/metrics`, one JSON log line with its request id, and (for API routes) the audit log.
 */
export function observeRequests(app: FastifyInstance, {log, metrics, audit}: ObserveOptions): void {
    app.decorateRequest("record", null as unknown as RequestRecord);

    // A callback hook, not an async one: Fastify would wait a promise's turn before the next hook, on every request.
    app.addHook("onRequest", (request, reply, done) => {
        const path = request.url.split("?")[0]!;
        // Fastify times a reply only when it has a logger or onResponse hooks; an app without a logger logged 0 ms.
        const startedAt = performance.now();
        const quiet = isQuiet(request);
        request.record = {model: undefined, promptTokens: 0, completionTokens: 0};
        void reply.header("x-request-id", request.id);
        metrics.requestStarted();
        if (!quiet)
            log.started();

        reply.raw.once("close", () => {
            const status = reply.raw.statusCode;
            const durationMs = Math.round(performance.now() - startedAt);
            const route = request.routeOptions.url ?? "unmatched";
            metrics.requestFinished(request.method, route, status, durationMs);
            const {record} = request;
            const completed = reply.raw.writableFinished;
            // A generation that failed may have produced no token, yet its prompt was read.
            const counted = record.completionTokens > 0 || record.promptTokens > 0;
            const fields = {
                method: request.method, path, status, durationMs, keyId: request.keyId, model: record.model ?? modelOf(request),
                ...(counted ? {promptTokens: record.promptTokens, completionTokens: record.completionTokens} : {}),
                ...(record.error != null ? {error: record.error} : {}),
                ...(!completed ? {clientClosed: true} : {})
            };
            // A refused request is never quiet: 401s and 403s are what an operator looks for.
            if (quiet && status < 400) {
                request.log.debug(fields, "request");
                return;
            }
            if (quiet)
                log.record({method: request.method, path, status, durationMs});
            else
                log.finished({method: request.method, path, status, durationMs, ...(record.error != null ? {error: record.error} : {})});
            request.log.info(fields, "request");
            if (needsKey(path))
                audit.record({
                    request_id: request.id, key_id: request.keyId ?? null, client: request.socket.remoteAddress ?? null,
                    method: request.method, path, model: fields.model ?? null, status,
                    prompt_tokens: counted ? record.promptTokens : null,
                    completion_tokens: counted ? record.completionTokens : null,
                    duration_ms: durationMs,
                    error_status: record.error?.status ?? null,
                    error: record.error?.message ?? null
                }, request.body);
        });
        done();
    });
}

function modelOf(request: FastifyRequest): string | undefined {
    const body = request.body as {model?: unknown} | undefined;
    return typeof body?.model === "string" ? body.model.slice(0, 200) : undefined;
}
