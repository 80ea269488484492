import type {FastifyInstance} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {ModelNotFoundError} from "../../native/errors.js";
import {QUIET} from "../routeConfig.js";
import type {UpstreamPool} from "../upstreams/index.js";

export async function modelsRoutes(app: FastifyInstance, {engine, upstreams}: {engine: Engine, upstreams?: UpstreamPool}): Promise<void> {
    const entry = (name: string) => {
        const created = engine.models.find((model) => model.names.includes(name))?.createdAt ?? Math.floor(Date.now() / 1000);
        return {id: name, object: "model", created, owned_by: "hearth"};
    };
    // An upstream's model is listed unless a local one has its name (the local one is served); owned_by names its upstreams.
    const upstreamEntries = () => {
        const local = new Set(engine.servedNames);
        return (upstreams?.models() ?? []).filter((model) => !local.has(model.id)).map((model) => ({
            id: model.id, object: "model", created: model.created ?? Math.floor(Date.now() / 1000),
            owned_by: model.upstreams.map((upstream) => upstream.name).join(", ")
        }));
    };

    app.get("/v1/models", QUIET, async () => ({object: "list", data: [...engine.servedNames.map(entry), ...upstreamEntries()]}));

    app.get<{Params: {model: string}}>("/v1/models/:model", async (request) => {
        const name = request.params.model;
        if (engine.pathOf(name) == null) {
            const upstream = upstreamEntries().find((model) => model.id === name);
            if (upstream != null)
                return upstream;
            throw new ModelNotFoundError(name, engine.servedNames);
        }
        engine.get(name);
        return entry(name);
    });
}
