import type {FastifyReply} from "fastify";
import {RequestAbortedError} from "../../native/errors.js";
import type {GenerationEvent} from "../../native/types.js";
import {failureOf, toErrorReply} from "../errors.js";
import type {ErrorReply} from "../errors.js";
import {EventStream} from "../sse.js";
import type {WireFormat} from "../sse.js";
import {isFinished} from "./Reply.js";
import type {FinishedReply, Reply} from "./Reply.js";

/**
 * What the pipeline reads of a run, wherever its events come from: a local `GenerationRun` generating on this
 * machine, or an upstream's reply read as the same events (`upstreams/UpstreamRun`). Each event is folded into its
 * generation's reply before it is yielded; the run releases what it holds once, at the end of its events or on
 * {@link release}, whoever comes first.
 */
export type Run = {
    /** When the request began to be served, for Ollama's `total_duration`. */
    readonly startedMs: number,
    /** How long getting the model took (loading it, on first use), for Ollama's `load_duration`. */
    readonly loadMs: number,
    /** Each generation's reply so far. */
    readonly replies: readonly Reply[],
    /** The events of every generation as they come, tagged with its index; ending early stops them all and releases the run. */
    events(): AsyncGenerator<{index: number, event: GenerationEvent}>,
    /** Stops and frees everything the run holds. Idempotent. */
    release(): void
};

/**
 * How one API writes a run's events: the only thing an API adds to the pipeline. `stream` frames chunks as they
 * come; `body` makes the one JSON answer of a request that is not streamed. An API that only streams leaves
 * `body` out. Each method returns the chunks to send, in order (none is an empty array).
 */
export type Encoder = {
    stream?: StreamEncoder,
    body?(replies: readonly FinishedReply[]): unknown
};

export type StreamEncoder = {
    format: WireFormat,
    /** Sent before any event (OpenAI's first delta of each choice, the conversation's new message). */
    start?(): readonly unknown[],
    /** One event of generation `index`; `reply` is that generation's reply so far, this event included. */
    event(index: number, event: GenerationEvent, reply: Reply): readonly unknown[],
    /** After every generation is done (a usage chunk, Ollama's final line with its statistics). */
    end(replies: readonly FinishedReply[]): readonly unknown[],
    /** An error after the stream began, in the API's shape; the stream ends after it. */
    error(error: ErrorReply): readonly unknown[],
    /** The client went away before the end: nothing more can be sent. */
    abandoned?(): void
};

/** Answers a request with its run: streamed when asked and the API streams, else one JSON body. */
export async function answer(run: Run, reply: FastifyReply, encoder: Encoder, {stream}: {stream: boolean}): Promise<unknown> {
    if (stream && encoder.stream != null)
        return streamRun(run, reply, encoder.stream);
    if (encoder.body == null)
        throw new Error("This API only streams");
    return encoder.body(await collectRun(run));
}

/** Runs every generation to its end and returns their replies. */
export async function collectRun(run: Run): Promise<FinishedReply[]> {
    try {
        // The run folds each event into its reply; nothing else is done with them.
        for await (const event of run.events())
            void event;
    } finally {
        run.release();
    }
    const replies = run.replies.filter(isFinished);
    if (replies.length !== run.replies.length)
        throw new Error("A generation ended without a result");
    return replies;
}

/**
 * The one writer of streams: runs the generations and sends each chunk the encoder makes of their events as it
 * comes. An error after the stream began is sent in the API's shape and ends the stream; a client that went away
 * just ends it, and the run is released either way.
 */
export async function streamRun(run: Run, reply: FastifyReply, encoder: StreamEncoder): Promise<FastifyReply> {
    const stream = new EventStream(reply, encoder.format);
    const abandon = () => {
        encoder.abandoned?.();
        reply.raw.destroy();
        return reply;
    };
    try {
        // The start goes out at once, headers with it, so a client sees the request taken during a long prompt.
        await stream.sendAll(encoder.start?.() ?? []);
        for await (const {index, event} of run.events()) {
            // An event's chunks are one write: they are ready together, and each write is a frame of its own.
            await stream.sendAll(encoder.event(index, event, run.replies[index]!));
            if (stream.closed)
                break;
        }
        const replies = run.replies.filter(isFinished);
        if (stream.closed || replies.length !== run.replies.length)
            return abandon();
        // The last chunks, the format's trailer and the end of the reply in one write.
        stream.end(encoder.end(replies));
    } catch (error) {
        if (error instanceof RequestAbortedError || stream.closed)
            return abandon();
        const errorReply = toErrorReply(error);
        if (errorReply.statusCode >= 500)
            reply.log.error({err: error}, "stream failed");
        // The status line said 200: the request's log line and audit entry say how it really ended.
        reply.request.record.error = failureOf(error, errorReply);
        stream.end(encoder.error(errorReply));
    } finally {
        run.release();
    }
    return reply;
}
