import type {FastifyInstance, FastifyReply} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {acquireModel} from "../acquireModel.js";
import type {Generation} from "../../native/LoadedModel.js";
import type {FinishReason, GenerationOptions, TokenLogprob, Usage, Timings} from "../../native/types.js";
import {mergeGenerations, startAll} from "../mergeGenerations.js";
import {clientAbortSignal} from "../sse.js";
import {streamEvents} from "./streamEvents.js";
import {ChatCompletionRequest} from "./schemas.js";
import {SYSTEM_FINGERPRINT, chatGenerationOptions, completionId, toChatMessages, toOpenAIUsage, toTimings} from "./translate.js";
import {RUNS_MODEL} from "../routeConfig.js";

type OpenAILogprob = {token: string, logprob: number, bytes: number[], top_logprobs: {token: string, logprob: number, bytes: number[]}[]};

function toOpenAILogprobs(logprobs: readonly TokenLogprob[]): OpenAILogprob[] {
    return logprobs.map((entry) => ({
        token: entry.token,
        logprob: entry.logprob,
        bytes: entry.bytes,
        top_logprobs: entry.topLogprobs.map((top) => ({token: top.token, logprob: top.logprob, bytes: top.bytes}))
    }));
}

/** Each choice gets its own seed (seed + index), so `n` choices differ and a request is still repeatable. */
export function optionsForChoice(options: GenerationOptions, index: number): GenerationOptions {
    const seed = options.sampling.seed;
    return seed == null || index === 0 ? options : {...options, sampling: {...options.sampling, seed: seed + index}};
}

type Choice = {
    content: string,
    toolCalls: {id: string, type: "function", function: {name: string, arguments: string}}[],
    logprobs: OpenAILogprob[],
    finishReason: FinishReason,
    usage?: Usage,
    timings?: Timings
};

async function collect(generations: readonly Generation[]): Promise<Choice[]> {
    const choices: Choice[] = generations.map(() => ({content: "", toolCalls: [], logprobs: [], finishReason: "stop"}));
    for await (const {index, event} of mergeGenerations(generations)) {
        const choice = choices[index]!;
        switch (event.type) {
            case "text":
                choice.content += event.text;
                choice.logprobs.push(...toOpenAILogprobs(event.logprobs ?? []));
                break;
            case "toolCall":
                choice.toolCalls[event.index] = {id: event.id, type: "function", function: {name: event.name, arguments: ""}};
                break;
            case "toolCallArguments":
                choice.toolCalls[event.index]!.function.arguments += event.text;
                break;
            case "done":
                choice.finishReason = event.finishReason;
                choice.usage = event.usage;
                choice.timings = event.timings;
                break;
        }
    }
    return choices;
}

export async function chatCompletionsRoutes(app: FastifyInstance, {engine}: {engine: Engine}): Promise<void> {
    app.post<{Body: ChatCompletionRequest}>("/v1/chat/completions", {schema: {body: ChatCompletionRequest}, ...RUNS_MODEL}, async (request, reply: FastifyReply) => {
        const body = request.body;
        const model = await acquireModel(engine, reply, body.model);
        const signal = clientAbortSignal(reply);
        const options = {...chatGenerationOptions(body, signal), deadline: request.deadline};
        const prompt = model.chatPrompt(toChatMessages(body.messages), options);
        const generations = await startAll(body.n ?? 1, (index) => model.start(prompt, optionsForChoice(options, index)));

        const id = completionId("chatcmpl");
        const created = Math.floor(Date.now() / 1000);
        const logprobsWanted = options.logprobs != null;

        if (body.stream) {
            const base = {id, object: "chat.completion.chunk", created, model: body.model, system_fingerprint: SYSTEM_FINGERPRINT};
            const includeUsage = body.stream_options?.include_usage === true;
            const chunk = (index: number, delta: object, extra: {logprobs?: object | null, finish_reason?: FinishReason | null} = {}) => ({
                ...base,
                choices: [{index, delta, logprobs: extra.logprobs ?? null, finish_reason: extra.finish_reason ?? null}],
                ...(includeUsage ? {usage: null} : {})
            });
            await streamEvents(reply, generations, {
                first: (index) => chunk(index, {role: "assistant", content: ""}),
                event: (index, event) => {
                    switch (event.type) {
                        case "text":
                            return chunk(index, {content: event.text},
                                {logprobs: logprobsWanted ? {content: toOpenAILogprobs(event.logprobs ?? [])} : null});
                        case "toolCall":
                            return chunk(index, {tool_calls: [{index: event.index, id: event.id, type: "function", function: {name: event.name, arguments: ""}}]});
                        case "toolCallArguments":
                            return chunk(index, {tool_calls: [{index: event.index, function: {arguments: event.text}}]});
                        case "done":
                            return {...chunk(index, {}, {finish_reason: event.finishReason}), ...(index === 0 ? {timings: toTimings(event.usage, event.timings)} : {})};
                    }
                },
                last: (usages) => includeUsage ? {...base, choices: [], usage: toOpenAIUsage(usages, true)} : undefined
            });
            return reply;
        }

        const choices = await collect(generations);
        const usages = choices.flatMap((choice) => choice.usage != null ? [choice.usage] : []);
        const first = choices[0]!;
        return {
            id,
            object: "chat.completion",
            created,
            model: body.model,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices: choices.map((choice, index) => ({
                index,
                message: {
                    role: "assistant",
                    content: choice.toolCalls.length > 0 && choice.content === "" ? null : choice.content,
                    refusal: null,
                    ...(choice.toolCalls.length > 0 ? {tool_calls: choice.toolCalls} : {})
                },
                logprobs: logprobsWanted ? {content: choice.logprobs, refusal: null} : null,
                finish_reason: choice.finishReason
            })),
            usage: toOpenAIUsage(usages, true),
            ...(first.usage != null && first.timings != null ? {timings: toTimings(first.usage, first.timings)} : {})
        };
    });
}
