import type {FastifyInstance, FastifyServerOptions} from "fastify";
import {DownloadManager, HubClient, Library} from "../models/index.js";
import {Engine} from "../native/Engine.js";
import type {ModelCatalog} from "../native/Engine.js";
import {buildApp} from "./app.js";
import {boundUrl} from "./boundUrl.js";
import {ConversationStore} from "./conversations/ConversationStore.js";
import type {ServeConfig} from "./config.js";

export type RunningServer = {
    app: FastifyInstance,
    engine: Engine,
    library: Library,
    conversations: ConversationStore,
    downloads: DownloadManager,
    /** `http://host:port`, with the port actually bound. */
    url: string,
    /** Resolves when every model has loaded or failed; rejects when the backend cannot start. */
    ready: Promise<void>,
    close(): Promise<void>
};

/** The library as the engine sees it: names to verified file paths. */
export function libraryCatalog(library: Library): ModelCatalog {
    return {
        find: (name) => {
            const model = library.find(name);
            return model != null ? {path: library.filePaths(model)[0]!, names: [model.name]} : undefined;
        },
        names: () => library.list().map((model) => model.name)
    };
}

/** Listens first, then starts the engine, so `/health` answers `loading` while models load. */
export async function startServer(config: ServeConfig, options: {logger?: FastifyServerOptions["logger"]} = {}): Promise<RunningServer> {
    const library = await Library.open({home: config.home, hub: new HubClient(config.hub)});
    const engine = new Engine({
        gpu: config.gpu === "cpu" ? "cpu" : config.gpu,
        gpuLayers: config.gpuLayers,
        threads: config.threads,
        parallel: config.parallel,
        ctxSize: config.ctxSize,
        maxQueue: config.maxQueue,
        chatTemplate: config.chatTemplate,
        keepAliveMs: config.keepAliveMs,
        maxLoadedModels: config.maxLoadedModels,
        catalog: libraryCatalog(library),
        log: (level, message) => app.log[level](message)
    }, config.models);
    const conversations = new ConversationStore(library.home);
    const downloads = new DownloadManager(library);
    const app = await buildApp({engine, library, conversations, downloads, host: config.host, logger: options.logger});
    try {
        await app.listen({host: config.host, port: config.port});
    } catch (error) {
        conversations.close();
        library.close();
        throw error;
    }
    const url = boundUrl(app.server, config.host);

    const ready = engine.start();
    ready.catch(() => undefined);
    let closing: Promise<void> | undefined;
    return {
        app,
        engine,
        library,
        conversations,
        downloads,
        url,
        ready,
        close: () => {
            closing ??= (async () => {
                await downloads.dispose();
                await app.close();
                await engine.dispose();
                conversations.close();
                library.close();
            })();
            return closing;
        }
    };
}
