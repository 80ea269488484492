import type {LlamaModel, Token} from "node-llama-cpp";

/**
 * The tokens of a model's vocabulary that are markup, not text: control tokens (`<|im_start|>`), added tokens a format
 * uses as syntax (gpt-oss's `<|constrain|>` and `<|message|>`, Qwen's `<tool_call>`, Gemma's `<|"|>`: llama.cpp marks
 * them user-defined, not control), and unknown and unused ones. End-of-generation tokens are left out: a grammar allows
 * them only once it is complete, and a finished grammar must still be able to end.
 *
 * llama.cpp's grammar matches a token by its text, so a JSON string's character class takes `<|constrain|>` as the
 * thirteen characters it prints as; banning these tokens where a grammar holds keeps them out of names and arguments.
 * Their text can still be written with ordinary tokens, which is then what the model meant.
 */
export function markupTokens(model: LlamaModel): Uint32Array {
    const tokens: Token[] = [];
    for (const token of model.iterateAllTokens()) {
        const attributes = model.getTokenAttributes(token);
        if ((attributes.control || attributes.userDefined || attributes.unknown || attributes.unused) && !model.isEogToken(token))
            tokens.push(token);
    }
    return Uint32Array.from(tokens);
}
