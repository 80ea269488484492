import type {FastifyInstance} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {QUIET} from "../routeConfig.js";

export async function modelsRoutes(app: FastifyInstance, {engine}: {engine: Engine}): Promise<void> {
    const entry = (name: string) => {
        const created = engine.models.find((model) => model.names.includes(name))?.createdAt ?? Math.floor(Date.now() / 1000);
        return {id: name, object: "model", created, owned_by: "hearth"};
    };

    app.get("/v1/models", QUIET, async () => ({object: "list", data: engine.servedNames.map(entry)}));

    app.get<{Params: {model: string}}>("/v1/models/:model", async (request) => {
        engine.get(request.params.model);
        return entry(request.params.model);
    });
}
