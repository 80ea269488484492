import type {FastifyReply, FastifyRequest} from "fastify";
import {clientAbortSignal} from "../sse.js";
import {UpstreamInvalidReplyError} from "./errors.js";
import {hopsOf, noteUpstreamFailure} from "./forwardToUpstreams.js";
import type {UpstreamPool} from "./UpstreamPool.js";

/**
 * Embeds `inputs` with an upstream's model through OpenAI's `/v1/embeddings`, for an API that has its own shape
 * (Ollama's `/api/embed`): the vectors in the order of the inputs, and the prompt tokens the upstream counted. The
 * client going away cancels the request; a failure is thrown with the status of {@link UpstreamError}s.
 */
export async function embedUpstream(pool: UpstreamPool, request: FastifyRequest, reply: FastifyReply, {model, inputs, dimensions}: {
    model: string, inputs: readonly string[], dimensions?: number
}): Promise<{vectors: number[][], promptTokens: number}> {
    const hops = hopsOf(request, model);
    request.record.model = model;
    const body = {input: inputs, encoding_format: "float", ...dimensions != null ? {dimensions} : {}};
    let call;
    try {
        call = await pool.forward({model, path: "/v1/embeddings", body, signal: clientAbortSignal(reply), requestId: request.id, hops});
    } catch (error) {
        noteUpstreamFailure(request, reply, error, model);
        throw error;
    }
    try {
        if (call.statusCode >= 400)
            throw call.refusal();
        const json = call.json as {data?: {index?: number, embedding?: unknown}[], usage?: {prompt_tokens?: number}};
        const data = Array.isArray(json.data) ? [...json.data].sort((a, b) => (a.index ?? 0) - (b.index ?? 0)) : [];
        const vectors = data.map((entry) => entry.embedding);
        if (vectors.length !== inputs.length || !vectors.every((vector) => Array.isArray(vector) && vector.every((value) => typeof value === "number")))
            throw new UpstreamInvalidReplyError(call.upstream.name, `not ${inputs.length} embeddings as lists of numbers`);
        const promptTokens = json.usage?.prompt_tokens ?? 0;
        request.record.promptTokens += promptTokens;
        return {vectors: vectors as number[][], promptTokens};
    } finally {
        call.release();
    }
}
