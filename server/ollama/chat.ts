import type {FastifyInstance, FastifyReply} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {InvalidRequestError, ModelNotReadyError, RequestAbortedError} from "../../native/errors.js";
import type {Generation, LoadedModel} from "../../native/LoadedModel.js";
import type {ChatMessage, GenerationEvent} from "../../native/types.js";
import {acquireModel} from "../acquireModel.js";
import {normalizeVector} from "../normalizeVector.js";
import {toErrorReply} from "../errors.js";
import {mergeGenerations} from "../mergeGenerations.js";
import {NdjsonStream, clientAbortSignal} from "../sse.js";
import {useOllamaConventions} from "./ollamaConventions.js";
import {OllamaChatRequest, OllamaEmbedRequest, OllamaEmbeddingsRequest, OllamaGenerateRequest} from "./ollamaSchemas.js";
import {
    checkGenerateInput, doneFields, embedFields, generationOptions, keepAliveMs, toChatMessages, toOllamaToolCall
} from "./translate.js";
import type {OllamaToolCall, RequestClock} from "./translate.js";
import {RUNS_MODEL} from "../routeConfig.js";

type DoneEvent = Extract<GenerationEvent, {type: "done"}>;
type Outcome = {content: string, toolCalls: OllamaToolCall[], done?: DoneEvent};
/** The part of a line that differs between the endpoints: `message` for chat, `response` for generate. */
type Payload = (content: string, toolCalls: readonly OllamaToolCall[]) => object;

const chatPayload: Payload = (content, toolCalls) => ({message: {role: "assistant", content, ...(toolCalls.length > 0 ? {tool_calls: toolCalls} : {})}});
const generatePayload: Payload = (content) => ({response: content});

/**
 * Runs a generation to its end. Text goes to `onText` as it comes (when streaming) and is also collected;
 * tool calls are collected whole, since Ollama returns them complete. `onText` returning true stops early.
 */
async function readGeneration(generation: Generation, onText?: (text: string) => Promise<boolean>): Promise<Outcome> {
    const outcome: Outcome = {content: "", toolCalls: []};
    const calls: {id: string, name: string, arguments: string}[] = [];
    for await (const {event} of mergeGenerations([generation])) {
        switch (event.type) {
            case "text":
                outcome.content += event.text;
                if (onText != null && await onText(event.text))
                    return outcome;
                break;
            case "toolCall":
                calls[event.index] = {id: event.id, name: event.name, arguments: ""};
                break;
            case "toolCallArguments":
                calls[event.index]!.arguments += event.text;
                break;
            case "done":
                outcome.done = event;
                break;
        }
    }
    outcome.toolCalls = calls.map(toOllamaToolCall);
    return outcome;
}

/**
 * Answers with a generation: one JSON object, or NDJSON lines (one per piece of text, then any tool calls,
 * then a final line with the statistics). An error after the stream began is sent as an `{"error"}` line.
 */
async function answer(reply: FastifyReply, generation: Generation, request: {model: string, stream: boolean, payload: Payload, clock: RequestClock}): Promise<object> {
    const {model, payload, clock} = request;
    const line = (content: string, toolCalls: readonly OllamaToolCall[], done: boolean) =>
        ({model, created_at: new Date().toISOString(), ...payload(content, toolCalls), done});

    if (!request.stream) {
        const outcome = await readGeneration(generation);
        if (outcome.done == null)
            throw new Error("The generation ended without a result");
        return {...line(outcome.content, outcome.toolCalls, true), ...doneFields(outcome.done, clock)};
    }

    const ndjson = new NdjsonStream(reply);
    try {
        const outcome = await readGeneration(generation, async (text) => {
            await ndjson.send(line(text, [], false));
            return ndjson.closed;
        });
        if (outcome.done == null || ndjson.closed) {
            reply.raw.destroy();
            return reply;
        }
        if (outcome.toolCalls.length > 0)
            await ndjson.send(line("", outcome.toolCalls, false));
        await ndjson.send({...line("", [], true), ...doneFields(outcome.done, clock)});
        ndjson.end();
    } catch (error) {
        if (error instanceof RequestAbortedError || ndjson.closed) {
            reply.raw.destroy();
            return reply;
        }
        const {statusCode, body} = toErrorReply(error);
        if (statusCode >= 500)
            reply.log.error({err: error}, "stream failed");
        await ndjson.send({error: body.error.message});
        ndjson.end();
    }
    return reply;
}

