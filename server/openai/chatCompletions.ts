import type {FastifyInstance} from "fastify";
import {GenerationRun, answer, optionsForChoice} from "../generation/index.js";
import type {GenerationContext} from "../generation/index.js";
import {hasImages} from "../images/index.js";
import {RUNS_ANY_MODEL} from "../routeConfig.js";
import {clientAbortSignal} from "../sse.js";
import {chatCompletionEncoder} from "./chatCompletionEncoder.js";
import {ChatCompletionRequest} from "./schemas.js";
import {chatGenerationOptions, completionId, toChatMessages} from "./translate.js";

export async function chatCompletionsRoutes(app: FastifyInstance, {generation}: {generation: GenerationContext}): Promise<void> {
    app.post<{Body: ChatCompletionRequest}>("/v1/chat/completions", {schema: {body: ChatCompletionRequest}, ...RUNS_ANY_MODEL}, async (request, reply) => {
        const body = request.body;
        const options = chatGenerationOptions(body);
        const messages = await toChatMessages(body.messages, generation.images, clientAbortSignal(reply));
        const choices = body.n ?? 1;
        const run = await GenerationRun.start(generation, reply, {
            model: body.model,
            ...hasImages(messages) ? {imagesParam: "messages"} : {},
            inputs: (model) => {
                const prompt = model.chatPrompt(messages, options);
                return Array.from({length: choices}, (_, index) => ({prompt, options: optionsForChoice(options, index)}));
            }
        });
        const encoder = chatCompletionEncoder({
            id: completionId("chatcmpl"), created: Math.floor(Date.now() / 1000), model: body.model, choices,
            logprobs: options.logprobs != null, includeUsage: body.stream_options?.include_usage === true,
            stops: options.stop
        });
        return answer(run, reply, encoder, {stream: body.stream === true});
    });
}
