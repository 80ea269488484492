import {setMaxListeners} from "node:events";
import type {FastifyInstance, FastifyServerOptions} from "fastify";
import {DownloadManager, HubClient, Library} from "../models/index.js";
import {Engine} from "../native/Engine.js";
import type {ModelCatalog, ModelToLoad} from "../native/Engine.js";
import {AccessStore} from "./access/AccessStore.js";
import {buildApp} from "./app.js";
import {boundUrl, isLoopback} from "./boundUrl.js";
import {BenchStore} from "./benchmarks/BenchStore.js";
import {ConversationStore} from "./conversations/ConversationStore.js";
import {ResponseStore} from "./openai/ResponseStore.js";
import {AuditLog} from "./observability/AuditLog.js";
import {ServerMetrics} from "./observability/ServerMetrics.js";
import {UpstreamPool, UpstreamStore} from "./upstreams/index.js";
import {Router, RouteStore} from "./routing/index.js";
import {ConfigError} from "./config.js";
import type {ServeConfig} from "./config.js";
import type {LingerLimits} from "./limitRequestBodies.js";
import {resolveModelNames} from "./resolveModelNames.js";
import {checkDraftModels} from "./checkDraftModels.js";
import {resolveProjectors} from "./resolveProjectors.js";
import {resolvePreset} from "./presets/resolvePreset.js";
import {modelCapabilities} from "./modelCapabilities.js";
import {McpServers} from "./mcp/McpServers.js";

export type RunningServer = {
    app: FastifyInstance,
    engine: Engine,
    library: Library,
    conversations: ConversationStore,
    downloads: DownloadManager,
    access: AccessStore,
    /** The MCP servers of `mcp.json`: what tools in a chat and the Responses `mcp` tool call. */
    mcpServers: McpServers,
    /** The address listened on. */
    host: string,
    /** `http://host:port`, with the port actually bound. */
    url: string,
    /** Resolves when every model has loaded or failed; rejects when the backend cannot start. */
    ready: Promise<void>,
    /**
     * Drains and stops: no new connections or requests (503), running replies may finish for up to
     * `drainMs` and are then ended early with a proper last chunk, then the engine and databases close.
     */
    close(options?: {drainMs?: number}): Promise<void>
};

/** The library as the engine sees it: names to verified file paths. */
export function libraryCatalog(library: Library, pinned: readonly ModelToLoad[] = []): ModelCatalog {
    const model = (name: string): ModelToLoad | undefined => {
        const found = library.find(name);
        if (found == null)
            return undefined;
        const projectorPath = library.projectorPath(found);
        return {path: library.filePaths(found)[0]!, names: [found.name], ...projectorPath != null ? {projectorPath} : {}};
    };
    return {
        // A preset loads its model: a library model's file, or a --model file (which the engine finds pinned by its path).
        find: (name) => {
            const direct = model(name);
            if (direct != null)
                return direct;
            const base = resolvePreset(library, name)?.model;
            return base != null ? model(base) ?? pinned.find((spec) => spec.names.includes(base)) : undefined;
        },
        names: () => [...library.list().map((entry) => entry.name), ...library.presets.list().map((preset) => preset.name)]
    };
}

/**
 * The address to listen on: `--host`, else the app's LAN access setting. Other machines may reach the
 * server only with a key: an explicit `--host` without one is refused, and the LAN setting falls back to
 * loopback (it cannot be turned on without a key, but the key may have been revoked since).
 */
export function chooseHost(config: Pick<ServeConfig, "host">, access: AccessStore, warn: (message: string) => void): string {
    if (config.host != null) {
        if (!isLoopback(config.host) && !access.hasKeys())
            throw new ConfigError(`Listening on ${config.host} lets other machines use this server, and it has no API key. `
                + "Create one with `hearth keys create` (or pass --api-key KEY), then start again.");
        return config.host;
    }
    if (access.settings().lan_access) {
        if (access.hasKeys())
            return "0.0.0.0";
        warn("LAN access is on, but no API key exists: listening on 127.0.0.1 only. Create a key to serve the network.");
    }
    return "127.0.0.1";
}

/** Whether a server logger logs at debug level (`HEARTH_LOG_LEVEL=debug`): llama.cpp's own lines are then passed on. */
function logsDebug(logger: FastifyServerOptions["logger"]): boolean {
    const level = typeof logger === "object" && logger != null && "level" in logger ? logger.level : undefined;
    return level === "debug" || level === "trace";
}

export type StartOptions = {
    logger?: FastifyServerOptions["logger"],
    sessionKeys?: readonly string[],
    /** How much of a body over `maxBodyBytes` is still read after its 413; see `limitRequestBodies`. */
    linger?: LingerLimits
};

