import type {FastifyInstance, FastifyReply} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {InvalidRequestError, ModelNotReadyError} from "../../native/errors.js";
import type {LoadedModel} from "../../native/LoadedModel.js";
import {acquireModel} from "../acquireModel.js";
import {answer} from "../generation/index.js";
import type {GenerationContext} from "../generation/index.js";
import {hasImages} from "../images/index.js";
import {normalizeVector} from "../normalizeVector.js";
import {RUNS_TRANSLATED_MODEL} from "../routeConfig.js";
import {embedUpstream, startRun, upstreamServing} from "../upstreams/index.js";
import {useOllamaConventions} from "./ollamaConventions.js";
import {chatEncoder, generateEncoder, loadOnlyLine} from "./ollamaEncoders.js";
import {OllamaChatRequest, OllamaEmbedRequest, OllamaEmbeddingsRequest, OllamaGenerateRequest} from "./ollamaSchemas.js";
import {embedFields, generateMessages, generationOptions, keepAliveMs, toChatMessages} from "./translate.js";
import type {RequestClock} from "./translate.js";

/**
 * A request with nothing to generate only loads the model, as in Ollama; with `keep_alive` 0 it unloads it.
 * A model other requests still hold unloads when they finish, since its keep-alive is now 0. An upstream's model
 * is the upstream's to load: nothing is done here.
 */
async function loadOnly(context: GenerationContext, name: string, keepAlive: number | undefined): Promise<"load" | "unload"> {
    if (upstreamServing(context.upstreams, name) != null)
        return keepAlive === 0 ? "unload" : "load";
    const engine = context.engine;
    const lease = await engine.acquire(name, {keepAliveMs: keepAlive});
    lease.release();
    if (keepAlive !== 0)
        return "load";
    try {
        await engine.unload(name);
    } catch (error) {
        if (!(error instanceof ModelNotReadyError))
            throw error;
    }
    return "unload";
}

/** The model and how long getting it took. */
async function acquireTimed(engine: Engine, reply: FastifyReply, name: string, keepAlive: number | undefined): Promise<{model: LoadedModel, clock: RequestClock}> {
    const startedMs = performance.now();
    const model = await acquireModel(engine, reply, name, keepAlive);
    return {model, clock: {startedMs, loadMs: performance.now() - startedMs}};
}

/**
 * Ollama's /api/chat, /api/generate, /api/embed and the legacy /api/embeddings. An upstream's model is asked for an
 * OpenAI chat completion (a raw prompt: a completion) or OpenAI embeddings, written back in Ollama's shapes;
 * `keep_alive` is this server's own and is not passed on.
 */