/**
 * A request with nothing to generate only loads the model, as in Ollama; with `keep_alive` 0 it unloads it.
 * A model other requests still hold unloads when they finish, since its keep-alive is now 0.
 */
async function loadOnly(engine: Engine, name: string, keepAlive: number | undefined): Promise<"load" | "unload"> {
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

/** Ollama's /api/chat, /api/generate, /api/embed and the legacy /api/embeddings. */
export async function ollamaChatRoutes(app: FastifyInstance, {engine}: {engine: Engine}): Promise<void> {
    useOllamaConventions(app);

    app.post<{Body: OllamaChatRequest}>("/api/chat", {schema: {body: OllamaChatRequest}, ...RUNS_MODEL}, async (request, reply) => {
        const body = request.body;
        const keepAlive = keepAliveMs(body.keep_alive);
        const messages = body.messages ?? [];
        if (messages.length === 0) {
            const doneReason = await loadOnly(engine, body.model, keepAlive);
            return {model: body.model, created_at: new Date().toISOString(), ...chatPayload("", []), done: true, done_reason: doneReason};
        }
        const chatMessages = toChatMessages(messages);
        const options = {...generationOptions(body, clientAbortSignal(reply)), deadline: request.deadline};
        const {model, clock} = await acquireTimed(engine, reply, body.model, keepAlive);
        const generation = await model.start(model.chatPrompt(chatMessages, options), options);
        return answer(reply, generation, {model: body.model, stream: body.stream ?? true, payload: chatPayload, clock});
    });

    app.post<{Body: OllamaGenerateRequest}>("/api/generate", {schema: {body: OllamaGenerateRequest}, ...RUNS_MODEL}, async (request, reply) => {
        const body = request.body;
        const keepAlive = keepAliveMs(body.keep_alive);
        checkGenerateInput(body);
        const prompt = body.prompt ?? "";
        if (prompt === "") {
            const doneReason = await loadOnly(engine, body.model, keepAlive);
            return {model: body.model, created_at: new Date().toISOString(), ...generatePayload("", []), done: true, done_reason: doneReason};
        }
        // /api/generate takes no tools; a client's stray `tools` field is not read (it is not validated here either).
        const options = {...generationOptions({format: body.format, options: body.options}, clientAbortSignal(reply)), deadline: request.deadline};
        const {model, clock} = await acquireTimed(engine, reply, body.model, keepAlive);
        const messages: ChatMessage[] = [...(body.system ? [{role: "system" as const, content: body.system}] : []), {role: "user", content: prompt}];
        const generation = await model.start(body.raw ? model.textPrompt(prompt) : model.chatPrompt(messages), options, "prompt");
        return answer(reply, generation, {model: body.model, stream: body.stream ?? true, payload: generatePayload, clock});
    });

    app.post<{Body: OllamaEmbedRequest}>("/api/embed", {schema: {body: OllamaEmbedRequest}, ...RUNS_MODEL}, async (request, reply) => {
        const body = request.body;
        const {model, clock} = await acquireTimed(engine, reply, body.model, keepAliveMs(body.keep_alive));
        // An empty input only loads the model, as in Ollama.
        const inputs = (typeof body.input === "string" ? [body.input] : body.input ?? []).filter((input) => input !== "");
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

    app.post<{Body: OllamaEmbeddingsRequest}>("/api/embeddings", {schema: {body: OllamaEmbeddingsRequest}, ...RUNS_MODEL}, async (request, reply) => {
        const body = request.body;
        const model = await acquireModel(engine, reply, body.model, keepAliveMs(body.keep_alive));
        if (!body.prompt)
            return {embedding: []};
        // The legacy endpoint returns the model's vector as it is, not normalized, as Ollama's does.
        const {vector} = await model.embed(body.prompt, "prompt");
        return {embedding: [...vector]};
    });
}
