import {readGgufFileInfo} from "node-llama-cpp";

/** Vocabularies may differ by this many tokens (added special tokens), as llama.cpp's server allows for `-md`. */
const MOST_SIZE_DIFFERENCE = 128;
/** The first ids, control tokens that some conversions number differently, are not compared (as llama.cpp's server). */
const FIRST_COMPARED_TOKEN = 5;

type Vocabulary = {type: unknown, bos: unknown, eos: unknown, addBos: unknown, addEos: unknown, tokens: readonly string[]};

async function vocabularyOf(path: string): Promise<Vocabulary> {
    const {metadata} = await readGgufFileInfo(path, {readTensorInfo: false, logWarnings: false, ignoreKeys: ["tokenizer.ggml.scores", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"]});
    const tokenizer = metadata.tokenizer?.ggml;
    return {
        type: tokenizer?.model, bos: tokenizer?.bos_token_id, eos: tokenizer?.eos_token_id,
        addBos: tokenizer?.add_bos_token, addEos: tokenizer?.add_eos_token, tokens: tokenizer?.tokens ?? []
    };
}

/**
 * Why a draft model's tokens cannot stand for the same text in its target's vocabulary, or undefined when they can:
 * the checks llama.cpp's server makes for `-md`, on the two GGUF headers (tokenizer type, BOS and EOS tokens and whether
 * they are added, a size within a small difference, and the text of every token both have past the first few). The
 * native decode loop checks the loaded vocabularies again in the same way (native/addon/draftModel.cpp).
 */
export async function draftVocabularyMismatch(targetPath: string, draftPath: string): Promise<string | undefined> {
    const [target, draft] = await Promise.all([vocabularyOf(targetPath), vocabularyOf(draftPath)]);
    if (target.type !== draft.type)
        return `its tokenizer is ${String(draft.type)}, the model's ${String(target.type)}`;
    if (target.bos !== draft.bos || target.eos !== draft.eos || target.addBos !== draft.addBos || target.addEos !== draft.addEos)
        return `its BOS/EOS tokens differ (BOS ${String(draft.bos)}, EOS ${String(draft.eos)}; the model's ${String(target.bos)} and ${String(target.eos)}), or whether they are added`;
    if (target.tokens.length === 0 || draft.tokens.length === 0)
        return "a vocabulary is missing from the file's header";
    if (Math.abs(target.tokens.length - draft.tokens.length) > MOST_SIZE_DIFFERENCE)
        return `its vocabulary has ${draft.tokens.length} tokens, the model's ${target.tokens.length} (at most ${MOST_SIZE_DIFFERENCE} apart)`;
    const common = Math.min(target.tokens.length, draft.tokens.length);
    for (let token = FIRST_COMPARED_TOKEN; token < common; token++)
        if (target.tokens[token] !== draft.tokens[token])
            return `its token ${token} is ${JSON.stringify(draft.tokens[token])}, the model's ${JSON.stringify(target.tokens[token])}`;
    return undefined;
}
