import type {FastifyReply, FastifyRequest} from "fastify";
import {GenerationRun} from "../generation/index.js";
import type {GenerationContext, RequestOptions, Run, RunRequest} from "../generation/index.js";
import type {UpstreamPrompt} from "./toUpstreamRequest.js";
import type {UpstreamPool} from "./UpstreamPool.js";
import {UpstreamRun} from "./UpstreamRun.js";

/** A run as a route that translates its API asks for it: the local generations, and the same request for an upstream. */
export type TranslatedRunRequest = RunRequest & {upstream: {prompt: UpstreamPrompt, options: RequestOptions}};

/**
 * The pool whose upstreams serve `model`, when a request for it goes to them: an upstream lists it and no local
 * model has its name (a local model wins, as for the requests `forwardToUpstreams` passes on).
 */
export function upstreamServing(context: GenerationContext, model: string): UpstreamPool | undefined {
    const upstreams = context.upstreams;
    // The pool is asked first: it is a lookup in memory, where a local name may need the library's database.
    return upstreams != null && upstreams.pool.serves(model) && !upstreams.isLocal(model) ? upstreams.pool : undefined;
}

/**
 * Starts a request's run on a route that translates its API (`/v1/messages`, `/api/chat`, `/api/generate`): a
 * {@link GenerationRun} on the local model, or an {@link UpstreamRun} when an upstream serves the model instead.
 * The route then answers either with its encoder, the same way.
 */
export async function startRun(context: GenerationContext, request: FastifyRequest, reply: FastifyReply, asked: TranslatedRunRequest): Promise<Run> {
    const pool = upstreamServing(context, asked.model);
    if (pool != null)
        return UpstreamRun.start(context, pool, request, reply, {model: asked.model, ...asked.upstream});
    return GenerationRun.start(context, reply, asked);
}
