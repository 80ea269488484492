import type {FastifyReply} from "fastify";

/**
 * A server-sent events stream on a hijacked reply: `data: {json}` lines, ending in `data: [DONE]`.
 * Writes wait for the socket to drain, so a slow client slows only its own stream.
 */
export class SseStream {
    readonly #reply: FastifyReply;

    constructor(reply: FastifyReply, headers: Record<string, string> = {}) {
        this.#reply = reply;
        reply.hijack();
        reply.raw.writeHead(200, {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "connection": "keep-alive",
            "x-accel-buffering": "no",
            ...headers
        });
        reply.raw.socket?.setNoDelay(true);
    }

    get closed(): boolean {
        return this.#reply.raw.destroyed || this.#reply.raw.writableEnded;
    }

    async send(data: unknown): Promise<void> {
        if (this.closed)
            return;
        if (!this.#reply.raw.write(`data: ${JSON.stringify(data)}\n\n`))
            await new Promise<void>((resolve) => {
                const done = () => {
                    this.#reply.raw.off("drain", done);
                    this.#reply.raw.off("close", done);
                    resolve();
                };
                this.#reply.raw.on("drain", done);
                this.#reply.raw.on("close", done);
            });
    }

    end(): void {
        if (this.closed)
            return;
        this.#reply.raw.end("data: [DONE]\n\n");
    }
}

/** An AbortSignal that fires when the client goes away before the reply is complete. */
export function clientAbortSignal(reply: FastifyReply): AbortSignal {
    const controller = new AbortController();
    reply.raw.on("close", () => {
        if (!reply.raw.writableFinished)
            controller.abort();
    });
    return controller.signal;
}
