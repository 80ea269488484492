import type {FastifyInstance} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {boundPort, boundUrl, isLoopback} from "../boundUrl.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import type {RequestLog} from "./RequestLog.js";
import {QUIET} from "../routeConfig.js";

/** What the Server view shows: where the API listens, how it is reachable, the request log and live counts. */
export async function serverRoutes(app: FastifyInstance, {engine, log, host}: {engine: Engine, log: RequestLog, host: string}): Promise<void> {
    useOllamaConventions(app);

    app.get("/api/server", QUIET, async () => {
        const url = boundUrl(app.server, host);
        const backend = engine.backendReport;
        return {
            base_url: `${url}/v1`,
            ollama_url: url,
            host,
            port: boundPort(app.server),
            // Whether other machines on the network can reach this server.
            lan: !isLoopback(host),
            status: engine.status,
            backend: backend == null ? null : {
                selected: backend.selected, available: backend.available, reason: backend.reason, binary: backend.binary,
                decode_loop: backend.decodeLoop, decode_loop_reason: backend.decodeLoopReason ?? null
            },
            defaults: {
                ctx_size: engine.defaultSettings.ctxSize, parallel: engine.defaultSettings.parallel, gpu_layers: engine.defaultSettings.gpuLayers,
                threads: engine.threads ?? null, flash_attn: engine.options.flashAttention ?? "auto"
            },
            metrics: log.metrics(),
            loaded_models: engine.loadedModels.length,
            // The decode loop each loaded model runs on; a model can fall back where the backend's is native.
            models: engine.loadedModels.map((loaded) => ({
                name: loaded.names[0]!, decode_loop: loaded.decodeLoop.kind,
                decode_loop_reason: loaded.decodeLoop.kind === "javascript" ? loaded.decodeLoop.reason : null
            }))
        };
    });

    app.get<{Querystring: {after?: string}}>("/api/server/requests", QUIET, async (request) => {
        const after = Number(request.query.after ?? 0);
        return {requests: log.since(Number.isSafeInteger(after) ? after : 0)};
    });
}
