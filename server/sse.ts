import type {ServerResponse} from "node:http";
import type {FastifyReply} from "fastify";

/** How a stream's chunks are written on the wire: its content type, each chunk's frame, and what ends it. */
export type WireFormat = {contentType: string, frame(chunk: unknown): string, trailer?: string};

/** Server-sent events as OpenAI streams them: `data: {json}` per chunk, ending in `data: [DONE]`. */
export const OPENAI_SSE: WireFormat = {
    contentType: "text/event-stream; charset=utf-8",
    frame: (chunk) => `data: ${JSON.stringify(chunk)}\n\n`,
    trailer: "data: [DONE]\n\n"
};

/**
 * Server-sent events named by their chunk's `type`, as Anthropic streams them: `event: <type>` then `data: {json}`,
 * with no end marker.
 */
export const NAMED_SSE: WireFormat = {
    contentType: "text/event-stream; charset=utf-8",
    frame: (chunk) => `event: ${(chunk as {type: string}).type}\ndata: ${JSON.stringify(chunk)}\n\n`
};

/** One JSON object per line, as Ollama (and the conversations API) stream. */
export const NDJSON: WireFormat = {contentType: "application/x-ndjson", frame: (chunk) => `${JSON.stringify(chunk)}\n`};

/**
 * A stream of chunks on a hijacked reply, framed by its {@link WireFormat}. Writes wait for the socket to
 * drain, so a slow client slows only its own stream.
 */
export class EventStream {
    readonly #reply: FastifyReply;
    readonly #format: WireFormat;

    constructor(reply: FastifyReply, format: WireFormat, headers: Record<string, string> = {}) {
        this.#reply = reply;
        this.#format = format;
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

    async send(chunk: unknown): Promise<void> {
        if (this.closed)
            return;
        await writeDrained(this.#reply.raw, this.#format.frame(chunk));
    }

    /**
     * Sends chunks that are ready together in one write: each write of a chunked reply is framed and goes through
     * the socket's buffering on its own, and an event makes several chunks at once (a delta and its usage, the
     * first token after the role's delta). None waits for another: they are all ready now.
     */
    async sendAll(chunks: readonly unknown[]): Promise<void> {
        if (this.closed || chunks.length === 0)
            return;
        await writeDrained(this.#reply.raw, this.#frames(chunks));
    }

    /** Ends the stream, the last chunks and the format's trailer in the same write as the end of the reply. */
    end(chunks: readonly unknown[] = []): void {
        if (!this.closed)
            this.#reply.raw.end(this.#frames(chunks) + (this.#format.trailer ?? ""));
    }

    #frames(chunks: readonly unknown[]): string {
        let text = "";
        for (const chunk of chunks)
            text += this.#format.frame(chunk);
        return text;
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
    if (!raw.write(chunk))
        await drained(raw);
}

/** Resolves when a response whose buffer is full drains, or closes. */
export function drained(raw: ServerResponse): Promise<void> {
    return new Promise<void>((resolve) => {
        const done = () => {
            raw.off("drain", done);
            raw.off("close", done);
            resolve();
        };
        raw.on("drain", done);
        raw.on("close", done);
    });
}
