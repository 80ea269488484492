import type {FastifyInstance} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {acquireModel} from "../acquireModel.js";
import {withPreset} from "../presets/applyPreset.js";
import {answer, collectRun, requireProjector} from "../generation/index.js";
import type {GenerationContext} from "../generation/index.js";
import {clientAbortSignal} from "../sse.js";
import {startRun} from "../upstreams/startRun.js";
import {upstreamServing} from "../upstreams/upstreamServing.js";
import {UpstreamRun} from "../upstreams/UpstreamRun.js";
import {ANTHROPIC_ROUTE, ANTHROPIC_RUNS_MODEL, useAnthropicConventions} from "./anthropicConventions.js";
import {CountTokensRequest, MessagesRequest} from "./anthropicSchemas.js";
import type {SystemParam} from "./anthropicSchemas.js";
import {applyContextEdits} from "./contextEdits.js";
import type {CountTokens} from "./contextEdits.js";
import {readMessageImages} from "./messageImages.js";
import type {MessageImages} from "./messageImages.js";
import {messagesEncoder} from "./messagesEncoder.js";
import {messageId, messagesGenerationOptions, promptOptions, showsThinking, toChatMessages} from "./translate.js";
import type {LoadedModel} from "../../native/LoadedModel.js";
import type {RequestOptions} from "../generation/index.js";

/**
 * A prompt's length on a local model as its usage counts it, images' tokens included: for the context edits' token
 * thresholds, `count_tokens` and `message_start`, which must agree with the reply's final usage.
 */
function tokenCounter(model: LoadedModel, system: SystemParam | undefined, options: RequestOptions, images: MessageImages): CountTokens {
    return (messages) => model.promptTokenCount(model.chatPrompt(toChatMessages(system, messages, images), options));
}

/**
 * Anthropic's Messages API: `/v1/messages` (one reply, or its stream of named events) and
 * `/v1/messages/count_tokens`. Any `anthropic-version` and `anthropic-beta` header is accepted, and the beta
 * routes' `?beta=true`; `x-api-key` carries Hearth's key. `context_management` edits are applied to the
 * conversation before it is rendered, and the reply says which changed it.
 * An upstream's model is asked for an OpenAI chat completion, written back in Anthropic's shapes; its tokens are
 * counted by asking it for one token of a reply, whose usage says how long it found the prompt.
 */
export async function anthropicMessagesRoutes(app: FastifyInstance, {engine, generation}: {engine: Engine, generation: GenerationContext}): Promise<void> {
    useAnthropicConventions(app);

    app.post<{Body: MessagesRequest}>("/v1/messages", {schema: {body: MessagesRequest}, ...ANTHROPIC_RUNS_MODEL}, async (request, reply) => {
        const body = request.body;
        const options = messagesGenerationOptions(body);
        // An upstream's model has no tokenizer here: its edits are those that need no token count.
        let edited = await applyContextEdits(body.messages, body.context_management);
        // An upstream's prompt length is known only from its usage at the end: message_start says 0, message_delta the count.
        let promptTokens = 0;
        const images = await readMessageImages(body.messages, generation.images, clientAbortSignal(reply));
        const run = await startRun(generation, request, reply, {
            model: body.model,
            ...images.size > 0 ? {imagesParam: "messages"} : {},
            inputs: async (model) => {
                edited = await applyContextEdits(body.messages, body.context_management, tokenCounter(model, body.system, options, images));
                const prompt = model.chatPrompt(toChatMessages(body.system, edited.messages, images), options);
                promptTokens = await model.promptTokenCount(prompt);
                return [{prompt, options, promptParam: "messages"}];
            },
            upstream: {prompt: {messages: toChatMessages(body.system, edited.messages, images)}, options}
        });
        const encoder = messagesEncoder({
            id: messageId(), model: body.model, promptTokens, stopSequences: options.stop, thinking: showsThinking(body),
            contextManagement: body.context_management != null ? {applied_edits: edited.applied} : undefined
        });
        return answer(run, reply, encoder, {stream: body.stream === true});
    });

    app.post<{Body: CountTokensRequest}>("/v1/messages/count_tokens", {schema: {body: CountTokensRequest}, ...ANTHROPIC_ROUTE}, async (request, reply) => {
        const body = request.body;
        const options = promptOptions(body);
        const pool = upstreamServing(generation.upstreams, body.model);
        const images = await readMessageImages(body.messages, generation.images, clientAbortSignal(reply));
        if (pool != null) {
            const messages = toChatMessages(body.system, (await applyContextEdits(body.messages, body.context_management)).messages, images);
            const run = await UpstreamRun.start(generation, pool, request, reply, {model: body.model, prompt: {messages}, options: {...options, maxTokens: 1}});
            const [counted] = await collectRun(run);
            return {input_tokens: counted!.done.usage.promptTokens};
        }
        if (images.size > 0)
            requireProjector(engine, body.model, "messages");
        // The engine loads a preset's model by the preset's name; the preset's turns count as they will be sent.
        const preset = generation.presets?.(body.model);
        const loaded = await acquireModel(engine, reply, body.model);
        const model = preset != null ? withPreset(loaded, preset) : loaded;
        const count = tokenCounter(model, body.system, options, images);
        const edited = await applyContextEdits(body.messages, body.context_management, count);
        // As Anthropic answers: the edited prompt's length, and with context management the length before the edits.
        return {
            input_tokens: await count(edited.messages),
            ...body.context_management != null ? {context_management: {original_input_tokens: await count(body.messages)}} : {}
        };
    });
}
