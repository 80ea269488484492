import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import {InvalidRequestError} from "../../native/errors.js";
import {ApiError} from "../errors.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import {LOCAL_ONLY, QUIET} from "../routeConfig.js";
import {RouteChangeError} from "./Router.js";
import type {Router} from "./Router.js";
import {MAX_TARGETS, RouteSpecError} from "./routeSpec.js";

const RouteBody = Type.Object({
    targets: Type.Array(Type.Object({
        model: Type.String({minLength: 1, maxLength: 200}),
        weight: Type.Optional(Type.Number({minimum: 0, maximum: 1_000_000}))
    }, {additionalProperties: false}), {minItems: 1, maxItems: MAX_TARGETS}),
    shadow: Type.Optional(Type.Union([Type.String({minLength: 1, maxLength: 200}), Type.Null()]))
}, {additionalProperties: false});
type RouteBody = Static<typeof RouteBody>;
const RouteParams = Type.Object({name: Type.String({minLength: 1, maxLength: 200})});
type RouteParams = Static<typeof RouteParams>;

/**
 * `/api/routes`: the routes with their weights, requests and shadow comparison (`GET`), setting one (`PUT`, which
 * takes effect with the next request) and removing one (`DELETE`). Changes are accepted from this machine only,
 * as for upstreams and API keys.
 */
export async function routeRoutes(app: FastifyInstance, {router}: {router: Router}): Promise<void> {
    useOllamaConventions(app);

    app.get("/api/routes", QUIET, async () => ({routes: router.list()}));

    app.get<{Params: RouteParams}>("/api/routes/:name", {schema: {params: RouteParams}, ...QUIET}, async (request) => {
        const view = router.view(request.params.name);
        if (view == null)
            throw new ApiError(404, `There is no route "${request.params.name}".`, {code: "not_found"});
        return view;
    });

    app.put<{Params: RouteParams, Body: RouteBody}>("/api/routes/:name", {schema: {params: RouteParams, body: RouteBody}, ...LOCAL_ONLY}, async (request) => {
        const {name} = request.params;
        const {targets, shadow} = request.body;
        try {
            router.set({name, targets: targets.map((target) => ({model: target.model, weight: target.weight ?? 1})), ...shadow != null ? {shadow} : {}});
        } catch (error) {
            if (error instanceof RouteSpecError)
                throw new InvalidRequestError(error.message, error.field, "invalid_route");
            throw error;
        }
        return router.view(name);
    });

    app.delete<{Params: RouteParams}>("/api/routes/:name", {schema: {params: RouteParams}, ...LOCAL_ONLY}, async (request, reply) => {
        try {
            if (!router.remove(request.params.name))
                throw new ApiError(404, `There is no route "${request.params.name}".`, {code: "not_found"});
        } catch (error) {
            if (error instanceof RouteChangeError)
                throw new InvalidRequestError(error.message, "name", "startup_route");
            throw error;
        }
        return reply.status(204).send();
    });
}
