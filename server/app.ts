import Fastify, {LogController} from "fastify";
import type {FastifyInstance, FastifyReply, FastifyServerOptions} from "fastify";
import type {Library} from "../models/index.js";
import type {Engine} from "../native/Engine.js";
import {benchRoutes} from "./benchmarks/benchRoutes.js";
import type {BenchStore} from "./benchmarks/BenchStore.js";
import {conversationRoutes} from "./conversations/conversationRoutes.js";
import type {ConversationStore} from "./conversations/ConversationStore.js";
import type {DownloadManager} from "../models/DownloadManager.js";
import {downloadRoutes} from "./desktop/downloadRoutes.js";
import {rendererRoutes} from "./desktop/rendererRoutes.js";
import {RequestLog} from "./desktop/RequestLog.js";
import {serverRoutes} from "./desktop/serverRoutes.js";
import type {AuditLog} from "./observability/AuditLog.js";
import {observabilityRoutes} from "./observability/observabilityRoutes.js";
import type {Lifecycle} from "./observability/observabilityRoutes.js";
import {observeRequests, requestIdFor} from "./observability/observeRequests.js";
import type {ServerMetrics} from "./observability/ServerMetrics.js";
import {errorBody, errorHandler} from "./errors.js";
import {DEFAULT_MAX_BODY_BYTES} from "./config.js";
import {limitRequestBodies} from "./limitRequestBodies.js";
import type {LingerLimits} from "./limitRequestBodies.js";
import {accessControl} from "./access/accessControl.js";
import {accessRoutes} from "./access/accessRoutes.js";
import type {AccessStore} from "./access/AccessStore.js";
import {RateLimiter} from "./access/RateLimiter.js";
import {anthropicMessagesRoutes} from "./anthropic/messages.js";
import {chatCompletionsRoutes} from "./openai/chatCompletions.js";
import {completionsRoutes} from "./openai/completions.js";
import {embeddingsRoutes} from "./openai/embeddings.js";
import {modelsRoutes} from "./openai/models.js";
import {responsesRoutes} from "./openai/responses.js";
import type {ResponseStore} from "./openai/ResponseStore.js";
import {ollamaChatRoutes} from "./ollama/chat.js";
import {engineRoutes} from "./ollama/engineRoutes.js";
import {ollamaLibraryRoutes} from "./ollama/library.js";
import {presetRoutes} from "./ollama/presetRoutes.js";
import {resolvePreset} from "./presets/resolvePreset.js";
import {QUIET} from "./routeConfig.js";
import {forwardToUpstreams, upstreamRoutes} from "./upstreams/index.js";
import type {UpstreamPool} from "./upstreams/index.js";
import {isShadowCopy, routeRequests, routeRoutes} from "./routing/index.js";
import type {Router} from "./routing/index.js";
import {ContextWarnings} from "./generation/index.js";
import type {GenerationContext} from "./generation/index.js";
import {ImageReader} from "./images/index.js";
import {mcpRoutes} from "./mcp/mcpRoutes.js";
import type {McpServers} from "./mcp/McpServers.js";

export type AppOptions = {
    engine: Engine,
    library: Library,
    conversations: ConversationStore,
    /** Stored `/v1/responses` replies. */
    responses: ResponseStore,
    benchmarks: BenchStore,
    downloads: DownloadManager,
    access: AccessStore,
    metrics: ServerMetrics,
    audit: AuditLog,
    /** OpenAI-compatible servers whose models are served beside the local ones. */
    upstreams: UpstreamPool,
    /** Route names: weighted choices among models, and shadows. */
    router: Router,
    /** The MCP servers of `mcp.json`. */
    mcpServers: McpServers,
    /** Set to draining when the server starts to shut down. */
    lifecycle: Lifecycle,
    /** Fires when the server starts to shut down: running generations end early but properly. */
    shutdown: AbortSignal,
    /** A generation running longer ends early; `0` or undefined is no limit. */
    requestTimeoutMs?: number,
    /** The address the server listens on: what needs a key depends on it, and the Server view shows it. */
    host: string,
    /** Host names answered besides IP addresses and `localhost`. */
    allowedHosts?: readonly string[],
    /** Origins given at start whose pages may call the API; the Server view adds more. */
    allowedOrigins?: readonly string[],
    /** Generation requests a minute per key; `0` or undefined is no limit. */
    rateLimitPerMinute?: number,
    logger?: FastifyServerOptions["logger"],
    /** Largest request body accepted, in bytes. Defaults to {@link DEFAULT_MAX_BODY_BYTES}. */
    bodyLimitBytes?: number,
    /** How much of a body over the limit is still read after its 413 before the connection is cut. */
    linger?: LingerLimits,
    /** Fetch `http(s)` image URLs that requests send (`--allow-remote-images`); otherwise they are refused. Defaults to `false`. */
    allowRemoteImages?: boolean
};

