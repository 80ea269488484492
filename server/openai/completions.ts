import type {FastifyInstance} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {acquireModel} from "../acquireModel.js";
import type {Generation, Prompt} from "../../native/LoadedModel.js";
import type {FinishReason, TokenLogprob, Usage} from "../../native/types.js";
import {mergeGenerations, startAll} from "../mergeGenerations.js";
import {clientAbortSignal} from "../sse.js";
import {optionsForChoice} from "./chatCompletions.js";
import {CompletionRequest} from "./schemas.js";
import {streamEvents} from "./streamEvents.js";
import {SYSTEM_FINGERPRINT, completionGenerationOptions, completionId, toOpenAIUsage} from "./translate.js";
import {RUNS_MODEL} from "../routeConfig.js";

/** The legacy completions log-probability shape: parallel arrays and one `{token: logprob}` map per token. */
type LegacyLogprobs = {tokens: string[], token_logprobs: number[], top_logprobs: Record<string, number>[], text_offset: number[]};

function appendLogprobs(target: LegacyLogprobs, logprobs: readonly TokenLogprob[], textOffset: number): void {
    let offset = textOffset;
    for (const entry of logprobs) {
        target.tokens.push(entry.token);
        target.token_logprobs.push(entry.logprob);
        target.top_logprobs.push(Object.fromEntries(entry.topLogprobs.map((top) => [top.token, top.logprob])));
        target.text_offset.push(offset);
        offset += entry.token.length;
    }
}

const emptyLogprobs = (): LegacyLogprobs => ({tokens: [], token_logprobs: [], top_logprobs: [], text_offset: []});

function promptList(prompt: CompletionRequest["prompt"]): (string | number[])[] {
    if (typeof prompt === "string")
        return [prompt];
    if (prompt.every((item) => typeof item === "number"))
        return [prompt as number[]];
    return prompt as (string | number[])[];
}

export async function completionsRoutes(app: FastifyInstance, {engine}: {engine: Engine}): Promise<void> {
    app.post<{Body: CompletionRequest}>("/v1/completions", {schema: {body: CompletionRequest}, ...RUNS_MODEL}, async (request, reply) => {
        const body = request.body;
        const model = await acquireModel(engine, reply, body.model);
        const signal = clientAbortSignal(reply);
        const options = {...completionGenerationOptions(body, signal), deadline: request.deadline};
        const inputs = promptList(body.prompt);
        const prompts: Prompt[] = inputs.map((input) => model.textPrompt(input));
        const n = body.n ?? 1;
        // Choice i*n+j is the j-th completion of prompt i, as in OpenAI's API.
        const generations: Generation[] = await startAll(prompts.length * n,
            (index) => model.start(prompts[Math.floor(index / n)]!, optionsForChoice(options, index % n), "prompt"));

        const echoText = (index: number) => {
            if (!body.echo)
                return "";
            const input = inputs[Math.floor(index / n)]!;
            return typeof input === "string" ? input : model.detokenize(input);
        };
        const id = completionId("cmpl");
        const created = Math.floor(Date.now() / 1000);
        const base = {id, object: "text_completion", created, model: body.model, system_fingerprint: SYSTEM_FINGERPRINT};
        const logprobsWanted = options.logprobs != null;

        if (body.stream) {
            const includeUsage = body.stream_options?.include_usage === true;
            const offsets = generations.map((_, index) => echoText(index).length);
            const chunk = (index: number, text: string, finishReason: FinishReason | null, logprobs: LegacyLogprobs | null) => ({
                ...base,
                choices: [{index, text, logprobs, finish_reason: finishReason}],
                ...(includeUsage ? {usage: null} : {})
            });
            await streamEvents(reply, generations, {
                first: body.echo ? (index) => chunk(index, echoText(index), null, null) : undefined,
                event: (index, event) => {
                    if (event.type === "text") {
                        const logprobs = logprobsWanted ? emptyLogprobs() : null;
                        if (logprobs != null)
                            appendLogprobs(logprobs, event.logprobs ?? [], offsets[index]!);
                        offsets[index]! += event.text.length;
                        return chunk(index, event.text, null, logprobs);
                    }
                    if (event.type === "done")
                        return chunk(index, "", event.finishReason, null);
                    return undefined;
                },
                last: (usages) => includeUsage ? {...base, choices: [], usage: toOpenAIUsage(usages, false)} : undefined
            });
            return reply;
        }

        const choices = generations.map((_, index) => ({
            text: echoText(index),
            logprobs: logprobsWanted ? emptyLogprobs() : null,
            finishReason: "stop" as FinishReason,
            usage: undefined as Usage | undefined
        }));
        for await (const {index, event} of mergeGenerations(generations)) {
            const choice = choices[index]!;
            if (event.type === "text") {
                if (choice.logprobs != null)
                    appendLogprobs(choice.logprobs, event.logprobs ?? [], choice.text.length);
                choice.text += event.text;
            } else if (event.type === "done") {
                choice.finishReason = event.finishReason;
                choice.usage = event.usage;
            }
        }
        // Prompts are counted once each, however many choices they have.
        const usages = choices.flatMap((choice, index) => choice.usage != null && index % n === 0 ? [choice.usage] : []);
        const completionTokens = choices.reduce((sum, choice) => sum + (choice.usage?.completionTokens ?? 0), 0);
        const usage = toOpenAIUsage(usages, false);
        return {
            ...base,
            choices: choices.map((choice, index) => ({index, text: choice.text, logprobs: choice.logprobs, finish_reason: choice.finishReason})),
            usage: {...usage, completion_tokens: completionTokens, total_tokens: usage.prompt_tokens + completionTokens}
        };
    });
}
