import type {FastifyInstance, FastifyReply, FastifyRequest} from "fastify";
import {errorBody} from "../errors.js";
import {isLoopback} from "../boundUrl.js";
import type {AccessStore} from "./AccessStore.js";
import {routeConfigOf} from "../routeConfig.js";
import {allowedOrigin, hostAllowed, hostName, isLoopbackClient, needsKey, presentedKey} from "./accessRules.js";
import type {RateLimiter} from "./RateLimiter.js";

declare module "fastify" {
    interface FastifyRequest {
        /** The API key the request was let in with (its id, never the key), if it carried one. */
        keyId: string | undefined
    }
}

export type AccessOptions = {
    store: AccessStore,
    /** The address the server listens on: anything but loopback needs a key for every client. */
    host: string,
    allowedHosts: readonly string[],
    allowedOrigins: readonly string[],
    rateLimiter?: RateLimiter,
    /** Requests the rate limit does not count (Hearth's own shadow copies of a request already counted). */
    exemptFromRateLimit?: (request: FastifyRequest) => boolean
};

const ALLOWED_METHODS = "GET, POST, PATCH, DELETE, OPTIONS";
const DEFAULT_ALLOWED_HEADERS = "authorization, content-type, x-api-key";

/** Sends a refusal in the error shape the route declares, else that of the API the path belongs to. */
function refuse(request: FastifyRequest, reply: FastifyReply, statusCode: number, message: string, code: string, type = "invalid_request_error"): FastifyReply {
    const body = errorBody(message, type, null, code);
    const shape = routeConfigOf(request).errorShape;
    return reply.status(statusCode).send(shape != null ? shape(body, statusCode) : request.url.startsWith("/api/") ? {error: message} : body);
}

/**
 * Who may use the server, checked before anything else runs: the `Host` header (DNS rebinding), the
 * page's `Origin` (CORS, and refusal of pages that may not call the API even with simple requests), the
 * API key, and the rate limit.
 */
export function accessControl(app: FastifyInstance, {store, host, allowedHosts, allowedOrigins, rateLimiter, exemptFromRateLimit = () => false}: AccessOptions): void {
    app.decorateRequest("keyId", undefined);
    const lan = !isLoopback(host);

    // A callback hook, not an async one: Fastify would wait a promise's turn before the next hook, on every request.
    // A refusal has sent the reply, and then the request goes no further.
    app.addHook("onRequest", (request, reply, done) => {
        if (check(request, reply) == null)
            done();
    });

    function check(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
        const path = request.url.split("?")[0]!;
        if (!hostAllowed(request.headers.host, allowedHosts)) {
            const name = hostName(request.headers.host!);
            return refuse(request, reply, 403, `This server does not answer to the host name "${name}". If you reach it under that name on purpose, start it with --allowed-host ${name}.`, "host_not_allowed");
        }

        const origin = request.headers.origin;
        if (origin != null) {
            const allowed = allowedOrigin(origin, request.headers.host, [...allowedOrigins, ...store.settings().allowed_origins]);
            if (allowed == null)
                return refuse(request, reply, 403, `Pages from ${origin} may not call this server. To let them, add the origin in the app's Server view or start with --allowed-origin ${origin}.`, "origin_not_allowed");
            reply.header("access-control-allow-origin", allowed);
            reply.header("vary", "Origin");
            const preflightMethod = request.headers["access-control-request-method"];
            if (request.method === "OPTIONS" && preflightMethod != null) {
                const requested = request.headers["access-control-request-headers"];
                reply.header("access-control-allow-methods", ALLOWED_METHODS);
                reply.header("access-control-allow-headers", requested != null && /^[\w-]+(\s*,\s*[\w-]+)*$/.test(requested) ? requested : DEFAULT_ALLOWED_HEADERS);
                reply.header("access-control-max-age", "600");
                if (request.headers["access-control-request-private-network"] === "true")
                    reply.header("access-control-allow-private-network", "true");
                return reply.status(204).send();
            }
        }

        const local = isLoopbackClient(request.socket.remoteAddress);
        if (routeConfigOf(request).localOnly === true && !local)
            return refuse(request, reply, 403, "API keys, access settings and MCP servers can be changed only on the machine Hearth runs on.", "forbidden");

        if (needsKey(path) && (store.hasKeys() || (lan && !local))) {
            const key = presentedKey(request.headers as {authorization?: string, "x-api-key"?: string});
            const keyId = key != null ? store.verify(key) : undefined;
            if (keyId == null) {
                reply.header("www-authenticate", "Bearer");
                return key == null
                    ? refuse(request, reply, 401, "This server needs an API key: send it as \"Authorization: Bearer KEY\" or \"x-api-key: KEY\". Create one with `hearth keys create` or in the app's Server view.", "missing_api_key")
                    : refuse(request, reply, 401, "The API key is not valid: it may have been revoked. List keys with `hearth keys list`.", "invalid_api_key");
            }
            request.keyId = keyId;
        }

        if (rateLimiter != null && routeConfigOf(request).runsModel === true && !exemptFromRateLimit(request)) {
            const result = rateLimiter.take(request.keyId ?? `address:${request.socket.remoteAddress ?? "unknown"}`);
            if (!result.allowed) {
                reply.header("retry-after", String(result.retryAfterSeconds));
                return refuse(request, reply, 429, `Rate limit reached: at most ${rateLimiter.perMinute} generation requests a minute. Retry in ${result.retryAfterSeconds} s.`, "rate_limit_exceeded", "rate_limit_error");
            }
        }
        return undefined;
    }
}
