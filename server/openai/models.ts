import type {FastifyInstance} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {ModelNotFoundError} from "../../native/errors.js";
import {modelCapabilities} from "../modelCapabilities.js";
import {QUIET} from "../routeConfig.js";
import type {UpstreamPool} from "../upstreams/index.js";
import type {Router} from "../routing/index.js";

export async function modelsRoutes(app: FastifyInstance, {engine, upstreams, router}: {engine: Engine, upstreams?: UpstreamPool, router?: Router}): Promise<void> {
    const entry = async (name: string) => {
        const created = engine.models.find((model) => model.names.includes(name))?.createdAt ?? Math.floor(Date.now() / 1000);
        // Not in OpenAI's shape (LM Studio and Jan list theirs alike): what the model takes and does, as /api/show says
        // it, so a client knows it sees images.
        return {id: name, object: "model", created, owned_by: "hearth", capabilities: await modelCapabilities(engine, name)};
    };
    // An upstream's model is listed unless a local one has its name (the local one is served); owned_by names its upstreams.
    const upstreamEntries = () => {
        const local = new Set(engine.servedNames);
        return (upstreams?.models() ?? []).filter((model) => !local.has(model.id)).map((model) => ({
            id: model.id, object: "model", created: model.created ?? Math.floor(Date.now() / 1000),
            owned_by: model.upstreams.map((upstream) => upstream.name).join(", ")
        }));
    };

    // A route's name is listed as a model owned by "hearth-route" (once, when it is also a model's name: the route serves it).
    const routeEntries = () => (router?.names() ?? []).map((name) => ({id: name, object: "model", created: Math.floor(Date.now() / 1000), owned_by: "hearth-route"}));
    const allEntries = async () => {
        const routes = routeEntries();
        const routed = new Set(routes.map((route) => route.id));
        return [...routes, ...[...await Promise.all(engine.servedNames.map(entry)), ...upstreamEntries()].filter((model) => !routed.has(model.id))];
    };

    app.get("/v1/models", QUIET, async () => ({object: "list", data: await allEntries()}));

    app.get<{Params: {model: string}}>("/v1/models/:model", async (request) => {
        const name = request.params.model;
        const route = routeEntries().find((model) => model.id === name);
        if (route != null)
            return route;
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
