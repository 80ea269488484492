import http from "node:http";
import type {ClientRequest, IncomingHttpHeaders, IncomingMessage} from "node:http";
import https from "node:https";
import {RequestAbortedError} from "../../native/errors.js";
import type {ContextOverflowError} from "../../native/errors.js";
import {
    UpstreamError, UpstreamInvalidReplyError, UpstreamKeyRefusedError, UpstreamRefusedError, UpstreamServerError, UpstreamStreamBrokenError, UpstreamTimeoutError,
    UpstreamUnreachableError, upstreamContextOverflow
} from "./errors.js";
import type {Upstream} from "./Upstream.js";
import type {UpstreamMetrics} from "./UpstreamMetrics.js";

/** A request to send to whichever upstream serves `model`. */
export type ForwardRequest = {
    /** The model as the upstreams name it: it replaces the body's `model`. */
    model: string,
    /** The API path, such as `/v1/chat/completions`; it follows the upstream's base URL. */
    path: string,
    /** The request body (OpenAI's shape); `stream: true` asks for server-sent events. */
    body: Record<string, unknown>,
    /** Aborting it (the client went away) cancels the request upstream. */
    signal: AbortSignal,
    /** Sent on as `x-request-id`, so the upstream's logs name the same request. */
    requestId?: string,
    /** How many Hearth servers forwarded the request before this one (a loop guard). */
    hops?: number
};

export type CallContext = {
    agents: {http: http.Agent, https: https.Agent},
    /** Reply headers, and each chunk of a reply, must come within this; `0` is no limit. */
    timeoutMs: number,
    metrics: UpstreamMetrics,
    /** A failure that says the upstream is unwell (never a client's abort). */
    onFailure(upstream: Upstream, error: UpstreamError): void
};

/** The largest reply body read whole (replies that are not streams), in bytes. */
const MAX_BODY_BYTES = 256 * 1024 * 1024;

/** What a reader of the reply does after a chunk: read on, stop there (the reply waits, paused), or wait for a promise. */
type Taken = "more" | "stop" | Promise<unknown>;

/** What a reader of the reply threw, told apart from the reply's own failures (which say the upstream is unwell). */
class ReaderError {
    readonly cause: unknown;

    constructor(cause: unknown) {
        this.cause = cause;
    }
}

/**
 * One request to one upstream, from sending it to the end of its reply: it owns the connection, the timeouts,
 * the cancellation and the upstream's in-flight count, and frees them in one place, {@link release}. {@link begin}
 * resolves once the reply is worth sending on: a stream's first chunk, or the whole body of any other reply.
 */
export class UpstreamCall {
    readonly upstream: Upstream;
    statusCode = 0;
    headers: IncomingHttpHeaders = {};
    /** A stream of server-sent events: {@link first} then {@link rest} (or {@link pipe}). Otherwise {@link body} is the whole reply. */
    streaming = false;
    first: Buffer | undefined;
    body: Buffer | undefined;
    /** The body parsed, when it is JSON. */
    json: unknown;
    readonly #request: ForwardRequest;
    readonly #context: CallContext;
    readonly #startedMs = performance.now();
    readonly #onAbort: () => void;
    #clientRequest: ClientRequest | undefined;
    #response: IncomingMessage | undefined;
    /** The reply's silence timer: one for the call, restarted (`refresh()`) by each chunk and each wait for one. */
    #idle: NodeJS.Timeout | undefined;
    /** Whether the call waits for the upstream now (and not for its reader): only then is a silence a timeout. */
    #waiting = false;
    #complete = false;
    #released = false;

