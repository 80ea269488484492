import type {FastifyInstance, FastifyServerOptions} from "fastify";
import {Engine} from "../native/Engine.js";
import {buildApp} from "./app.js";
import type {ServeConfig} from "./config.js";

export type RunningServer = {
    app: FastifyInstance,
    engine: Engine,
    /** `http://host:port`, with the port actually bound. */
    url: string,
    /** Resolves when every model has loaded or failed; rejects when the backend cannot start. */
    ready: Promise<void>,
    close(): Promise<void>
};

/** Listens first, then starts the engine, so `/health` answers `loading` while models load. */
export async function startServer(config: ServeConfig, options: {logger?: FastifyServerOptions["logger"]} = {}): Promise<RunningServer> {
    const engine = new Engine({
        gpu: config.gpu === "cpu" ? "cpu" : config.gpu,
        gpuLayers: config.gpuLayers,
        threads: config.threads,
        parallel: config.parallel,
        ctxSize: config.ctxSize,
        maxQueue: config.maxQueue,
        chatTemplate: config.chatTemplate,
        log: (level, message) => app.log[level](message)
    }, config.models);
    const app = await buildApp({engine, logger: options.logger});
    await app.listen({host: config.host, port: config.port});
    const address = app.server.address();
    const port = typeof address === "object" && address != null ? address.port : config.port;
    const host = config.host.includes(":") ? `[${config.host}]` : config.host;

    const ready = engine.start();
    ready.catch(() => undefined);
    let closing: Promise<void> | undefined;
    return {
        app,
        engine,
        url: `http://${host}:${port}`,
        ready,
        close: () => {
            closing ??= (async () => {
                await app.close();
                await engine.dispose();
            })();
            return closing;
        }
    };
}
