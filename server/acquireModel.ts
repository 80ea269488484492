import type {FastifyReply} from "fastify";
import type {Engine} from "../native/Engine.js";
import type {LoadedModel} from "../native/LoadedModel.js";

/**
 * The model a request runs on, held until its response is finished or its connection closes;
 * then the engine's keep-alive for it starts. Loads a library model on first use.
 */
export async function acquireModel(engine: Engine, reply: FastifyReply, name: string, keepAliveMs?: number): Promise<LoadedModel> {
    const lease = await engine.acquire(name, {keepAliveMs});
    if (reply.raw.closed)
        lease.release();
    else
        reply.raw.once("close", () => lease.release());
    return lease.model;
}
