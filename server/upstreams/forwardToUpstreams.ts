import type {FastifyInstance, FastifyReply, FastifyRequest} from "fastify";
import {DeadlineError, RequestAbortedError} from "../../native/errors.js";
import {ApiError, failureOf} from "../errors.js";
import {routeConfigOf} from "../routeConfig.js";
import {drained} from "../sse.js";
import {NoUpstreamAvailableError, UpstreamError, UpstreamInvalidReplyError, UpstreamServerError} from "./errors.js";
import {SseRelay, usageOf} from "./SseRelay.js";
import type {ReportedUsage} from "./SseRelay.js";
import type {UpstreamCall} from "./UpstreamCall.js";
import type {UpstreamPool} from "./UpstreamPool.js";
import {upstreamServing} from "./upstreamServing.js";
import type {UpstreamsHere} from "./upstreamServing.js";

/** More Hearth servers in a row than this, forwarding one request, is a loop (an upstream listing itself). */
const MAX_HOPS = 8;

/** Reply headers of an upstream that are passed on with a reply that is not a stream. */
const PASSED_HEADERS = ["content-type", "retry-after"];

export type ForwardingOptions = UpstreamsHere & {
    /** Fires when the server's drain time is over: forwarded replies still running end as local ones do. */
    shutdown?: AbortSignal
};

/**
 * Sends a request for a model that an upstream serves, and no local model, to that upstream, on routes that
 * declare `upstream` in their config. It runs before the route validates the body (the upstream judges its own
 * API) and after the access checks of `onRequest` (keys, Host and Origin, the rate limit), and the request log,
 * the audit log and `/metrics` see it as any other request.
 */
export function forwardToUpstreams(app: FastifyInstance, options: ForwardingOptions): void {
    const {shutdown} = options;
    // A callback hook: an async one would cost every local request a promise's turn before the next hook.
    app.addHook("preValidation", (request, reply, done) => {
        if (routeConfigOf(request).upstream !== "forward")
            return done();
        const body = request.body as Record<string, unknown> | null;
        const model = body?.model;
        const pool = typeof model === "string" ? upstreamServing(options, model) : undefined;
        if (pool == null)
            return done();
        forwardToUpstream(request, reply, {pool, model: model as string, body: body!, shutdown}).then(() => done(), done);
    });
}

/**
 * Answers a request with an upstream's reply for `model` (which replaces the body's own, so an alias can name its
 * target): the whole body, or the stream event by event. A failure before any of the reply was sent is thrown, for
 * the route's error handler; one after ends the stream with an error event.
 */
export async function forwardToUpstream(request: FastifyRequest, reply: FastifyReply, {pool, model, body, shutdown}: {
    pool: UpstreamPool, model: string, body: Record<string, unknown>, shutdown?: AbortSignal
}): Promise<void> {
    const hops = hopsOf(request, model);
    request.record.model = model;
    // The client going away, or the end of the server's drain time, cancels the request upstream.
    const cancel = new AbortController();
    const onClose = () => {
        if (!reply.raw.writableFinished)
            cancel.abort();
    };
    const onShutdown = () => cancel.abort();
    reply.raw.once("close", onClose);
    shutdown?.addEventListener("abort", onShutdown, {once: true});
    if (shutdown?.aborted === true)
        onShutdown();
    const stop = () => {
        reply.raw.off("close", onClose);
        shutdown?.removeEventListener("abort", onShutdown);
    };
    let call: UpstreamCall;
    try {
        call = await pool.forward({model, path: request.url.split("?")[0]!, body, signal: cancel.signal, requestId: request.id, hops});
    } catch (error) {
        stop();
        if (error instanceof RequestAbortedError && !reply.raw.destroyed && shutdown?.aborted === true)
            throw new DeadlineError("shutdown");
        if (error instanceof RequestAbortedError) {
            reply.hijack();
            reply.raw.destroy();
            return;
        }
        noteUpstreamFailure(request, reply, error, model);
        throw error;
    }
    try {
        if (call.streaming)
            await relayStream(request, reply, call, () => shutdown?.aborted === true);
        else {
            record(request, usageOf(call.json));
            for (const name of PASSED_HEADERS)
                if (call.headers[name] != null)
                    void reply.header(name, call.headers[name]);
            await reply.status(call.statusCode).send(call.body);
        }
    } finally {
        stop();
        call.release();
    }
}

/** How many Hearth servers forwarded the request before this one; throws a 508 when that many make a loop. */
export function hopsOf(request: FastifyRequest, model: string): number {
    const hops = Number(request.headers["x-hearth-hops"] ?? 0) || 0;
    if (hops >= MAX_HOPS)
        throw new ApiError(508, `The request for "${model}" went through ${hops} Hearth servers: an upstream forwards back to one before it.`, {code: "upstream_loop"});
    return hops;
}

/** A request that failed before any of its reply was sent: its `Retry-After`, when the failure gives one, and a warning in the log. */
export function noteUpstreamFailure(request: FastifyRequest, reply: FastifyReply, error: unknown, model: string): void {
    if (error instanceof NoUpstreamAvailableError)
        void reply.header("retry-after", String(error.retryAfterSeconds));
    if (error instanceof UpstreamServerError && error.retryAfter != null)
        void reply.header("retry-after", error.retryAfter);
    if (error instanceof UpstreamError)
        request.log.warn({upstream: error.message, model}, "upstream request failed");
}

/** Passes a stream on event by event as it comes; a break after it began ends it with an error event in its own shape. */
async function relayStream(request: FastifyRequest, reply: FastifyReply, call: UpstreamCall, shuttingDown: () => boolean): Promise<void> {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(call.statusCode, {
        // Headers set before the stream began (CORS, the request id) go out with it.
        ...reply.getHeaders() as Record<string, string>,
        "content-type": String(call.headers["content-type"]),
        "cache-control": "no-cache",
        "connection": "keep-alive",
        "x-accel-buffering": "no"
    });
    raw.socket?.setNoDelay(true);
    const relay = new SseRelay();
    // A write that fills the client's socket returns the wait for it to drain, and the upstream is read no further till then.
    const write = (bytes: Buffer | string): Promise<void> | undefined =>
        bytes.length > 0 && !raw.destroyed && !raw.write(bytes) ? drained(raw) : undefined;
    try {
        await write(relay.push(call.first!));
        await call.pipe((chunk) => write(relay.push(chunk)));
        await write(relay.flush());
    } catch (error) {
        if (raw.destroyed)
            return;
        if (error instanceof RequestAbortedError) {
            if (shuttingDown()) {
                const ending = new DeadlineError("shutdown");
                request.record.error = failureOf(ending);
                await write(relay.errorEvent(ending.message, ending.code));
            }
            return;
        }
        const failure = error instanceof UpstreamError ? error : new UpstreamInvalidReplyError(call.upstream.name, (error as Error).message);
        request.log.warn({upstream: failure.message}, "upstream stream broke");
        request.record.error = failureOf(failure);
        await write(relay.errorEvent(failure.message, failure.code));
    } finally {
        record(request, relay.usage);
        if (!raw.destroyed)
            raw.end();
    }
}

/** The usage a forwarded reply reported goes into the request's log line and audit entry, as a local generation's does. */
function record(request: FastifyRequest, usage: ReportedUsage | undefined): void {
    if (usage == null)
        return;
    request.record.promptTokens += usage.promptTokens;
    request.record.completionTokens += usage.completionTokens;
}