/** The HTTP API: routes translate requests for the engine and its results back; nothing more. */
export async function buildApp({engine, library, conversations, responses, benchmarks, downloads, access, metrics, audit, upstreams, router, mcpServers, lifecycle, shutdown, requestTimeoutMs = 0,
    host, allowedHosts = [], allowedOrigins = [], rateLimitPerMinute = 0, logger = false, bodyLimitBytes = DEFAULT_MAX_BODY_BYTES, linger, allowRemoteImages = false}: AppOptions): Promise<FastifyInstance> {
    const app = Fastify({
        logger,
        // One log line per request is written when its connection closes (observeRequests), with its id.
        logController: new LogController({disableRequestLogging: true}),
        requestIdHeader: false,
        // A URL Fastify cannot decode (`/%zz`) is refused in the API's own error shape, like every other refusal.
        frameworkErrors: (error, request, reply) => {
            const message = `The URL is malformed: ${error.message}`;
            void (reply as FastifyReply).status(400).send(request.url.startsWith("/api/") ? {error: message} : errorBody(message, "invalid_request_error", null, "invalid_url"));
        },
        genReqId: (request) => requestIdFor(request.headers["x-request-id"]),
        bodyLimit: bodyLimitBytes,
        // Types are not coerced and unknown fields are kept: OpenAI clients send fields this server ignores.
        ajv: {customOptions: {coerceTypes: false, removeAdditional: false, useDefaults: false}}
    });
    app.setErrorHandler(errorHandler);
    limitRequestBodies(app, {limitBytes: bodyLimitBytes, linger});
    app.setNotFoundHandler((request, reply) => {
        const message = `There is no ${request.method} ${request.url.split("?")[0]} on this server`;
        void reply.status(404).send(request.url.startsWith("/api/") ? {error: message} : errorBody(message, "invalid_request_error", null, "not_found"));
    });

    const requestLog = new RequestLog();
    observeRequests(app, {log: requestLog, metrics, audit});
    accessControl(app, {store: access, host, allowedHosts, allowedOrigins, rateLimiter: rateLimitPerMinute > 0 ? new RateLimiter(rateLimitPerMinute) : undefined,
        // A route's shadow copy is Hearth's own request: the client's request was counted once.
        exemptFromRateLimit: (request) => isShadowCopy(request, router)});
    // After the access checks and before forwarding: a route's name becomes the model it picks, local or an upstream's.
    const isLocal = (model: string) => engine.pathOf(model) != null;
    routeRequests(app, {router, pool: upstreams, isLocal, draining: () => lifecycle.draining});
    // After the access checks: a request for an upstream's model is let in, counted and logged as any other.
    forwardToUpstreams(app, {pool: upstreams, isLocal, shutdown});

    app.get("/health", QUIET, async () => ({status: engine.status}));
    await app.register(observabilityRoutes, {engine, library, metrics, audit, lifecycle, upstreams});

    // Every route that generates shares one pipeline: its runs end early at the request timeout or on shutdown.
    // Routes that translate their API serve the upstreams' models too, asked for as OpenAI chat completions.
    const generation: GenerationContext = {engine, shutdown, requestTimeoutMs, upstreams: {pool: upstreams, isLocal}, contextWarnings: new ContextWarnings(),
        images: new ImageReader({allowRemote: allowRemoteImages}), presets: (name) => resolvePreset(library, name)};
    const options = {engine, library, generation};
    await app.register(modelsRoutes, {...options, upstreams, router});
    await app.register(chatCompletionsRoutes, options);
    await app.register(anthropicMessagesRoutes, options);
    await app.register(responsesRoutes, {generation, responses});
    await app.register(completionsRoutes, options);
    await app.register(embeddingsRoutes, options);
    await app.register(ollamaLibraryRoutes, options);
    await app.register(presetRoutes, options);
    await app.register(ollamaChatRoutes, options);
    await app.register(engineRoutes, options);
    await app.register(conversationRoutes, {generation, conversations});
    await app.register(benchRoutes, {engine, library, store: benchmarks, shutdown});
    await app.register(downloadRoutes, {downloads});
    await app.register(serverRoutes, {engine, log: requestLog, host});
    await app.register(accessRoutes, {store: access, host, startupOrigins: allowedOrigins});
    await app.register(upstreamRoutes, {pool: upstreams});
    await app.register(routeRoutes, {router});
    await app.register(mcpRoutes, {servers: mcpServers});
    await app.register(rendererRoutes);
    return app;
}
