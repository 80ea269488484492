import http from "node:http";
import type {ClientRequest, IncomingHttpHeaders, IncomingMessage} from "node:http";
import https from "node:https";
import {RequestAbortedError} from "../../native/errors.js";
import {
    UpstreamError, UpstreamInvalidReplyError, UpstreamKeyRefusedError, UpstreamServerError, UpstreamStreamBrokenError, UpstreamTimeoutError, UpstreamUnreachableError
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

/**
 * One request to one upstream, from sending it to the end of its reply: it owns the connection, the timeouts,
 * the cancellation and the upstream's in-flight count, and frees them in one place, {@link release}. {@link begin}
 * resolves once the reply is worth sending on: a stream's first chunk, or the whole body of any other reply.
 */
export class UpstreamCall {
    readonly upstream: Upstream;
    statusCode = 0;
    headers: IncomingHttpHeaders = {};
    /** A stream of server-sent events: {@link first} then {@link rest}. Otherwise {@link body} is the whole reply. */
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
    #chunks: AsyncIterator<Buffer> | undefined;
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
            throw this.#failure(error, false);
        }
    }

    async #readReply(response: IncomingMessage): Promise<void> {
        const name = this.upstream.name;
        this.statusCode = response.statusCode ?? 0;
        this.headers = response.headers;
        this.#chunks = response[Symbol.asyncIterator]();
        const contentType = String(response.headers["content-type"] ?? "");
        const wantsStream = this.#request.body.stream === true;
        if (this.statusCode >= 200 && this.statusCode < 300 && wantsStream && /^text\/event-stream/i.test(contentType)) {
            this.streaming = true;
            this.first = await this.#next();
            if (this.first == null)
                throw new UpstreamInvalidReplyError(name, "its stream ended before the first event");
            this.#context.metrics.firstByte(this.upstream, performance.now() - this.#startedMs);
            return;
        }
        const parts: Buffer[] = [];
        let size = 0;
        for (let chunk = await this.#next(); chunk != null; chunk = await this.#next()) {
            if (parts.length === 0)
                this.#context.metrics.firstByte(this.upstream, performance.now() - this.#startedMs);
            size += chunk.length;
            if (size > MAX_BODY_BYTES)
                throw new UpstreamInvalidReplyError(name, `a body over ${MAX_BODY_BYTES / 1024 / 1024} MiB`);
            parts.push(chunk);
        }
        this.#complete = true;
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

    /** The chunks of a stream after {@link first}, as they come; throws when the stream breaks or goes silent. */
    async* rest(): AsyncGenerator<Buffer> {
        try {
            for (let chunk = await this.#next(); chunk != null; chunk = await this.#next())
                yield chunk;
            this.#complete = true;
        } catch (error) {
            throw this.#failure(error, true);
        }
    }

    /** Ends the call: cancels the request upstream if its reply is not complete, and frees its in-flight count. Idempotent. */
    release(): void {
        if (this.#released)
            return;
        this.#released = true;
        this.#request.signal.removeEventListener("abort", this.#onAbort);
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

    /** The next chunk of the reply, or undefined at its end; a silence longer than the timeout breaks it. */
    async #next(): Promise<Buffer | undefined> {
        const response = this.#response!;
        const {timeoutMs} = this.#context;
        const timer = timeoutMs > 0 ? setTimeout(() => response.destroy(new UpstreamTimeoutError(this.upstream.name, timeoutMs)), timeoutMs) : undefined;
        try {
            const result = await this.#chunks!.next();
            return result.done === true ? undefined : result.value;
        } finally {
            clearTimeout(timer);
        }
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
