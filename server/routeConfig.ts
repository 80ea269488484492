import type {FastifyRequest} from "fastify";
import type {ErrorShape} from "./errors.js";

/**
 * What a route is, declared on the route itself (`config` in its options) and read by the hooks of
 * `observability/` and `access/`, so no other file keeps a list of paths that drifts from the routes.
 */
declare module "fastify" {
    interface FastifyContextConfig {
        /** Runs a model (a generation or an embedding): the rate limit counts it. */
        runsModel?: boolean,
        /**
         * A read that the app and editors repeat every few seconds to watch the server: counted in `/metrics`, but
         * kept out of the request log, the audit log and info logs (unless refused), where it would bury the requests
         * that do something.
         */
        quiet?: boolean,
        /**
         * An upstream may serve this route's models: a request naming a model that an upstream serves, and no local
         * model, is sent to it after the access checks. `forward`: as it came (`upstreams/forwardToUpstreams`), for
         * the routes of OpenAI's API, which every upstream speaks; `translate`: the route reads the request as for a
         * local model and asks the upstream for an OpenAI chat completion, whose events its encoder writes
         * (`upstreams/UpstreamRun`).
         */
        upstream?: "forward" | "translate",
        /** Changes API keys, access settings or MCP servers: only a client on this machine may call it, never a LAN client with a key. */
        localOnly?: boolean,
        /**
         * The error shape of the route's API, for refusals sent before its plugin's error handler could (a missing
         * key, the rate limit). Default: Ollama's under `/api`, OpenAI's elsewhere.
         */
        errorShape?: ErrorShape
    }
}

/** Route options for a route that runs a model. */
export const RUNS_MODEL = {config: {runsModel: true}} as const;
/** Route options for a `/v1` route that runs a model, local or an upstream's, sent to the upstream as it came. */
export const RUNS_ANY_MODEL = {config: {runsModel: true, upstream: "forward"}} as const;
/** Route options for a route that runs a model, local or an upstream's, translated to OpenAI's API for the upstream. */
export const RUNS_TRANSLATED_MODEL = {config: {runsModel: true, upstream: "translate"}} as const;
/** Route options for a polled read. */
export const QUIET = {config: {quiet: true}} as const;
/** Route options for a change to keys or access settings. */
export const LOCAL_ONLY = {config: {localOnly: true}} as const;

/** The matched route's declarations; none for a request that matched no route. */
export function routeConfigOf(request: FastifyRequest): {runsModel?: boolean, quiet?: boolean, upstream?: "forward" | "translate", localOnly?: boolean, errorShape?: ErrorShape} {
    return request.routeOptions.config ?? {};
}
