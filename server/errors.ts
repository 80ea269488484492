import type {FastifyError, FastifyReply, FastifyRequest} from "fastify";
import {InsufficientMemoryError} from "node-llama-cpp";
import {DeadlineError, HearthError, ModelNotReadyError, QueueFullError} from "../native/errors.js";

/** The OpenAI error body: `{"error": {"message", "type", "param", "code"}}`. */
export type ErrorBody = {error: {message: string, type: string, param: string | null, code: string | null}};

export function errorBody(message: string, type: string, param: string | null = null, code: string | null = null): ErrorBody {
    return {error: {message, type, param, code}};
}

/** Maps any error to a status and the API's error body. Unknown errors are 500 and keep their details out of the reply. */
export function toErrorReply(error: unknown): {statusCode: number, body: ErrorBody, retryAfterSeconds?: number} {
    if (error instanceof HearthError) {
        const retryAfterSeconds = error instanceof QueueFullError || error instanceof ModelNotReadyError || error instanceof DeadlineError ? error.retryAfterSeconds : undefined;
        return {statusCode: error.statusCode, body: errorBody(error.message, error.type, error.param, error.code), retryAfterSeconds};
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

/** A Fastify error handler that sends {@link toErrorReply}'s status with the body `shape` makes of it. */
export function errorHandlerFor(shape: (body: ErrorBody) => unknown) {
    return (error: unknown, request: FastifyRequest, reply: FastifyReply): void => {
        const {statusCode, body, retryAfterSeconds} = toErrorReply(error);
        if (statusCode >= 500 && !(error instanceof HearthError))
            request.log.error({err: error}, "request failed");
        if (retryAfterSeconds != null)
            reply.header("retry-after", String(retryAfterSeconds));
        void reply.status(statusCode).send(shape(body));
    };
}

/** OpenAI's error shape, for `/v1` and everything outside `/api`. */
export const errorHandler = errorHandlerFor((body) => body);
