import type {FastifyInstance} from "fastify";
import {ApiError} from "../errors.js";
import {GenerationRun, answer} from "../generation/index.js";
import type {GenerationContext} from "../generation/index.js";
import {RUNS_ANY_MODEL} from "../routeConfig.js";
import {clientAbortSignal} from "../sse.js";
import {responseEncoder, responseItemId, responseSettings} from "./responseEncoder.js";
import {inputItems, readInputImages, responseGenerationOptions, toResponseMessages, toolSources} from "./responseInput.js";
import {ResponseIdParams, ResponseRequest} from "./responseSchemas.js";
import {responseTools} from "./responseTools.js";
import type {ResponseInputItem} from "./responseSchemas.js";
import type {ResponseStore} from "./ResponseStore.js";

class ResponseNotFoundError extends ApiError {
    constructor(id: string, param: string | null = null) {
        super(param == null ? 404 : 400, `There is no response with id '${id}'; it may have been deleted, or stored with "store": false.`,
            {code: param == null ? "not_found" : "previous_response_not_found", param});
    }
}

/**
 * `/v1/responses`: OpenAI's Responses API on the shared pipeline, with stored responses that
 * `previous_response_id` continues, and that can be read back and deleted.
 */
export async function responsesRoutes(app: FastifyInstance, {generation, responses}: {generation: GenerationContext, responses: ResponseStore}): Promise<void> {
    app.post<{Body: ResponseRequest}>("/v1/responses", {schema: {body: ResponseRequest}, ...RUNS_ANY_MODEL}, async (request, reply) => {
        const body = request.body;
        const previousId = body.previous_response_id;
        const previous = previousId != null ? responses.get(previousId) : undefined;
        if (previousId != null && previous == null)
            throw new ResponseNotFoundError(previousId, "previous_response_id");
        // The whole conversation so far: what led to the previous response, its output, then this input.
        const items: ResponseInputItem[] = [
            ...previous != null ? [...previous.input, ...previous.response.output] as ResponseInputItem[] : [],
            ...inputItems(body.input)
        ];
        const tools = responseTools(toolSources(body, items));
        const images = await readInputImages(items, generation.images, clientAbortSignal(reply));
        const messages = toResponseMessages(items, body.instructions, {tools, reasoning: responses.reasoning}, images);
        const options = responseGenerationOptions(body, tools);
        const run = await GenerationRun.start(generation, reply, {
            model: body.model,
            ...images.size > 0 ? {imagesParam: "input"} : {},
            inputs: (model) => [{prompt: model.chatPrompt(messages, options), options, promptParam: "input"}]
        });
        const id = responseItemId("resp");
        const encoder = responseEncoder({
            id, createdAt: Math.floor(Date.now() / 1000), model: body.model, settings: responseSettings(body, tools), tools,
            ...body.include?.includes("reasoning.encrypted_content") === true ? {sealReasoning: (text: string) => responses.reasoning.seal(text)} : {},
            finished: (response) => {
                if (body.store !== false)
                    responses.save({id, response, input: items});
            }
        });
        return answer(run, reply, encoder, {stream: body.stream === true});
    });

    app.get<{Params: ResponseIdParams}>("/v1/responses/:id", {schema: {params: ResponseIdParams}}, async (request) => {
        const stored = responses.get(request.params.id);
        if (stored == null)
            throw new ResponseNotFoundError(request.params.id);
        return stored.response;
    });

    app.get<{Params: ResponseIdParams}>("/v1/responses/:id/input_items", {schema: {params: ResponseIdParams}}, async (request) => {
        const stored = responses.get(request.params.id);
        if (stored == null)
            throw new ResponseNotFoundError(request.params.id);
        const data = stored.input;
        return {object: "list", data, first_id: null, last_id: null, has_more: false};
    });

    app.delete<{Params: ResponseIdParams}>("/v1/responses/:id", {schema: {params: ResponseIdParams}}, async (request) => {
        if (!responses.remove(request.params.id))
            throw new ResponseNotFoundError(request.params.id);
        return {id: request.params.id, object: "response", deleted: true};
    });
}
