import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import type {Engine} from "../../native/Engine.js";
import {InvalidRequestError, ModelNotFoundError} from "../../native/errors.js";
import type {LoadSettings} from "../../native/planOffload.js";
import {systemReport} from "../../native/systemReport.js";
import {offloadPlanJson} from "../offloadPlanJson.js";
import {useOllamaConventions} from "./ollamaConventions.js";
import {keepAliveMs} from "./translate.js";

/**
 * The machine and what fits on it: `/api/system`, `/api/estimate`, and explicit `/api/load` and
 * `/api/unload` with load settings, as the UI's model panel uses them.
 */

const GpuLayers = Type.Union([Type.Literal("auto"), Type.Literal("max"), Type.Integer({minimum: 0, maximum: 100_000})]);
const Settings = {
    /** `"auto"`: the model's trained context as far as free memory allows. */
    ctx_size: Type.Optional(Type.Union([Type.Literal("auto"), Type.Integer({minimum: 64, maximum: 1 << 20})])),
    parallel: Type.Optional(Type.Integer({minimum: 1, maximum: 256})),
    gpu_layers: Type.Optional(GpuLayers)
};
const LoadRequest = Type.Object({
    model: Type.String({minLength: 1}),
    ...Settings,
    keep_alive: Type.Optional(Type.Union([Type.Number(), Type.String(), Type.Null()]))
});
type LoadRequest = Static<typeof LoadRequest>;
const UnloadRequest = Type.Object({model: Type.String({minLength: 1})});
type UnloadRequest = Static<typeof UnloadRequest>;
/** Query strings are text: numbers are parsed here rather than by a coercing validator. */
const EstimateQuery = Type.Object({
    model: Type.String({minLength: 1}),
    ctx_size: Type.Optional(Type.String({pattern: "^(auto|[0-9]+)$"})),
    parallel: Type.Optional(Type.String({pattern: "^[0-9]+$"})),
    gpu_layers: Type.Optional(Type.String({pattern: "^(auto|max|[0-9]+)$"}))
});
type EstimateQuery = Static<typeof EstimateQuery>;

export async function engineRoutes(app: FastifyInstance, {engine}: {engine: Engine}): Promise<void> {
    useOllamaConventions(app);

    app.get("/api/system", async () => {
        const llama = await engine.startBackend();
        return systemReport(llama, engine.backendReport!);
    });

    app.get<{Querystring: EstimateQuery}>("/api/estimate", {schema: {querystring: EstimateQuery}}, async (request) => {
        const {model} = request.query;
        const plan = await engine.estimate(model, settingsFrom({
            ctx_size: parseCtxSize(request.query.ctx_size),
            parallel: request.query.parallel != null ? Number(request.query.parallel) : undefined,
            gpu_layers: parseGpuLayers(request.query.gpu_layers)
        }));
        return {model, ...offloadPlanJson(plan)};
    });

    app.post<{Body: LoadRequest}>("/api/load", {schema: {body: LoadRequest}}, async (request) => {
        const {model, keep_alive} = request.body;
        const loaded = await engine.load(model, settingsFrom(request.body), {keepAliveMs: keepAliveMs(keep_alive) ?? -1});
        return {model: loaded.names[0], loaded: true, ...offloadPlanJson(loaded.plan)};
    });

    app.post<{Body: UnloadRequest}>("/api/unload", {schema: {body: UnloadRequest}}, async (request) => {
        const {model} = request.body;
        if (engine.pathOf(model) == null)
            throw new ModelNotFoundError(model, engine.servedNames);
        return {model, unloaded: await engine.unload(model)};
    });
}

function settingsFrom(body: {ctx_size?: LoadSettings["ctxSize"] | undefined, parallel?: number | undefined, gpu_layers?: LoadSettings["gpuLayers"] | undefined}): Partial<LoadSettings> {
    const settings: Partial<LoadSettings> = {};
    if (body.ctx_size != null)
        settings.ctxSize = body.ctx_size;
    if (body.parallel != null)
        settings.parallel = body.parallel;
    if (body.gpu_layers != null)
        settings.gpuLayers = body.gpu_layers;
    return settings;
}

function parseCtxSize(value: string | undefined): LoadSettings["ctxSize"] | undefined {
    if (value == null || value === "auto")
        return value;
    const ctxSize = Number(value);
    if (!Number.isSafeInteger(ctxSize) || ctxSize < 64 || ctxSize > 1 << 20)
        throw new InvalidRequestError(`ctx_size must be auto or a whole number from 64 to ${1 << 20}`, "ctx_size");
    return ctxSize;
}

function parseGpuLayers(value: string | undefined): LoadSettings["gpuLayers"] | undefined {
    if (value == null || value === "auto" || value === "max")
        return value;
    const layers = Number(value);
    if (!Number.isSafeInteger(layers))
        throw new InvalidRequestError("gpu_layers must be auto, max or a whole number", "gpu_layers");
    return layers;
}
