import type {FastifyInstance, FastifyReply, FastifyRequest} from "fastify";
import {routeConfigOf} from "../routeConfig.js";
import type {UpstreamsHere} from "../upstreams/index.js";
import {agree, digestReply, similarity} from "./replyText.js";
import type {ReplyDigest} from "./replyText.js";
import type {Router} from "./Router.js";
import type {SideSample} from "./ShadowStats.js";

export type RoutingOptions = UpstreamsHere & {
    router: Router,
    /** True once the server drains: no new shadow copies are started. */
    draining(): boolean
};

/** The most of a primary reply kept to compare with its shadow's; a longer one is compared by its first part. */
const MAX_KEPT_BYTES = 4 * 1024 * 1024;

/** Whether a request is one of Hearth's own shadow copies. */
export function isShadowCopy(request: FastifyRequest, router: Router): boolean {
    return request.headers["x-hearth-shadow"] === router.shadowToken;
}

/**
 * Sends a request for a route's name to one of its models, on routes that run a model: the body's `model` becomes
 * the chosen one, which the normal pipeline then serves (here, or by an upstream on a route that declares `upstream`:
 * forwarded by `forwardToUpstreams`, or translated by the route itself; elsewhere only local targets are chosen). It runs after the access checks and before
 * `forwardToUpstreams`; the chosen model is in `x-hearth-model`, the log line and the audit entry. A route with a
 * shadow also sends the request, not streamed, to the shadow model in the background, and compares the replies.
 */
export function routeRequests(app: FastifyInstance, {router, pool, isLocal, draining}: RoutingOptions): void {
    // A callback hook: an async one would cost every request a promise's turn before the next hook.
    app.addHook("preValidation", (request, reply, done) => {
        routeRequest(request, reply);
        done();
    });

    function routeRequest(request: FastifyRequest, reply: FastifyReply): void {
        const config = routeConfigOf(request);
        if (config.runsModel !== true || isShadowCopy(request, router))
            return;
        const body = request.body as Record<string, unknown> | null;
        const name = body?.model;
        if (typeof name !== "string")
            return;
        const route = router.get(name);
        if (route == null)
            return;
        // A target whose upstreams are all out after a failure is passed over while another can answer.
        const served = (model: string) => isLocal(model) || (config.upstream != null && pool.servesNow(model));
        const model = router.pick(name, sessionOf(request, body!), served);
        const original = route.shadow != null ? structuredClone(body!) : undefined;
        body!.model = model;
        request.record.model = model;
        void reply.header("x-hearth-model", model);
        if (route.shadow != null && !draining() && router.admitShadow(name))
            shadow(app, router, request, reply, {route: name, shadowModel: route.shadow, body: original!});
    }
}

/** The conversation a request belongs to, when the client says: `user` in the body, or an `x-session-id` header. */
function sessionOf(request: FastifyRequest, body: Record<string, unknown>): string | undefined {
    const header = request.headers["x-session-id"];
    if (typeof header === "string" && header.length > 0)
        return `session:${header}`;
    return typeof body.user === "string" && body.user.length > 0 ? `user:${body.user}` : undefined;
}

/**
 * Sends the shadow copy through the server itself (the same route, the same checks as any request, the client's key)
 * and keeps what the primary reply writes, then compares the two once both are over. Nothing here waits on the
 * shadow or touches the primary reply but to read it.
 */
function shadow(app: FastifyInstance, router: Router, request: FastifyRequest, reply: FastifyReply, {route, shadowModel, body}: {route: string, shadowModel: string, body: Record<string, unknown>}): void {
    const startedMs = performance.now();
    const primary = keepReply(reply, startedMs);
    const copy: Record<string, unknown> = {...body, model: shadowModel, stream: false};
    delete copy.stream_options;
    const headers: Record<string, string> = {"content-type": "application/json", "x-hearth-shadow": router.shadowToken, "x-request-id": `${request.id}-shadow`};
    for (const name of ["authorization", "x-api-key"] as const) {
        const value = request.headers[name];
        if (typeof value === "string")
            headers[name] = value;
    }
    const shadowReply = app.inject({method: "POST", url: request.url, headers, payload: JSON.stringify(copy)}).then((response) => ({
        ok: response.statusCode >= 200 && response.statusCode < 300,
        digest: digestReply(response.body, String(response.headers["content-type"] ?? "")),
        latencyMs: performance.now() - startedMs
    }), () => ({ok: false, digest: undefined, latencyMs: performance.now() - startedMs}));
    void Promise.all([primary, shadowReply]).then(([first, second]) => {
        if (!second.ok || second.digest == null) {
            router.shadowDone(route, shadowModel, "failed");
            return;
        }
        if (first == null) {
            router.shadowDone(route, shadowModel, "uncompared");
            return;
        }
        const primarySample: SideSample = {latencyMs: first.latencyMs, completionTokens: request.record.completionTokens > 0 ? request.record.completionTokens : first.digest.completionTokens};
        const shadowSample: SideSample = {latencyMs: second.latencyMs, completionTokens: second.digest.completionTokens};
        router.shadowDone(route, shadowModel, {compared: {agreed: agree(first.digest, second.digest), similarity: similarity(first.digest, second.digest), primary: primarySample, shadow: shadowSample}});
    });
}

/**
 * What the primary reply sends, read as it goes out (from `write` and `end` of the response, so a stream written by a
 * hijacked reply is kept too); resolves when the connection closes, with nothing when the reply failed or was cut.
 */
function keepReply(reply: FastifyReply, startedMs: number): Promise<{digest: ReplyDigest, latencyMs: number} | undefined> {
    const raw = reply.raw;
    const parts: Buffer[] = [];
    let size = 0;
    const keep = (chunk: unknown) => {
        if (size >= MAX_KEPT_BYTES || chunk == null || typeof chunk === "function")
            return;
        const bytes = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.isBuffer(chunk) ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk) : undefined;
        if (bytes != null) {
            parts.push(bytes);
            size += bytes.length;
        }
    };
    const writable = raw as unknown as {write: (...args: unknown[]) => boolean, end: (...args: unknown[]) => unknown};
    const write = writable.write;
    const end = writable.end;
    writable.write = function (this: unknown, ...args: unknown[]) {
        keep(args[0]);
        return write.apply(this, args);
    };
    writable.end = function (this: unknown, ...args: unknown[]) {
        keep(args[0]);
        return end.apply(this, args);
    };
    return new Promise((resolve) => {
        raw.once("close", () => {
            const latencyMs = performance.now() - startedMs;
            if (!raw.writableFinished || raw.statusCode < 200 || raw.statusCode >= 300) {
                resolve(undefined);
                return;
            }
            resolve({digest: digestReply(Buffer.concat(parts).toString("utf8"), String(raw.getHeader("content-type") ?? "")), latencyMs});
        });
    });
}