/** Listens first, then starts the engine, so `/health` answers `loading` while models load. */
export async function startServer(config: ServeConfig, options: StartOptions = {}): Promise<RunningServer> {
    const library = await Library.open({home: config.home, hub: new HubClient(config.hub)});
    const access = new AccessStore(library.home, {startupKeys: config.apiKeys, sessionKeys: options.sessionKeys});
    let host: string;
    let models: ModelToLoad[];
    try {
        host = chooseHost(config, access, (message) => console.warn(`hearth: ${message}`));
        models = await resolveProjectors(resolveModelNames(library, config));
        await checkDraftModels(models);
    } catch (error) {
        access.close();
        library.close();
        throw error;
    }
    const engine = new Engine({
        gpu: config.gpu === "cpu" ? "cpu" : config.gpu,
        gpuDevices: config.gpuDevices,
        logLlamaCpp: logsDebug(options.logger),
        gpuLayers: config.gpuLayers,
        threads: config.threads,
        flashAttention: config.flashAttention,
        decodeLoop: config.decodeLoop,
        ...config.speculation != null ? {speculation: config.speculation} : {},
        parallel: config.parallel,
        ctxSize: config.ctxSize,
        kvCacheType: config.kvCacheType,
        mmprojOffload: config.mmprojOffload ?? true,
        maxQueue: config.maxQueue,
        cacheRamBytes: config.cacheRamBytes,
        chatTemplate: config.chatTemplate,
        keepAliveMs: config.keepAliveMs,
        maxLoadedModels: config.maxLoadedModels,
        catalog: libraryCatalog(library, models),
        log: (level, message) => app.log[level](message),
        onGenerationDone: (report) => metrics.generationDone(report)
    }, models);
    const conversations = new ConversationStore(library.home);
    const responses = new ResponseStore(library.home);
    const benchmarks = new BenchStore(library.home);
    const downloads = new DownloadManager(library);
    const metrics = new ServerMetrics({engine, downloads});
    const audit = new AuditLog(library.home, {keepBodies: config.auditPrompts});
    const upstreamStore = new UpstreamStore(library.home);
    const upstreams = new UpstreamPool({
        registry: metrics.registry, startup: config.upstreams, store: upstreamStore, timeoutMs: config.upstreamTimeoutMs,
        log: (level, message) => app.log[level](message)
    });
    const routeStore = new RouteStore(library.home);
    const router = new Router({registry: metrics.registry, startup: config.routes, store: routeStore});
    const mcpServers = new McpServers(library.home);
    const lifecycle = {draining: false};
    const shutdown = new AbortController();
    // Every generation request in flight listens for shutdown (and stops listening when it ends): no limit applies.
    setMaxListeners(0, shutdown.signal);
    const app = await buildApp({
        engine, library, conversations, responses, benchmarks, downloads, access, metrics, audit, upstreams, router, mcpServers, lifecycle, shutdown: shutdown.signal, requestTimeoutMs: config.requestTimeoutMs, host,
        allowedHosts: config.allowedHosts, allowedOrigins: config.allowedOrigins, rateLimitPerMinute: config.rateLimitPerMinute,
        logger: options.logger, allowRemoteImages: config.allowRemoteImages, bodyLimitBytes: config.maxBodyBytes, linger: options.linger
    });
    try {
        await app.listen({host, port: config.port});
    } catch (error) {
        upstreams.dispose();
        upstreamStore.close();
        routeStore.close();
        conversations.close();
        responses.close();
        benchmarks.close();
        audit.close();
        access.close();
        library.close();
        throw error;
    }
    const url = boundUrl(app.server, host);

    const ready = engine.start();
    // What each model given with --model can do (tools, thinking) is read from its header while it loads, so that the
    // app's first /v1/models does not wait for it.
    for (const spec of models)
        for (const name of spec.names.slice(0, 1))
            void modelCapabilities(engine, name);
    ready.catch(() => undefined);
    // Upstreams are read in the background: their models are served as soon as each one answers.
    void upstreams.start();
    // MCP servers start in the background too: a broken one is shown as failed and never delays the rest.
    mcpServers.refresh().catch((error: unknown) => app.log.warn(`MCP servers: ${(error as Error).message}`));
    let closing: Promise<void> | undefined;
    return {
        app,
        engine,
        library,
        conversations,
        downloads,
        access,
        mcpServers,
        host,
        url,
        ready,
        close: ({drainMs = 0} = {}) => {
            closing ??= (async () => {
                lifecycle.draining = true;
                const deadline = setTimeout(() => shutdown.abort(), drainMs);
                // Keep-alive connections that finish their last reply while draining would hold the close for
                // the keep-alive timeout: close each as soon as it is idle, and all of them a while after the deadline.
                const idleCloser = setInterval(() => app.server.closeIdleConnections(), 100);
                const lastResort = setTimeout(() => app.server.closeAllConnections(), drainMs + 5000);
                await downloads.dispose();
                // Stops listening, answers requests on open connections with 503, and waits for those in flight.
                await app.close();
                clearTimeout(deadline);
                clearInterval(idleCloser);
                clearTimeout(lastResort);
                shutdown.abort();
                upstreams.dispose();
                await mcpServers.dispose();
                await engine.dispose();
                conversations.close();
                responses.close();
                benchmarks.close();
                audit.close();
                upstreamStore.close();
                routeStore.close();
                access.close();
                library.close();
            })();
            return closing;
        }
    };
}
