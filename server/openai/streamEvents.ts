import type {FastifyReply} from "fastify";
import {RequestAbortedError} from "../../native/errors.js";
import type {Generation} from "../../native/LoadedModel.js";
import type {GenerationEvent, Usage} from "../../native/types.js";
import {toErrorReply} from "../errors.js";
import {mergeGenerations} from "../mergeGenerations.js";
import {SseStream} from "../sse.js";

export type ChunkEncoder = {
    /** A chunk sent for each choice before it generates anything. */
    first?(index: number): object,
    event(index: number, event: GenerationEvent): object | undefined,
    /** A chunk after every choice is done, given their usage. */
    last?(usages: Usage[]): object | undefined
};

/**
 * Streams generations as server-sent events, one chunk per event, ending in `data: [DONE]`.
 * An error after the stream began is sent as an `{"error": …}` chunk, the way OpenAI does;
 * a client that went away just ends it, and its slots are freed.
 */
export async function streamEvents(reply: FastifyReply, generations: readonly Generation[], encoder: ChunkEncoder): Promise<void> {
    const sse = new SseStream(reply);
    const usages: Usage[] = [];
    try {
        if (encoder.first != null)
            for (let index = 0; index < generations.length; index++)
                await sse.send(encoder.first(index));
        for await (const {index, event} of mergeGenerations(generations)) {
            if (event.type === "done")
                usages.push(event.usage);
            const chunk = encoder.event(index, event);
            if (chunk != null)
                await sse.send(chunk);
            if (sse.closed)
                break;
        }
        const last = encoder.last?.(usages);
        if (last != null)
            await sse.send(last);
        sse.end();
    } catch (error) {
        if (error instanceof RequestAbortedError || sse.closed) {
            reply.raw.destroy();
            return;
        }
        const {statusCode, body} = toErrorReply(error);
        if (statusCode >= 500)
            reply.log.error({err: error}, "stream failed");
        await sse.send(body);
        sse.end();
    }
}
