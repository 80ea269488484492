import type {FastifyError, FastifyReply, FastifyRequest} from "fastify";
import {InsufficientMemoryError} from "node-llama-cpp";
import {HearthError} from "../models/HearthError.js";
import {formatByteSize} from "./byteSize.js";
import {MOST_BODY_BYTES} from "./config.js";
import {isBodyTooLarge} from "./limitRequestBodies.js";
import {
    DiskFullError, DownloadCancelledError, DownloadNotFoundError, HubError, IntegrityError, InvalidGgufError, InvalidModelNameError,
    ModelBusyError, ModelExistsError, ModelNotInLibraryError, NotEnoughDiskSpaceError, QuantizationNotFoundError, UnsafePathError
} from "../models/errors.js";
import {
    BackendUnavailableError, BenchmarkError, ContextOverflowError, DeadlineError, InvalidRequestError, ModelInUseError, ModelNotFoundError, ModelNotReadyError,
    ModelTooLargeError, QueueFullError, UnsupportedKvCacheError, ImagesNotSupportedError, InvalidImageError
} from "../native/errors.js";

/** The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`. */
export type ErrorBody = {error: {message: string, type: string, param: string | null, code: string | null}};

export function errorBody(message: string, type: string, param: string | null = null, code: string | null = null): ErrorBody {
    return {error: {message, type, param, code}};
}

/** An error of the HTTP layer itself (a route's own refusal), which names its status; the engine and the library never do. */
export class ApiError extends HearthError {
    override readonly name: string = "ApiError";
    readonly statusCode: number;

    constructor(statusCode: number, message: string, {code, param = null}: {code: string, param?: string | null}) {
        super(message, {code, param});
        this.statusCode = statusCode;
    }
}

type ErrorClass = abstract new (...args: never[]) => HearthError;

/** The status of each error class of the engine and the library. A class not listed (nor an {@link ApiError}) is a 500. */
const STATUS_BY_CLASS: readonly (readonly [ErrorClass, number | ((error: never) => number)])[] = [
    [InvalidRequestError, 400],
    [ContextOverflowError, 400],
    [ImagesNotSupportedError, 400],
    [InvalidImageError, 400],
    [BackendUnavailableError, 400],
    [ModelNotFoundError, 404],
    [ModelTooLargeError, 422],
    [ModelInUseError, 409],
    [UnsupportedKvCacheError, 422],
    [BenchmarkError, 422],
    [ModelNotReadyError, 503],
    [QueueFullError, 503],
    [DeadlineError, 503],
    [InvalidModelNameError, 400],
    [UnsafePathError, 400],
    [InvalidGgufError, (error: InvalidGgufError) => error.downloaded ? 422 : 400],
    [ModelNotInLibraryError, 404],
    [QuantizationNotFoundError, 404],
    [DownloadNotFoundError, 404],
    [ModelExistsError, 409],
    [ModelBusyError, 409],
    [DownloadCancelledError, 499],
    [HubError, (error: HubError) => HUB_STATUS[error.code] ?? 502],
    [IntegrityError, 502],
    [NotEnoughDiskSpaceError, 507],
    [DiskFullError, 507]
];

const HUB_STATUS: Record<string, number> = {invalid_repo: 400, repo_not_found: 404, file_not_found: 404, hub_access_denied: 403, hub_rate_limited: 503};

/** The HTTP status a Hearth error is answered with. */
export function statusOf(error: HearthError): number {
    if (error instanceof ApiError)
        return error.statusCode;
    const entry = STATUS_BY_CLASS.find(([errorClass]) => error instanceof errorClass);
    if (entry == null)
        return 500;
    const status = entry[1];
    return typeof status === "number" ? status : status(error as never);
}

function retryAfterSecondsOf(error: HearthError): number | undefined {
    return error instanceof QueueFullError || error instanceof ModelNotReadyError || error instanceof DeadlineError || error instanceof ModelInUseError
        ? error.retryAfterSeconds : undefined;
}

/**
 * What an error is answered with: the status, OpenAI's body (each API reshapes it), `Retry-After` when it applies, and
 * the error itself, from which an API may word an error its clients act on in its own terms.
 */
export type ErrorReply = {statusCode: number, body: ErrorBody, retryAfterSeconds?: number, cause?: unknown};

