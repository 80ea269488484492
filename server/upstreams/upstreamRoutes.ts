import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import {InvalidRequestError} from "../../native/errors.js";
import {normalizeUpstreamUrl} from "../config.js";
import {ApiError} from "../errors.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import {LOCAL_ONLY, QUIET} from "../routeConfig.js";
import {UpstreamExistsError} from "./UpstreamPool.js";
import type {UpstreamPool} from "./UpstreamPool.js";

const NewUpstream = Type.Object({
    url: Type.String({minLength: 1, maxLength: 2000}),
    key: Type.Optional(Type.String({minLength: 1, maxLength: 1000}))
}, {additionalProperties: false});
type NewUpstream = Static<typeof NewUpstream>;
const UpstreamParams = Type.Object({id: Type.String({maxLength: 100})});
type UpstreamParams = Static<typeof UpstreamParams>;

/**
 * `/api/upstreams`: the upstreams, their health and models (`GET`), and adding (`POST`) or removing (`DELETE`)
 * stored ones. Changes are accepted from this machine only, as for API keys: an upstream receives prompts.
 */
export async function upstreamRoutes(app: FastifyInstance, {pool}: {pool: UpstreamPool}): Promise<void> {
    useOllamaConventions(app);

    app.get("/api/upstreams", QUIET, async () => ({upstreams: pool.list()}));

    app.post<{Body: NewUpstream}>("/api/upstreams", {schema: {body: NewUpstream}, ...LOCAL_ONLY}, async (request, reply) => {
        const url = normalizeUpstreamUrl(request.body.url);
        if (url == null)
            throw new InvalidRequestError(`"${request.body.url}" is not an upstream URL: write it as http://host:port or https://host/v1 (a key goes in "key").`, "url");
        const key = request.body.key?.trim();
        if (key != null && /\s/.test(key))
            throw new InvalidRequestError("The key contains spaces.", "key");
        try {
            const upstream = await pool.add({url, key: key || undefined});
            void reply.status(201);
            return upstream;
        } catch (error) {
            if (error instanceof UpstreamExistsError)
                throw new ApiError(409, error.message, {code: "upstream_exists"});
            throw error;
        }
    });

    app.delete<{Params: UpstreamParams}>("/api/upstreams/:id", {schema: {params: UpstreamParams}, ...LOCAL_ONLY}, async (request, reply) => {
        const upstream = pool.get(request.params.id);
        if (upstream == null)
            throw new ApiError(404, `There is no upstream "${request.params.id}".`, {code: "not_found"});
        if (upstream.source === "startup")
            throw new InvalidRequestError(`The upstream ${upstream.url} was given with --upstream when the server started; restart the server without it to stop using it.`, "id", "startup_upstream");
        pool.remove(upstream.id);
        return reply.status(204).send();
    });
}
