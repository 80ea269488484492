import type {LlamaModel, Token} from "node-llama-cpp";

const maxPendingTokens = 4;
const contextTokens = 8;

/**
 * Turns generated tokens into text one at a time. A UTF-8 character split across tokens is held
 * until it is complete, and each piece is decoded with the tokens before it so that SentencePiece's
 * leading-space rules give the same text as decoding everything at once.
 */
export class TokenTextDecoder {
    readonly #model: LlamaModel;
    #pending: Token[] = [];
    #previous: Token[] = [];

    constructor(model: LlamaModel, previousTokens: readonly Token[] = []) {
        this.#model = model;
        // An image's placeholders (negative) are no text.
        this.#previous = previousTokens.filter((token) => token >= 0).slice(-contextTokens);
    }

    push(token: Token): string {
        this.#pending.push(token);
        const text = this.#model.detokenize(this.#pending, true, this.#previous);
        if (text.endsWith("\uFFFD") && this.#pending.length < maxPendingTokens)
            return "";
        this.#previous = [...this.#previous, ...this.#pending].slice(-contextTokens);
        this.#pending = [];
        return text;
    }

    /** The text of one token in its place, for log probabilities. */
    tokenText(token: Token): string {
        return this.#model.detokenize([token], true, this.#previous);
    }
}
