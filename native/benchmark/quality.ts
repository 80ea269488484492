/**
 * Perplexity and KL divergence from next-token distributions, as llama.cpp's `llama-perplexity` reports them:
 * perplexity is exp of the mean negative log-probability of each actual next token; KLD is the mean, over the
 * same positions, of KL(reference || model) between the two models' full distributions.
 */

/** Natural-log probabilities of a full vocabulary from raw logits (a numerically stable log-softmax). */
export function logSoftmax(logits: Float32Array): Float32Array {
    let max = -Infinity;
    for (const value of logits)
        if (value > max)
            max = value;
    let sum = 0;
    for (const value of logits)
        sum += Math.exp(value - max);
    const logSum = max + Math.log(sum);
    const result = new Float32Array(logits.length);
    for (let index = 0; index < logits.length; index++)
        result[index] = logits[index]! - logSum;
    return result;
}

/** KL(p || q) in nats, for two full distributions given as log-probabilities. */
export function klDivergence(referenceLogProbs: Float32Array, logProbs: Float32Array): number {
    if (referenceLogProbs.length !== logProbs.length)
        throw new Error(`The models' vocabularies differ (${referenceLogProbs.length} and ${logProbs.length} tokens): KL divergence needs the same tokenizer`);
    let sum = 0;
    for (let index = 0; index < referenceLogProbs.length; index++) {
        const logP = referenceLogProbs[index]!;
        if (logP > -80)
            sum += Math.exp(logP) * (logP - logProbs[index]!);
    }
    return Math.max(0, sum);
}

/** Running totals over scored positions. */
export class QualityMeter {
    #negativeLogLikelihood = 0;
    #kld = 0;
    #positions = 0;

    /** One position: the model's log-probabilities, the token that came next, and the reference's, if any. */
    add(logProbs: Float32Array, nextToken: number, referenceLogProbs?: Float32Array): void {
        this.#negativeLogLikelihood -= logProbs[nextToken]!;
        if (referenceLogProbs != null)
            this.#kld += klDivergence(referenceLogProbs, logProbs);
        this.#positions++;
    }

    get positions(): number {
        return this.#positions;
    }

    get perplexity(): number {
        return Math.exp(this.#negativeLogLikelihood / this.#positions);
    }

    get kld(): number {
        return this.#kld / this.#positions;
    }
}
