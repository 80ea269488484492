import type {FastifyInstance} from "fastify";
import {GenerationRun, answer, optionsForChoice} from "../generation/index.js";
import type {GenerationContext} from "../generation/index.js";
import {RUNS_ANY_MODEL} from "../routeConfig.js";
import {completionEncoder} from "./completionEncoder.js";
import {CompletionRequest} from "./schemas.js";
import {completionGenerationOptions, completionId} from "./translate.js";

function promptList(prompt: CompletionRequest["prompt"]): (string | number[])[] {
    if (typeof prompt === "string")
        return [prompt];
    if (prompt.every((item) => typeof item === "number"))
        return [prompt as number[]];
    return prompt as (string | number[])[];
}

export async function completionsRoutes(app: FastifyInstance, {generation}: {generation: GenerationContext}): Promise<void> {
    app.post<{Body: CompletionRequest}>("/v1/completions", {schema: {body: CompletionRequest}, ...RUNS_ANY_MODEL}, async (request, reply) => {
        const body = request.body;
        const options = completionGenerationOptions(body);
        const inputs = promptList(body.prompt);
        const n = body.n ?? 1;
        let echoed: string[] = [];
        // Generation i*n+j is the j-th completion of prompt i, as in OpenAI's API.
        const run = await GenerationRun.start(generation, reply, {
            model: body.model,
            inputs: (model) => {
                echoed = inputs.map((input) => !body.echo ? "" : typeof input === "string" ? input : model.detokenize(input));
                return inputs.flatMap((input) => {
                    const prompt = model.textPrompt(input);
                    return Array.from({length: n}, (_, index) => ({prompt, options: optionsForChoice(options, index), promptParam: "prompt"}));
                });
            }
        });
        const encoder = completionEncoder({
            id: completionId("cmpl"), created: Math.floor(Date.now() / 1000), model: body.model, n, generations: inputs.length * n,
            logprobs: options.logprobs != null, includeUsage: body.stream_options?.include_usage === true, stops: options.stop,
            echo: (index) => echoed[Math.floor(index / n)]!
        });
        return answer(run, reply, encoder, {stream: body.stream === true});
    });
}
