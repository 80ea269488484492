import type {ServerResponse} from "node:http";
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
        await writeDrained(this.#reply.raw, `data: ${JSON.stringify(data)}\n\n`);
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

/** Writes to a response and, when its buffer is full, waits until it drains or closes. */
export async function writeDrained(raw: ServerResponse, chunk: string): Promise<void> {
    if (raw.write(chunk))
        return;
    await new Promise<void>((resolve) => {
        const done = () => {
            raw.off("drain", done);
            raw.off("close", done);
            resolve();
        };
        raw.on("drain", done);
        raw.on("close", done);
    });
}