/** Maps any error to a status and the API's error body. Unknown errors are 500 and keep their details out of the reply. */
export function toErrorReply(error: unknown): ErrorReply {
    if (error instanceof HearthError) {
        const statusCode = statusOf(error);
        const type = statusCode >= 500 ? "server_error" : "invalid_request_error";
        return {statusCode, body: errorBody(error.message, type, error.param, error.code), retryAfterSeconds: retryAfterSecondsOf(error), cause: error};
    }
    if (error instanceof InsufficientMemoryError) {
        // node-llama-cpp's own check before allocating (a context for embeddings, say): refused, nothing crashed.
        return {statusCode: 422, body: errorBody(`Not enough free memory for this request: ${error.message}. Unload other models or use a smaller context.`, "invalid_request_error", null, "insufficient_memory")};
    }
    const fastifyError = error as Partial<FastifyError> & {validation?: {instancePath?: string, params?: Record<string, unknown>}[]};
    if (fastifyError.validation != null) {
        const first = fastifyError.validation[0];
        const param = first?.instancePath ? first.instancePath.replace(/^\//, "").replace(/\//g, ".") : null;
        return {statusCode: 400, body: errorBody(`Invalid request: ${fastifyError.message}`, "invalid_request_error", param, "invalid_value")};
    }
    const statusCode = fastifyError.statusCode;
    if (statusCode != null && statusCode >= 400 && statusCode < 500) {
        const message = fastifyError.code === "FST_ERR_CTP_INVALID_JSON_BODY" || fastifyError.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || error instanceof SyntaxError
            ? `The request body is not valid JSON: ${fastifyError.message}`
            : fastifyError.message ?? "Bad request";
        return {statusCode, body: errorBody(message, "invalid_request_error", null, fastifyError.code ?? null)};
    }
    return {statusCode: 500, body: errorBody("The server hit an internal error; see its log for details", "server_error")};
}

/**
 * How a reply that had sent its status ended, for the request's log line and audit entry: the error's status, and its
 * own message (the client gets none of an internal error's details, the operator does).
 */
export function failureOf(error: unknown, errorReply: ErrorReply = toErrorReply(error)): {status: number, message: string} {
    return {status: errorReply.statusCode, message: error instanceof Error ? error.message : errorReply.body.error.message};
}

/**
 * How an API words an error: its body made from OpenAI's and the status (Anthropic names the error's type by it), and
 * from the error itself (`cause`) where its clients expect an error in the API's own words.
 */
export type ErrorShape = (body: ErrorBody, statusCode: number, cause?: unknown) => unknown;

/** A Fastify error handler that sends {@link toErrorReply}'s status with the body `shape` makes of it. */
export function errorHandlerFor(shape: ErrorShape) {
    return (error: unknown, request: FastifyRequest, reply: FastifyReply): void => {
        const {statusCode, body, retryAfterSeconds, cause} = toErrorReply(isBodyTooLarge(error) ? bodyTooLargeError(request) : error);
        if (statusCode === 500 || (statusCode > 500 && !(error instanceof HearthError)))
            request.log.error({err: error}, "request failed");
        if (retryAfterSeconds != null)
            reply.header("retry-after", String(retryAfterSeconds));
        void reply.status(statusCode).send(shape(body, statusCode, cause));
    };
}

/** Fastify's "Request body is too large", with the body's size where the client declared it, the limit, and how to raise it. */
function bodyTooLargeError(request: FastifyRequest): ApiError {
    const limitBytes = request.routeOptions.bodyLimit ?? 0;
    const declaredBytes = Number(request.headers["content-length"]);
    const known = Number.isFinite(declaredBytes) && declaredBytes > limitBytes;
    const sizeText = known ? `The request body is ${formatByteSize(declaredBytes)}, over` : "The request body is over";
    // A limit that takes it: the next multiple of 64 MiB, and at least twice the limit of today.
    const step = 64 * 1024 * 1024;
    const suggestedBytes = Math.ceil(Math.max(2 * limitBytes, known ? declaredBytes : 0) / step) * step;
    const mebibytes = (bytes: number) => bytes / (1024 * 1024);
    const raise = suggestedBytes <= MOST_BODY_BYTES ? `, or start Hearth with a higher limit: --max-body-size ${mebibytes(suggestedBytes)}mb (or HEARTH_MAX_BODY_SIZE)`
        : limitBytes < MOST_BODY_BYTES ? `, or start Hearth with --max-body-size ${mebibytes(MOST_BODY_BYTES)}mb (or HEARTH_MAX_BODY_SIZE), the most it takes`
            : "";
    return new ApiError(413, `${sizeText} this server's limit of ${formatByteSize(limitBytes)}. Send fewer or smaller images, or less text${raise}.`, {code: "request_too_large"});
}

/**
 * OpenAI's error shape, for `/v1` and everything outside `/api`. A prompt longer than the context is refused in
 * OpenAI's words and code (`context_length_exceeded`), which agents such as Qwen Code answer by compressing their history.
 */
export function openAiErrorShape(body: ErrorBody, _statusCode: number, cause?: unknown): ErrorBody {
    if (!(cause instanceof ContextOverflowError))
        return body;
    const what = cause.param === "prompt" || cause.param === "input" ? cause.param : "messages";
    return errorBody(
        `This model's maximum context length is ${cause.contextTokens} tokens. However, your ${what} resulted in ${cause.promptTokens} tokens. ` +
        `Please reduce the length of the ${what}.`,
        body.error.type, body.error.param, "context_length_exceeded"
    );
}

export const errorHandler = errorHandlerFor(openAiErrorShape);