export async function ollamaChatRoutes(app: FastifyInstance, {engine, generation}: {engine: Engine, generation: GenerationContext}): Promise<void> {
    useOllamaConventions(app);

    app.post<{Body: OllamaChatRequest}>("/api/chat", {schema: {body: OllamaChatRequest}, ...RUNS_TRANSLATED_MODEL}, async (request, reply) => {
        const body = request.body;
        const keepAlive = keepAliveMs(body.keep_alive);
        const messages = body.messages ?? [];
        if (messages.length === 0)
            return loadOnlyLine(body.model, "chat", await loadOnly(generation, body.model, keepAlive));
        const chatMessages = toChatMessages(messages, generation.images);
        const options = generationOptions(body);
        const run = await startRun(generation, request, reply, {
            model: body.model,
            ...hasImages(chatMessages) ? {imagesParam: "messages"} : {},
            keepAliveMs: keepAlive,
            inputs: (model) => [{prompt: model.chatPrompt(chatMessages, options), options}],
            upstream: {prompt: {messages: chatMessages}, options}
        });
        return answer(run, reply, chatEncoder(run, body.model), {stream: body.stream ?? true});
    });

    app.post<{Body: OllamaGenerateRequest}>("/api/generate", {schema: {body: OllamaGenerateRequest}, ...RUNS_TRANSLATED_MODEL}, async (request, reply) => {
        const body = request.body;
        const keepAlive = keepAliveMs(body.keep_alive);
        const messages = generateMessages(body, generation.images);
        const prompt = body.prompt ?? "";
        if (prompt === "" && !hasImages(messages))
            return loadOnlyLine(body.model, "generate", await loadOnly(generation, body.model, keepAlive));
        // /api/generate takes no tools; a client's stray `tools` field is not read (it is not validated here either).
        const options = generationOptions({format: body.format, options: body.options, think: body.think});
        const run = await startRun(generation, request, reply, {
            model: body.model,
            ...hasImages(messages) ? {imagesParam: "images"} : {},
            keepAliveMs: keepAlive,
            // A raw prompt is the model's input as it is: no template, so no thinking switch either.
            inputs: (model) => [{prompt: body.raw ? model.textPrompt(prompt) : model.chatPrompt(messages, options), options, promptParam: "prompt"}],
            upstream: {prompt: body.raw ? {text: prompt} : {messages}, options}
        });
        return answer(run, reply, generateEncoder(run, body.model), {stream: body.stream ?? true});
    });

    app.post<{Body: OllamaEmbedRequest}>("/api/embed", {schema: {body: OllamaEmbedRequest}, ...RUNS_TRANSLATED_MODEL}, async (request, reply) => {
        const body = request.body;
        // An empty input only loads the model, as in Ollama.
        const inputs = (typeof body.input === "string" ? [body.input] : body.input ?? []).filter((input) => input !== "");
        const pool = upstreamServing(generation.upstreams, body.model);
        if (pool != null) {
            const clock = {startedMs: performance.now(), loadMs: 0};
            const {vectors, promptTokens} = inputs.length > 0 ? await embedUpstream(pool, request, reply, {model: body.model, inputs, dimensions: body.dimensions ?? undefined}) : {vectors: [], promptTokens: 0};
            return {model: body.model, embeddings: vectors.map((vector) => normalizeVector(vector)), ...embedFields(clock, promptTokens)};
        }
        const {model, clock} = await acquireTimed(engine, reply, body.model, keepAliveMs(body.keep_alive));
        const embeddings: number[][] = [];
        let promptTokens = 0;
        for (const [index, input] of inputs.entries()) {
            const {vector, tokens} = await model.embed(input, inputs.length > 1 ? `input.${index}` : "input");
            if (body.dimensions != null && body.dimensions > vector.length)
                throw new InvalidRequestError(`This model's embeddings have ${vector.length} dimensions; dimensions=${body.dimensions} is more`, "dimensions");
            promptTokens += tokens;
            // Ollama shortens to `dimensions` and normalizes again, so a shortened vector is still unit length.
            embeddings.push(normalizeVector(body.dimensions != null ? vector.slice(0, body.dimensions) : vector));
        }
        return {model: body.model, embeddings, ...embedFields(clock, promptTokens)};
    });

    app.post<{Body: OllamaEmbeddingsRequest}>("/api/embeddings", {schema: {body: OllamaEmbeddingsRequest}, ...RUNS_TRANSLATED_MODEL}, async (request, reply) => {
        const body = request.body;
        const pool = upstreamServing(generation.upstreams, body.model);
        if (pool != null) {
            if (!body.prompt)
                return {embedding: []};
            const {vectors} = await embedUpstream(pool, request, reply, {model: body.model, inputs: [body.prompt]});
            return {embedding: vectors[0]};
        }
        const model = await acquireModel(engine, reply, body.model, keepAliveMs(body.keep_alive));
        if (!body.prompt)
            return {embedding: []};
        // The legacy endpoint returns the model's vector as it is, not normalized, as Ollama's does.
        const {vector} = await model.embed(body.prompt, "prompt");
        return {embedding: [...vector]};
    });
}