    constructor(upstream: Upstream, request: ForwardRequest, context: CallContext) {
        this.upstream = upstream;
        this.#request = request;
        this.#context = context;
        upstream.inFlight += 1;
        this.#onAbort = () => this.#destroy(new RequestAbortedError());
        request.signal.addEventListener("abort", this.#onAbort, {once: true});
    }

    /** Sends the request and reads the reply up to the point where it can be sent on; throws what failed. */
    async begin(): Promise<void> {
        const payload = Buffer.from(JSON.stringify({...this.#request.body, model: this.#request.model}));
        try {
            for (let attempt = 0; ; attempt++) {
                try {
                    this.#response = await this.#send(payload);
                    break;
                } catch (error) {
                    // A kept-alive connection the upstream had just closed: the request never reached it, so it is sent again.
                    if (attempt === 0 && this.#clientRequest?.reusedSocket === true && (error as NodeJS.ErrnoException).code === "ECONNRESET" && !this.#request.signal.aborted)
                        continue;
                    throw error;
                }
            }
            await this.#readReply(this.#response);
        } catch (error) {
            throw this.#failure(error instanceof ReaderError ? error.cause : error, false);
        }
    }

    async #readReply(response: IncomingMessage): Promise<void> {
        const name = this.upstream.name;
        this.statusCode = response.statusCode ?? 0;
        this.headers = response.headers;
        const {timeoutMs} = this.#context;
        if (timeoutMs > 0) {
            this.#idle = setTimeout(() => {
                if (this.#waiting)
                    response.destroy(new UpstreamTimeoutError(name, timeoutMs));
            }, timeoutMs);
        }
        const contentType = String(response.headers["content-type"] ?? "");
        const wantsStream = this.#request.body.stream === true;
        if (this.statusCode >= 200 && this.statusCode < 300 && wantsStream && /^text\/event-stream/i.test(contentType)) {
            this.streaming = true;
            this.first = await this.#nextChunk();
            if (this.first == null)
                throw new UpstreamInvalidReplyError(name, "its stream ended before the first event");
            this.#context.metrics.firstByte(this.upstream, performance.now() - this.#startedMs);
            return;
        }
        const parts: Buffer[] = [];
        let size = 0;
        await this.#flow((chunk) => {
            if (parts.length === 0)
                this.#context.metrics.firstByte(this.upstream, performance.now() - this.#startedMs);
            size += chunk.length;
            if (size > MAX_BODY_BYTES)
                throw new UpstreamInvalidReplyError(name, `a body over ${MAX_BODY_BYTES / 1024 / 1024} MiB`);
            parts.push(chunk);
            return "more";
        });
        this.body = Buffer.concat(parts);
        try {
            this.json = JSON.parse(this.body.toString("utf8"));
        } catch {
            this.json = undefined;
        }
        if (this.statusCode >= 500)
            throw new UpstreamServerError(name, this.statusCode, this.json, response.headers["retry-after"]);
        if (this.statusCode === 401 || this.statusCode === 403)
            throw new UpstreamKeyRefusedError(name, this.statusCode);
        if (this.statusCode >= 400 && this.statusCode < 500)
            return;
        if (this.statusCode < 200 || this.statusCode >= 300)
            throw new UpstreamInvalidReplyError(name, `HTTP ${this.statusCode}`);
        if (this.json == null || typeof this.json !== "object")
            throw new UpstreamInvalidReplyError(name, this.body.length === 0 ? "an empty body" : `a body that is not JSON (${contentType || "no content type"})`);
        if (wantsStream)
            throw new UpstreamInvalidReplyError(name, "JSON where server-sent events were asked for");
    }

    /**
     * The upstream's 4xx to a request Hearth translated for it, as the client's error: its status and its message,
     * or Hearth's own refusal of a prompt too long for the context when it says so (each API words that one).
     */
    refusal(): UpstreamRefusedError | ContextOverflowError {
        return (this.statusCode === 400 ? upstreamContextOverflow(this.upstream.name, this.json) : undefined)
            ?? new UpstreamRefusedError(this.upstream.name, this.statusCode, this.json, this.body?.toString("utf8") ?? "");
    }

    /** The chunks of a stream after {@link first}, as they come; throws when the stream breaks or goes silent. */
    async* rest(): AsyncGenerator<Buffer> {
        try {
            for (let chunk = await this.#nextChunk(); chunk != null; chunk = await this.#nextChunk())
                yield chunk;
        } catch (error) {
            throw this.#failure(error, true);
        }
    }

    /**
     * Hands the chunks of a stream after {@link first} to `write` as they come, as {@link rest} yields them but with
     * no promise or timer per chunk: the way to relay a long stream. When `write` returns a promise (its own
     * destination is full), the reply is paused until that settles, so the upstream is read no faster than the
     * client takes it. Resolves at the stream's end; rejects as {@link rest} throws, or with what `write` threw.
     */
    async pipe(write: (chunk: Buffer) => Promise<unknown> | undefined): Promise<void> {
        try {
            await this.#flow((chunk) => write(chunk) ?? "more");
        } catch (error) {
            throw error instanceof ReaderError ? error.cause : this.#failure(error, true);
        }
    }

    /** Ends the call: cancels the request upstream if its reply is not complete, and frees its in-flight count. Idempotent. */
    release(): void {
        if (this.#released)
            return;
        this.#released = true;
        this.#request.signal.removeEventListener("abort", this.#onAbort);
        clearTimeout(this.#idle);
        if (!this.#complete)
            this.#destroy(new RequestAbortedError());
        this.upstream.inFlight -= 1;
        this.#context.metrics.answered(this.upstream, this.statusCode > 0 ? this.statusCode : "error", performance.now() - this.#startedMs);
    }

    #send(payload: Buffer): Promise<IncomingMessage> {
        const url = new URL(`${this.upstream.url}${this.#request.path}`);
        const headers: Record<string, string> = {
            "content-type": "application/json",
            "content-length": String(payload.length),
            "accept": this.#request.body.stream === true ? "text/event-stream" : "application/json",
            "x-hearth-hops": String((this.#request.hops ?? 0) + 1)
        };
        if (this.#request.requestId != null)
            headers["x-request-id"] = this.#request.requestId;
        if (this.upstream.key != null)
            headers.authorization = `Bearer ${this.upstream.key}`;
        const secure = url.protocol === "https:";
        return new Promise((resolve, reject) => {
            const request = (secure ? https : http).request(url, {method: "POST", headers, agent: secure ? this.#context.agents.https : this.#context.agents.http});
            this.#clientRequest = request;
            const timer = this.#context.timeoutMs > 0
                ? setTimeout(() => request.destroy(new UpstreamTimeoutError(this.upstream.name, this.#context.timeoutMs)), this.#context.timeoutMs)
                : undefined;
            request.once("response", (response) => {
                clearTimeout(timer);
                resolve(response);
            });
            // Kept for the request's whole life: an error after the reply began (a cancel) must find a listener too.
            request.on("error", (error) => {
                clearTimeout(timer);
                reject(error);
            });
            request.setNoDelay(true);
            if (this.#request.signal.aborted)
                request.destroy(new RequestAbortedError());
            else
                request.end(payload);
        });
    }

    /** The next chunk of the reply, or undefined at its end. */
    async #nextChunk(): Promise<Buffer | undefined> {
        let taken: Buffer | undefined;
        await this.#flow((chunk) => {
            taken = chunk;
            return "stop";
        });
        return taken;
    }

    /**
     * Reads the reply by its `data` events, each chunk to `take`, until it ends or `take` says stop (the reply is
     * paused there, its next chunks kept for the next read). Rejects when the reply breaks or goes silent for longer
     * than the timeout while the call waits for it, or with a {@link ReaderError} when `take` fails.
     */
    #flow(take: (chunk: Buffer) => Taken): Promise<void> {
        const response = this.#response!;
        // The reply may have ended while nobody listened: reading its last chunk schedules 'end' even when paused.
        if (response.readableEnded && !this.#complete) {
            this.#complete = true;
            clearTimeout(this.#idle);
        }
        if (this.#complete)
            return Promise.resolve();
        if (response.destroyed)
            return Promise.reject(response.errored ?? new Error("the connection closed"));
        return new Promise((resolve, reject) => {
            let settled = false;
            const settle = (error?: unknown) => {
                if (settled)
                    return;
                settled = true;
                this.#waiting = false;
                response.off("data", onData);
                response.off("end", onEnd);
                response.off("error", onError);
                response.off("close", onClose);
                if (error === undefined)
                    resolve();
                else
                    reject(error);
            };
            const wait = () => {
                this.#waiting = true;
                this.#idle?.refresh();
            };
            const onData = (chunk: Buffer) => {
                this.#idle?.refresh();
                let next: Taken;
                try {
                    next = take(chunk);
                } catch (error) {
                    response.pause();
                    settle(new ReaderError(error));
                    return;
                }
                if (next === "stop") {
                    response.pause();
                    settle();
                } else if (next !== "more") {
                    response.pause();
                    this.#waiting = false;
                    next.then(() => {
                        if (settled)
                            return;
                        wait();
                        response.resume();
                    }, (error: unknown) => settle(new ReaderError(error)));
                }
            };
            const onEnd = () => {
                this.#complete = true;
                clearTimeout(this.#idle);
                settle();
            };
            const onError = (error: Error) => settle(error);
            // A reply destroyed without an error (IncomingMessage emits one only to a listener) ends here.
            const onClose = () => settle(response.errored ?? new Error("the connection closed"));
            response.on("data", onData);
            response.on("end", onEnd);
            response.on("error", onError);
            response.on("close", onClose);
            wait();
            response.resume();
        });
    }

    #destroy(error: Error): void {
        this.#clientRequest?.destroy(error);
        this.#response?.destroy(error);
    }

    /** What a failure is, as an {@link UpstreamError} (a client's abort stays what it is); reports the upstream unwell. */
    #failure(error: unknown, started: boolean): Error {
        if (error instanceof RequestAbortedError || this.#request.signal.aborted)
            return new RequestAbortedError();
        const name = this.upstream.name;
        const code = (error as NodeJS.ErrnoException).code;
        const failure = error instanceof UpstreamError ? error
            : started ? new UpstreamStreamBrokenError(name, (error as Error).message)
            : typeof code === "string" && code.startsWith("HPE_") ? new UpstreamInvalidReplyError(name, `not HTTP (${(error as Error).message})`)
            : this.#response != null ? new UpstreamStreamBrokenError(name, (error as Error).message)
            : new UpstreamUnreachableError(name, code ?? (error as Error).message);
        this.#context.metrics.failed(this.upstream, failure.reason);
        this.#context.onFailure(this.upstream, failure);
        return failure;
    }
}
