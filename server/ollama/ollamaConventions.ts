import type {FastifyInstance} from "fastify";
import {errorHandlerFor} from "../errors.js";

/**
 * What every `/api` route plugin shares with Ollama: errors as `{"error": "message"}`, and bodies read as
 * JSON whatever their content type (Ollama's documented `curl -d` examples send a form type).
 */
export function useOllamaConventions(app: FastifyInstance): void {
    app.setErrorHandler(ollamaErrorHandler);
    app.removeAllContentTypeParsers();
    const parseJson = app.getDefaultJsonParser("error", "error");
    // An empty body (a DELETE sent with a JSON content type) is no body; routes that need one say so in their schema.
    app.addContentTypeParser("*", {parseAs: "string"}, (request, body, done) => {
        if (body === "")
            done(null, undefined);
        else
            parseJson(request, body as string, done);
    });
}

/** Ollama's error body is `{"error": "message"}`; the status and `Retry-After` are the same as for `/v1`. */
export const ollamaErrorHandler = errorHandlerFor((body) => ({error: body.error.message}));
