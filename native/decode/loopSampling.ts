import type {LlamaGrammarEvaluationState, LlamaModel, Token} from "node-llama-cpp";
import {draftGrammar, nativeGrammarState} from "../addonAccess.js";
import type {NativeSamplerConfig} from "../addonAccess.js";
import type {DraftSource} from "./Drafter.js";
import {penaltyWindow} from "./SlotDecoder.js";
import type {GenerateRequest, Sampled} from "./SlotDecoder.js";

// The JavaScript decode loop's sampling through node-llama-cpp's sampler: its settings, what it returns, and which of a
// draft it could pick at all.

/** What node-llama-cpp's sampler returns: a token (null when nothing could be sampled) and the candidates' probabilities when asked. */
export type RawSampled = {token: Token | null, probabilities?: Map<Token, number>};

/**
 * What of a draft the sampler could pick: the proposal cut before a token that the grammar or the banned tokens refuse or
 * that ends the generation.
 */
export function allowedDraft(model: LlamaModel, request: GenerateRequest, grammar: LlamaGrammarEvaluationState | undefined,
    proposal: {source: DraftSource, tokens: Token[]} | undefined): {source: DraftSource, tokens: Token[]} | undefined {
    if (proposal == null)
        return undefined;
    const check = grammar != null ? draftGrammar(model, grammar) : undefined;
    const banned = request.bannedTokens;
    let allowed = 0;
    for (const token of proposal.tokens) {
        // An end token is never drafted under a grammar, which only takes one where the reply may end.
        if (((!request.ignoreEos || check != null) && model.isEogToken(token)) || banned?.includes(token) === true)
            break;
        if (check != null && !check.take(token))
            break;
        allowed++;
    }
    return allowed > 0 ? {source: proposal.source, tokens: proposal.tokens.slice(0, allowed)} : undefined;
}

export function toRawSampled(value: number | [number, number[] | undefined] | null | undefined): RawSampled {
    if (value == null)
        return {token: null};
    if (typeof value === "number")
        return {token: value === -1 ? null : value as Token};
    const [token, pairs] = value;
    const probabilities = new Map<Token, number>();
    for (let index = 1; index < (pairs?.length ?? 0); index += 2)
        probabilities.set(pairs![index - 1] as Token, pairs![index]!);
    return {token: token === -1 ? null : token as Token, probabilities};
}

/** node-llama-cpp's probabilities (its candidates, likeliest first) as log probabilities. */
export function toSampled(token: Token, probabilities: Map<Token, number> | undefined, top: number | undefined): Sampled {
    if (probabilities == null || top == null)
        return {token};
    return {
        token,
        logprob: Math.log(probabilities.get(token) ?? 0),
        top: [...probabilities].slice(0, top).map(([candidate, probability]) => [candidate, Math.log(probability)] as const)
    };
}

/**
 * The sampler's settings for the next token, after `more` tokens not yet in the generation's history (a draft's, while
 * it is verified); with penalties, they change as tokens are generated.
 */
export function samplerConfig(request: GenerateRequest, grammar: LlamaGrammarEvaluationState | undefined,
    history: (more: readonly Token[]) => Token[]): (more: readonly Token[]) => NativeSamplerConfig {
    const {sampling, bannedTokens} = request;
    const penalized = sampling.repeatPenalty != null || sampling.presencePenalty != null || sampling.frequencyPenalty != null;
    const fixed: NativeSamplerConfig = {
        temperature: sampling.temperature ?? 0.8,
        topK: sampling.topK ?? 40,
        topP: sampling.topP ?? 0.95,
        minP: sampling.minP ?? 0.05,
        seed: sampling.seed ?? 0,
        ...(grammar != null ? {grammarEvaluationState: nativeGrammarState(grammar)} : {}),
        ...(bannedTokens != null && bannedTokens.length > 0
            ? {tokenBiasKeys: bannedTokens, tokenBiasValues: new Float32Array(bannedTokens.length).fill(-Infinity)}
            : {})
    };
    if (!penalized)
        return () => fixed;
    return (more) => {
        const tokens = history(more);
        return {
            ...fixed,
            repeatPenalty: sampling.repeatPenalty ?? 1,
            repeatPenaltyMaxTokens: Math.max(penaltyWindow, tokens.length),
            repeatPenaltyTokens: Uint32Array.from(tokens),
            repeatPenaltyPresencePenalty: sampling.presencePenalty ?? 0,
            repeatPenaltyFrequencyPenalty: sampling.frequencyPenalty ?? 0
        };
    };
}
