import type {FastifyInstance, FastifyReply, FastifyRequest} from "fastify";
import {HearthError} from "../../native/errors.js";
import {toErrorReply} from "../errors.js";
import {writeDrained} from "../sse.js";

/**
 * What every `/api` route plugin shares with Ollama: errors as `{"error": "message"}`, and bodies read as
 * JSON whatever their content type (Ollama's documented `curl -d` examples send a form type).
 */
export function useOllamaConventions(app: FastifyInstance): void {
    app.setErrorHandler(ollamaErrorHandler);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser("*", {parseAs: "string"}, app.getDefaultJsonParser("error", "error"));
}

/** Ollama's error body is `{"error": "message"}`; the status and `Retry-After` are the same as for `/v1`. */
export function ollamaErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply): void {
    const {statusCode, body, retryAfterSeconds} = toErrorReply(error);
    if (statusCode >= 500 && !(error instanceof HearthError))
        request.log.error({err: error}, "request failed");
    if (retryAfterSeconds != null)
        reply.header("retry-after", String(retryAfterSeconds));
    void reply.status(statusCode).send({error: body.error.message});
}

/**
 * An NDJSON stream on a hijacked reply, as Ollama streams: one JSON object per line.
 * Writes wait for the socket to drain, so a slow client slows only its own stream.
 */
export class NdjsonStream {
    readonly #reply: FastifyReply;

    constructor(reply: FastifyReply) {
        this.#reply = reply;
        reply.hijack();
        reply.raw.writeHead(200, {"content-type": "application/x-ndjson", "cache-control": "no-cache", "x-accel-buffering": "no"});
        reply.raw.socket?.setNoDelay(true);
    }

    get closed(): boolean {
        return this.#reply.raw.destroyed || this.#reply.raw.writableEnded;
    }

    async send(data: unknown): Promise<void> {
        if (this.closed)
            return;
        await writeDrained(this.#reply.raw, `${JSON.stringify(data)}\n`);
    }

    end(): void {
        if (!this.closed)
            this.#reply.raw.end();
    }
}
