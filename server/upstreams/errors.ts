import {ContextOverflowError} from "../../native/errors.js";
import {ApiError} from "../errors.js";

/**
 * Why forwarding to an upstream failed. `retryable` failures happened before any byte reached the client, and the
 * request may be sent to another upstream; each also counts against the upstream's health.
 */
export class UpstreamError extends ApiError {
    override readonly name: string = "UpstreamError";
    /** The kind of failure, a label of `hearth_upstream_errors_total`. */
    readonly reason: "unreachable" | "timeout" | "invalid_reply" | "server_error" | "stream_broken" | "key_refused";

    constructor(statusCode: number, message: string, reason: UpstreamError["reason"]) {
        super(statusCode, message, {code: `upstream_${reason}`});
        this.reason = reason;
    }
}

/** The connection failed or broke before the reply's headers (refused, reset, a DNS failure). */
export class UpstreamUnreachableError extends UpstreamError {
    constructor(upstream: string, detail: string) {
        super(502, `The upstream ${upstream} could not be reached: ${detail}`, "unreachable");
    }
}

/** No reply headers, or no bytes of a reply, within the upstream timeout. */
export class UpstreamTimeoutError extends UpstreamError {
    constructor(upstream: string, timeoutMs: number) {
        super(504, `The upstream ${upstream} sent nothing for ${Math.round(timeoutMs / 100) / 10} s`, "timeout");
    }
}

/** A reply that is not HTTP, or a body that is not what the request asked for (JSON, or server-sent events). */
export class UpstreamInvalidReplyError extends UpstreamError {
    constructor(upstream: string, detail: string) {
        super(502, `The upstream ${upstream} answered with something that is not a valid reply: ${detail}`, "invalid_reply");
    }
}

/** A 5xx reply. `body` is the upstream's own, sent on to the client when it is an error in OpenAI's shape. */
export class UpstreamServerError extends UpstreamError {
    readonly upstreamStatus: number;
    readonly body: unknown;
    readonly retryAfter: string | undefined;

    constructor(upstream: string, upstreamStatus: number, body: unknown, retryAfter: string | undefined) {
        const message = (body as {error?: {message?: unknown}} | undefined)?.error?.message;
        super(upstreamStatus === 503 || upstreamStatus === 504 ? upstreamStatus : 502,
            `The upstream ${upstream} failed with HTTP ${upstreamStatus}${typeof message === "string" ? `: ${message.slice(0, 500)}` : ""}`, "server_error");
        this.upstreamStatus = upstreamStatus;
        this.body = body;
        this.retryAfter = retryAfter;
    }
}

/** A 401 or 403: the upstream refused Hearth's own key for it (not the client's, which never leaves Hearth). */
export class UpstreamKeyRefusedError extends UpstreamError {
    constructor(upstream: string, upstreamStatus: number) {
        super(502, `The upstream ${upstream} refused Hearth's key for it (HTTP ${upstreamStatus}): give the key it needs after # in --upstream, or as "key" in /api/upstreams.`, "key_refused");
    }
}

/** The reply broke after it began: the connection closed early, or went silent. */
export class UpstreamStreamBrokenError extends UpstreamError {
    constructor(upstream: string, detail: string) {
        super(502, `The upstream ${upstream} stopped in the middle of its reply: ${detail}`, "stream_broken");
    }
}

/**
 * A 4xx an upstream answered to a request Hearth translated for it (a bad request, a model it no longer has, its
 * rate limit): the client's to see, with the upstream's status and its own message, in the client's API's shape.
 */
export class UpstreamRefusedError extends ApiError {
    override readonly name: string = "UpstreamRefusedError";

    /** `body`: the reply parsed, when it is JSON; `text`: the reply as it came. */
    constructor(upstream: string, statusCode: number, body: unknown, text: string) {
        const error = (body as {error?: {message?: unknown, code?: unknown, param?: unknown} | string} | undefined)?.error;
        const message = typeof error === "string" ? error
            : typeof error?.message === "string" ? error.message
            : text.slice(0, 500) || "no reason given";
        super(statusCode, `The upstream ${upstream} refused the request (HTTP ${statusCode}): ${message}`, {
            code: typeof error === "object" && typeof error.code === "string" ? error.code : "upstream_refused",
            param: typeof error === "object" && typeof error.param === "string" ? error.param : null
        });
    }
}

/** Every upstream that serves the model is out (failed recently, or not yet checked). */
export class NoUpstreamAvailableError extends ApiError {
    override readonly name: string = "NoUpstreamAvailableError";
    readonly retryAfterSeconds: number;

    constructor(model: string, retryAfterSeconds: number) {
        super(503, `Every upstream that serves "${model}" is down; retry in ${retryAfterSeconds} s.`, {code: "upstream_unavailable"});
        this.retryAfterSeconds = retryAfterSeconds;
    }
}

/**
 * An upstream's refusal of a prompt longer than its context, as Hearth's own (which each API words so that agents
 * compact their history): llama-server's `exceed_context_size_error` with its numbers, or OpenAI's and vLLM's
 * "maximum context length" message. Undefined for any other refusal, or when the numbers cannot be read.
 */
export function upstreamContextOverflow(upstream: string, body: unknown): ContextOverflowError | undefined {
    const error = (body as {error?: unknown} | undefined)?.error;
    if (typeof error !== "object" || error == null)
        return undefined;
    const {type, message, param, n_prompt_tokens: promptTokens, n_ctx: contextTokens} = error as Record<string, unknown>;
    const blamed = typeof param === "string" ? param : "messages";
    if (type === "exceed_context_size_error" && typeof promptTokens === "number" && typeof contextTokens === "number")
        return new ContextOverflowError(promptTokens, contextTokens, blamed, {upstream});
    const words = typeof message === "string"
        ? /maximum context length is (\d+) tokens\. However, (?:your (?:messages|prompt|input) resulted in|your request has) (\d+) (?:input )?tokens/.exec(message)
        : null;
    return words != null ? new ContextOverflowError(Number(words[2]), Number(words[1]), blamed, {upstream}) : undefined;
}
