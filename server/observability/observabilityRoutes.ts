import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import type {Library} from "../../models/index.js";
import type {Engine} from "../../native/Engine.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import type {AuditLog} from "./AuditLog.js";
import type {ServerMetrics} from "./ServerMetrics.js";
import {QUIET} from "../routeConfig.js";
import type {UpstreamPool} from "../upstreams/index.js";

const AuditQuery = Type.Object({
    limit: Type.Optional(Type.String({pattern: "^[0-9]{1,4}$"})),
    before: Type.Optional(Type.String({pattern: "^[0-9]{1,15}$"}))
});
type AuditQuery = Static<typeof AuditQuery>;

export type Lifecycle = {draining: boolean};

/**
 * `/ready` for load balancers and orchestrators (503 until a model can serve, and while draining),
 * `/metrics` for Prometheus, and `/api/audit`, the audit log's newest entries.
 */
export async function observabilityRoutes(app: FastifyInstance, {engine, library, metrics, audit, lifecycle, upstreams}: {
    engine: Engine, library: Library, metrics: ServerMetrics, audit: AuditLog, lifecycle: Lifecycle, upstreams?: UpstreamPool
}): Promise<void> {
    app.get("/ready", QUIET, async (_request, reply) => {
        const loaded = engine.models.flatMap((model) => model.names);
        const readiness = lifecycle.draining
            ? {status: "draining", message: "The server is shutting down."}
            : engine.status === "loading"
                ? {status: "loading", message: "Models are loading."}
                : loaded.length > 0 || library.list().length > 0 || upstreams?.list().some((upstream) => upstream.available) === true
                    ? {status: "ready"}
                    : {status: "no_model", message: "No model could load, the library is empty and no upstream is up."};
        if (readiness.status !== "ready")
            void reply.status(503).header("retry-after", "5");
        return {...readiness, loaded_models: loaded};
    });

    app.get("/metrics", QUIET, async (_request, reply) => {
        void reply.type(metrics.registry.contentType);
        return metrics.text();
    });

    await app.register(async (api) => {
        useOllamaConventions(api);
        api.get<{Querystring: AuditQuery}>("/api/audit", {schema: {querystring: AuditQuery}, ...QUIET}, async (request) => ({
            prompts_kept: audit.keepsBodies,
            entries: audit.list({
                limit: Math.min(1000, Math.max(1, Number(request.query.limit ?? 100))),
                beforeId: request.query.before != null ? Number(request.query.before) : undefined
            })
        }));
    });
}
