import type {ServerResponse} from "node:http";
import type {FastifyReply} from "fastify";

/**
 * A stream of JSON events on a hijacked reply, one `frame` per event: SSE for `/v1`, NDJSON for `/api`.
 * Writes wait for the socket to drain, so a slow client slows only its own stream.
 */
export class EventStream {
    readonly #reply: FastifyReply;
    readonly #frame: (json: string) => string;
    readonly #trailer: string;

    constructor(reply: FastifyReply, format: {contentType: string, frame(json: string): string, trailer?: string}, headers: Record<string, string> = {}) {
        this.#reply = reply;
        this.#frame = format.frame;
        this.#trailer = format.trailer ?? "";
        reply.hijack();
        reply.raw.writeHead(200, {
            // Headers set before the stream began (CORS, the request id) go out with it.
            ...reply.getHeaders() as Record<string, string>,
            "content-type": format.contentType,
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
        await writeDrained(this.#reply.raw, this.#frame(JSON.stringify(data)));
    }

    end(): void {
        if (!this.closed)
            this.#reply.raw.end(this.#trailer);
    }
}

/** Server-sent events, `data: {json}` per event, ending in `data: [DONE]`, as OpenAI streams. */
export class SseStream extends EventStream {
    constructor(reply: FastifyReply, headers: Record<string, string> = {}) {
        super(reply, {contentType: "text/event-stream; charset=utf-8", frame: (json) => `data: ${json}\n\n`, trailer: "data: [DONE]\n\n"}, headers);
    }
}

/** One JSON object per line, as Ollama streams. */
export class NdjsonStream extends EventStream {
    constructor(reply: FastifyReply) {
        super(reply, {contentType: "application/x-ndjson", frame: (json) => `${json}\n`});
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
export async function writeDrained(raw: ServerResponse, chunk: string | Uint8Array): Promise<void> {
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
