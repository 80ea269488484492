import type {FastifyInstance} from "fastify";
import {ContextOverflowError} from "../../native/errors.js";
import {errorHandlerFor} from "../errors.js";
import type {ErrorBody} from "../errors.js";

export type AnthropicErrorType =
    | "invalid_request_error" | "authentication_error" | "permission_error" | "not_found_error" | "request_too_large"
    | "rate_limit_error" | "overloaded_error" | "api_error";

/** Anthropic names an error's kind by its status. Hearth's 503s (a full queue, a model still loading, a deadline) are "overloaded". */
function errorTypeFor(statusCode: number): AnthropicErrorType {
    switch (statusCode) {
        case 401:
            return "authentication_error";
        case 403:
            return "permission_error";
        case 404:
            return "not_found_error";
        case 413:
            return "request_too_large";
        case 429:
            return "rate_limit_error";
        case 503:
        case 529:
            return "overloaded_error";
        default:
            return statusCode >= 500 ? "api_error" : "invalid_request_error";
    }
}

export type AnthropicErrorBody = {type: "error", error: {type: AnthropicErrorType, message: string}};

/**
 * Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`. A prompt longer than the context is
 * refused in Anthropic's exact words, which Claude Code matches (`prompt is too long: N tokens > M maximum`) to compact
 * its history and retry.
 */
export function anthropicErrorShape(body: ErrorBody, statusCode: number, cause?: unknown): AnthropicErrorBody {
    const message = cause instanceof ContextOverflowError ? `prompt is too long: ${cause.promptTokens} tokens > ${cause.maxPromptTokens} maximum` : body.error.message;
    return {type: "error", error: {type: errorTypeFor(statusCode), message}};
}

/** Route options of an Anthropic route: refusals before its handler (a missing key, the rate limit) in its shape too. */
export const ANTHROPIC_ROUTE = {config: {errorShape: anthropicErrorShape}} as const;
/** `/v1/messages`, which an upstream's model may answer, asked for as an OpenAI chat completion. */
export const ANTHROPIC_RUNS_MODEL = {config: {errorShape: anthropicErrorShape, runsModel: true, upstream: "translate"}} as const;

/** What every Anthropic route plugin shares: errors in Anthropic's shape, with the same status as elsewhere. */
export function useAnthropicConventions(app: FastifyInstance): void {
    app.setErrorHandler(errorHandlerFor(anthropicErrorShape));
}
