import type {FastifyInstance} from "fastify";
import {errorHandlerFor} from "../errors.js";

/**
 * What every `/api` route plugin shares with Ollama: errors as `{"error": "message"}`, and bodies read as
 * JSON whatever their content type (Ollama's documented `curl -d` examples send a form type).
 */
export function useOllamaConventions(app: FastifyInstance): void {
    app.setErrorHandler(ollamaErrorHandler);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser("*", {parseAs: "string"}, app.getDefaultJsonParser("error", "error"));
}

/** Ollama's error body is `{"error": "message"}`; the status and `Retry-After` are the same as for `/v1`. */
export const ollamaErrorHandler = errorHandlerFor((body) => ({error: body.error.message}));
