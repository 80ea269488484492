import {HearthError} from "../models/HearthError.js";

/**
 * The engine's errors: each says what went wrong, with a stable `code`. None carries an HTTP status or an API's
 * error type; `server/errors.ts` maps each class to those.
 */

export {HearthError};

export class InvalidRequestError extends HearthError {
    override readonly name = "InvalidRequestError";

    constructor(message: string, param: string | null = null, code = "invalid_value") {
        super(message, {param, code});
    }
}

export class ModelNotFoundError extends HearthError {
    override readonly name = "ModelNotFoundError";

    constructor(model: string, available: readonly string[]) {
        super(
            `The model "${model}" does not exist. ` +
            (available.length === 0 ? "No models are available: pull one (hearth pull hf.co/{owner}/{repo}:{QUANT}) or start the server with --model FILE.gguf" : `Available models: ${available.join(", ")}`),
            {param: "model", code: "model_not_found"}
        );
    }
}

export class ModelNotReadyError extends HearthError {
    override readonly name = "ModelNotReadyError";
    readonly retryAfterSeconds: number;

    constructor(message: string, retryAfterSeconds = 1) {
        super(message, {code: "model_not_ready"});
        this.retryAfterSeconds = retryAfterSeconds;
    }
}

/**
 * A load asked for settings other than those of a model that is in use (or still loading): it is reloaded only
 * when idle, so the load is refused rather than answered with the old settings. The message names what differs.
 */
export class ModelInUseError extends HearthError {
    override readonly name = "ModelInUseError";
    readonly retryAfterSeconds: number;

    constructor(message: string, param: string | null, retryAfterSeconds = 5) {
        super(message, {param, code: "model_in_use"});
        this.retryAfterSeconds = retryAfterSeconds;
    }
}

/**
 * A prompt that does not fit a slot. It carries the numbers, so that each API can word the refusal the way its
 * clients recognize (and act on, by shortening their history).
 */
export class ContextOverflowError extends HearthError {
    override readonly name = "ContextOverflowError";
    readonly promptTokens: number;
    /** The slot's context (or the embedding context), in tokens. */
    readonly contextTokens: number;
    /** The longest prompt that fits: a generation needs one token of the context left to generate into. */
    readonly maxPromptTokens: number;
    /** The model it was asked of, when it was a generation. */
    readonly model: string | undefined;

    /** `upstream`: the server whose model refused it, when it was not this one's. */
    constructor(promptTokens: number, contextTokens: number, param = "messages", {model, generates = true, upstream}: {model?: string, generates?: boolean, upstream?: string} = {}) {
        super(
            upstream != null
                ? `This prompt is ${promptTokens} tokens long, but the context of the upstream ${upstream}'s model is ${contextTokens} tokens. Shorten the prompt.`
                : `This prompt is ${promptTokens} tokens long, but the model's context is ${contextTokens} tokens per slot ` +
                    (generates ? "(and at least one token must be left to generate). " : "") + "Shorten the prompt, or start the server with a larger --ctx-size.",
            {param, code: "context_length_exceeded"}
        );
        this.promptTokens = promptTokens;
        this.contextTokens = contextTokens;
        this.maxPromptTokens = generates ? contextTokens - 1 : contextTokens;
        this.model = model;
    }
}

export class QueueFullError extends HearthError {
    override readonly name = "QueueFullError";
    readonly retryAfterSeconds: number;

    constructor(queued: number, retryAfterSeconds = 1) {
        super(
            `The server is busy: all slots are generating and ${queued} requests are already waiting. Retry shortly.`,
            {code: "queue_full"}
        );
        this.retryAfterSeconds = retryAfterSeconds;
    }
}

/** Thrown into a waiting or running request whose client went away. */
export class RequestAbortedError extends Error {
    override readonly name = "RequestAbortedError";

    constructor() {
        super("The request was aborted");
    }
}

export class BackendUnavailableError extends HearthError {
    override readonly name = "BackendUnavailableError";

    constructor(backend: string, reason: string, advice = "Use --gpu auto to pick the best available one, or --gpu cpu.") {
        super(`The ${backend} backend is not available on this machine: ${reason}. ${advice}`,
            {code: "backend_unavailable"});
    }
}

/** A model that cannot fit in this machine's free memory with the settings asked for; loading it is refused. */
export class ModelTooLargeError extends HearthError {
    override readonly name = "ModelTooLargeError";

    constructor(model: string, detail: string) {
        super(`"${model}" does not fit in memory. ${detail}`, {code: "model_too_large"});
    }
}

/** A model that cannot use the server's `--kv-cache-type` (llama.cpp would refuse to create its context). */
export class UnsupportedKvCacheError extends HearthError {
    override readonly name = "UnsupportedKvCacheError";

    constructor(model: string, kvCacheType: string, reason: string) {
        super(`"${model}" cannot load with the ${kvCacheType} KV cache: ${reason}. Start the server with --kv-cache-type f16 (the default).`,
            {code: "unsupported_kv_cache_type"});
    }
}

/**
 * The reason a request's deadline fired: the server's `--request-timeout`, or a shutdown. A generation
 * running then ends early as if its token budget ran out; one still waiting for a slot gets this error.
 */
export class DeadlineError extends HearthError {
    override readonly name = "DeadlineError";
    readonly retryAfterSeconds: number;

    constructor(reason: "timeout" | "shutdown", timeoutMs = 0) {
        super(reason === "timeout"
            ? `The request waited past the server's request timeout (${Math.round(timeoutMs / 1000)} s) without getting a slot. Retry later, or ask for fewer tokens.`
            : "The server is shutting down. Retry in a moment, or against another server.",
        {code: reason === "timeout" ? "request_timeout" : "shutting_down"});
        this.retryAfterSeconds = reason === "timeout" ? 5 : 10;
    }
}

/** A benchmark that could not measure a model: the file, the text or the pairing of models will not do. */
export class BenchmarkError extends HearthError {
    override readonly name = "BenchmarkError";

    constructor(message: string) {
        super(message, {code: "benchmark_failed"});
    }
}

/** Images were sent to a model that has no projector (mmproj) to see them with. */
export class ImagesNotSupportedError extends HearthError {
    override readonly name = "ImagesNotSupportedError";
    readonly model: string;

    /** `unusable`: why the model's projector could not be used, when it has one. */
    constructor(model: string, param = "messages", unusable?: string) {
        super(unusable != null
            ? `The model "${model}" cannot see images here: its projector could not be used (${unusable}).`
            : `The model "${model}" cannot see images: it was loaded without a projector (mmproj). Load it with --mmproj FILE, ` +
                "put its mmproj-*.gguf beside the model file, or pull a quant whose repository has one.", {param, code: "images_not_supported"});
        this.model = model;
    }
}

/** An image the projector cannot take: it does not decode, or it is too large for the context's batch. */
export class InvalidImageError extends HearthError {
    override readonly name = "InvalidImageError";

    constructor(message: string, param = "messages") {
        super(message, {param, code: "invalid_image"});
    }
}
