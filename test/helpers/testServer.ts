import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before} from "node:test";
import type {FastifyServerOptions} from "fastify";
import OpenAI from "openai";
import type {ServeConfig} from "../../server/config.js";
import {startServer} from "../../server/startServer.js";
import type {RunningServer, StartOptions} from "../../server/startServer.js";
import {modelNameFromPath} from "../../server/config.js";
import {testModel} from "./testModels.js";

export type TestServer = RunningServer & {
    /** `…/v1`, the OpenAI base URL. */
    baseURL: string,
    client: OpenAI
};

/** Starts the real server on a free loopback port with real models, and waits until they have loaded. */
export async function startTestServer(options: Partial<ServeConfig> & {modelFiles?: string[], logger?: FastifyServerOptions["logger"], linger?: StartOptions["linger"]} = {}): Promise<TestServer> {
    const modelFiles = options.modelFiles ?? ["stories260K.gguf"];
    const models = await Promise.all(modelFiles.map(async (file) => {
        const modelPath = await testModel(file);
        return {path: modelPath, names: [modelNameFromPath(modelPath)]};
    }));
    const temporaryHome = options.home == null ? await mkdtemp(path.join(os.tmpdir(), "hearth-test-home-")) : undefined;
    const server = await startServer({
        host: "127.0.0.1",
        port: 0,
        parallel: 4,
        ctxSize: 2048,
        kvCacheType: "f16",
        threads: 1,
        gpu: "cpu",
        gpuLayers: 0,
        gpuDevices: [],
        flashAttention: "auto",
        decodeLoop: "auto",
        maxQueue: 64,
        cacheRamBytes: 64 * 1024 * 1024,
        chatTemplate: undefined,
        home: options.home ?? temporaryHome!,
        keepAliveMs: 5 * 60 * 1000,
        maxLoadedModels: 3,
        hub: {endpoint: "http://127.0.0.1:9", token: undefined},
        apiKeys: [],
        allowedOrigins: [],
        allowedHosts: [],
        rateLimitPerMinute: 0,
        requestTimeoutMs: 10 * 60 * 1000,
        shutdownTimeoutMs: 30 * 1000,
        auditPrompts: false,
        ...options,
        models: options.models ?? models
    }, {logger: options.logger, linger: options.linger});
    await server.ready;
    const baseURL = `${server.url}/v1`;
    const close = async () => {
        await server.close();
        if (temporaryHome != null)
            await rm(temporaryHome, {recursive: true, force: true});
    };
    return {...server, close, baseURL, client: new OpenAI({baseURL, apiKey: "not-needed", maxRetries: 0})};
}

/**
 * Starts a server before the tests of the calling file and closes it after them. The returned object
 * is filled in when the server is up, so tests use it directly.
 */
export function useTestServer(options: Parameters<typeof startTestServer>[0] = {}): TestServer {
    const server = {} as TestServer;
    before(async () => {
        Object.assign(server, await startTestServer(options));
    });
    after(async () => {
        await server.close?.();
    });
    return server;
}
