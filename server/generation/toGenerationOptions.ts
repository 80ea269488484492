import {InvalidRequestError} from "../../native/errors.js";
import type {GenerationOptions, ReasoningOptions, ResponseFormat, SamplingOptions, ToolChoice, ToolDefinition} from "../../native/types.js";

/**
 * A generation's options as a request gives them, before the checks every API shares: each API's translation
 * fills this from its own schema (OpenAI's `tool_choice`, Ollama's `options.num_predict`, a conversation's
 * settings), and {@link toGenerationOptions} turns it into the engine's options the same way for all of them.
 */
export type RequestedGeneration = {
    maxTokens?: number,
    sampling: SamplingOptions,
    stop?: string | readonly string[],
    responseFormat?: ResponseFormat,
    /** `choice` defaults to `"auto"`, `parallel` to `true`. */
    tools?: {definitions: readonly ToolDefinition[], choice?: ToolChoice, parallel?: boolean},
    /**
     * What the request says about thinking, field by field (OpenAI clients may send `reasoning_effort` and
     * `chat_template_kwargs.enable_thinking` together); each names its field for errors. None: the model's default.
     */
    reasoning?: readonly {param: string, value: ReasoningOptions}[],
    logprobs?: {top: number},
    ignoreEos?: boolean,
    /** The reply as the client expects it (OpenAI's `prediction`). */
    prediction?: string
};

/** The request fields an error should name, in the API's own words. */
export type FieldNames = {responseFormat: string, tools: string, toolChoice: string};

/** The engine's options for one generation of a request; the pipeline adds its cancellation (`signal`, `deadline`). */
export type RequestOptions = Omit<GenerationOptions, "signal" | "deadline">;

/** Checks what a request asks for, whatever its API, and maps it to the engine's options. Throws a 400 naming the field. */
export function toGenerationOptions(requested: RequestedGeneration, names: FieldNames): RequestOptions {
    const stop = requested.stop == null ? [] : typeof requested.stop === "string" ? [requested.stop] : requested.stop;
    return {
        maxTokens: requested.maxTokens,
        sampling: requested.sampling,
        stop: stop.filter((item) => item.length > 0),
        ignoreEos: requested.ignoreEos,
        responseFormat: requested.responseFormat,
        tools: toolOptions(requested, names),
        reasoning: reasoningOptions(requested.reasoning ?? []),
        logprobs: requested.logprobs,
        ...requested.prediction != null && requested.prediction !== "" ? {prediction: requested.prediction} : {}
    };
}

function toolOptions({tools, responseFormat}: RequestedGeneration, names: FieldNames): GenerationOptions["tools"] {
    const definitions = tools?.definitions ?? [];
    const choice = tools?.choice ?? "auto";
    if (typeof choice === "object" && !definitions.some((tool) => tool.name === choice.name))
        throw new InvalidRequestError(`${names.toolChoice} names the function "${choice.name}", which is not in ${names.tools}`, names.toolChoice);
    if (definitions.length === 0 && choice !== "auto" && choice !== "none")
        throw new InvalidRequestError(`${names.toolChoice} requires ${names.tools}`, names.toolChoice);
    const seen = new Set<string>();
    for (const tool of definitions) {
        if (seen.has(tool.name))
            throw new InvalidRequestError(`${names.tools} has two functions named "${tool.name}"`, names.tools);
        seen.add(tool.name);
    }
    if (definitions.length > 0 && responseFormat != null && responseFormat.type !== "text" && choice !== "none")
        throw new InvalidRequestError(`${names.responseFormat} cannot be combined with ${names.tools}; drop one of them` +
            (names.toolChoice !== names.tools ? ` or set ${names.toolChoice} to "none"` : ""), names.responseFormat);
    return definitions.length > 0 ? {definitions, choice, parallel: tools?.parallel ?? true} : undefined;
}

/** One setting from all the fields that gave one; fields that disagree on whether to think are refused. */
function reasoningOptions(given: readonly {param: string, value: ReasoningOptions}[]): ReasoningOptions | undefined {
    const first = given[0];
    if (first == null)
        return undefined;
    const conflicting = given.find((entry) => entry.value.enabled !== first.value.enabled);
    if (conflicting != null)
        throw new InvalidRequestError(
            `${first.param} ${first.value.enabled ? "turns thinking on" : "turns thinking off"} but ${conflicting.param} ${conflicting.value.enabled ? "turns it on" : "turns it off"}; send one of them`,
            conflicting.param);
    const effort = given.find((entry) => entry.value.effort != null)?.value.effort;
    return effort != null ? {enabled: first.value.enabled, effort} : {enabled: first.value.enabled};
}

/** Each choice gets its own seed (seed + index), so `n` choices differ and a request is still repeatable. */
export function optionsForChoice(options: RequestOptions, index: number): RequestOptions {
    const seed = options.sampling.seed;
    return seed == null || index === 0 ? options : {...options, sampling: {...options.sampling, seed: seed + index}};
}

/** An effort level as OpenAI's and Anthropic's APIs spell it. */
export type ReasoningEffort = "none" | "minimal" | "low" | "medium" | "high" | "xhigh" | "max";

/** `reasoning_effort` in the engine's terms: "none" turns thinking off; "minimal" is as low as these models go, "xhigh" and "max" as high. */
export function reasoningForEffort(effort: ReasoningEffort): ReasoningOptions {
    switch (effort) {
        case "none":
            return {enabled: false};
        case "minimal":
        case "low":
            return {enabled: true, effort: "low"};
        case "medium":
            return {enabled: true, effort: "medium"};
        case "high":
        case "xhigh":
        case "max":
            return {enabled: true, effort: "high"};
    }
}
