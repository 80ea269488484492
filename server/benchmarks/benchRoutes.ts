import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import type {Library} from "../../models/index.js";
import type {Engine} from "../../native/Engine.js";
import {defaultBenchText} from "../../native/benchmark/defaultBenchText.js";
import {ModelNotFoundError} from "../../native/errors.js";
import {ApiError} from "../errors.js";
import {systemReport} from "../../native/systemReport.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import type {BenchRun, BenchStore} from "./BenchStore.js";
import {runRecordedBenchmark} from "./runRecordedBenchmark.js";

/**
 * `/api/bench`: benchmark runs for the Benchmarks view. A run starts in the background (each model in a
 * process of its own) and is polled; every run, from here or from `hearth bench`, stays in the history.
 */

const StartBody = Type.Object({
    models: Type.Array(Type.String({minLength: 1}), {minItems: 1, maxItems: 16}),
    ctx_size: Type.Optional(Type.Integer({minimum: 16, maximum: 32768})),
    prompt_tokens: Type.Optional(Type.Integer({minimum: 1, maximum: 32768})),
    gen_tokens: Type.Optional(Type.Integer({minimum: 1, maximum: 8192})),
    parallel: Type.Optional(Type.Integer({minimum: 1, maximum: 64})),
    repetitions: Type.Optional(Type.Integer({minimum: 1, maximum: 20})),
    text: Type.Optional(Type.String({minLength: 1, maxLength: 1_000_000}))
}, {additionalProperties: false});
type StartBody = Static<typeof StartBody>;

class BenchRunNotFoundError extends ApiError {
    override readonly name = "BenchRunNotFoundError";

    constructor() {
        super(404, "There is no such benchmark run.", {code: "not_found"});
    }
}

class BenchBusyError extends ApiError {
    override readonly name = "BenchBusyError";

    constructor(run: BenchRun) {
        super(409, `A benchmark is already running (${run.progress.done} of ${run.progress.total} models done); start another when it ends.`, {code: "bench_running"});
    }
}

export async function benchRoutes(app: FastifyInstance, {engine, library, store, shutdown}: {engine: Engine, library: Library, store: BenchStore, shutdown: AbortSignal}): Promise<void> {
    useOllamaConventions(app);
    let running: BenchRun | undefined;

    app.get("/api/bench/runs", async () => ({runs: store.list()}));

    app.get<{Params: {id: string}}>("/api/bench/runs/:id", async (request) => {
        const run = store.get(request.params.id);
        if (run == null)
            throw new BenchRunNotFoundError();
        return run;
    });

    app.post<{Body: StartBody}>("/api/bench", {schema: {body: StartBody}}, async (request, reply) => {
        if (running != null)
            throw new BenchBusyError(store.get(running.id) ?? running);
        const body = request.body;
        // Only served models (pinned files and the library) can be measured: a request never names a path.
        const modelPaths = body.models.map((name) => {
            const modelPath = engine.pathOf(name);
            if (modelPath == null)
                throw new ModelNotFoundError(name, engine.servedNames);
            return modelPath;
        });
        const sha256ByPath = new Map(body.models.flatMap((name, index) => {
            const model = library.find(name);
            return model != null ? [[modelPaths[index]!, model.sha256] as const] : [];
        }));
        const machine = await systemReport(await engine.startBackend(), engine.backendReport!);
        const settings = {
            ctxSize: body.ctx_size ?? 512, promptTokens: body.prompt_tokens ?? 512, generateTokens: body.gen_tokens ?? 128, parallel: body.parallel ?? 1,
            repetitions: body.repetitions ?? 3, threads: engine.options.threads, gpuLayers: engine.options.gpuLayers,
            flashAttention: engine.options.flashAttention ?? "auto"
        };
        const run = store.start(body.models, {...settings, gpu: engine.options.gpu}, machine);
        running = run;
        void runRecordedBenchmark(store, run, {
            knownSha256: (modelPath) => sha256ByPath.get(modelPath),
            plan: {modelPaths, text: body.text ?? defaultBenchText, gpu: engine.options.gpu, settings, scratchDir: library.home, signal: shutdown}
        }).catch(() => undefined).finally(() => {
            running = undefined;
        });
        return reply.status(202).send(run);
    });
}
