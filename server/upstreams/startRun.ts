import type {FastifyReply, FastifyRequest} from "fastify";
import {GenerationRun} from "../generation/index.js";
import type {GenerationContext, RequestOptions, Run, RunRequest} from "../generation/index.js";
import type {UpstreamPrompt} from "./toUpstreamRequest.js";
import {upstreamServing} from "./upstreamServing.js";
import {UpstreamRun} from "./UpstreamRun.js";

/** A run as a route that translates its API asks for it: the local generations, and the same request for an upstream. */
export type TranslatedRunRequest = RunRequest & {upstream: {prompt: UpstreamPrompt, options: RequestOptions}};

/**
 * Starts a request's run on a route that translates its API (`/v1/messages`, `/api/chat`, `/api/generate`): a
 * {@link GenerationRun} on the local model, or an {@link UpstreamRun} when an upstream serves the model instead.
 * The route then answers either with its encoder, the same way.
 */
export async function startRun(context: GenerationContext, request: FastifyRequest, reply: FastifyReply, asked: TranslatedRunRequest): Promise<Run> {
    const pool = upstreamServing(context.upstreams, asked.model);
    if (pool != null)
        return UpstreamRun.start(context, pool, request, reply, {model: asked.model, ...asked.upstream});
    return GenerationRun.start(context, reply, asked);
}
