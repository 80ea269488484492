import type {GenerationEvent, TokenLogprob} from "../types.js";

/**
 * Turns a reply's visible text into `text` and `reasoning` events, with the whitespace a format puts around
 * its segments left out: thinking loses its leading and trailing whitespace, and an answer that follows
 * thinking loses its leading whitespace (`</think>\n\n`), as llama-server returns them.
 */
export class ReplyText {
    readonly #withLogprobs: boolean;
    #logprobs: TokenLogprob[] = [];
    #reasoning = "";
    #content = "";
    #reasoningStarted = false;
    #heldWhitespace = "";
    #trimContentStart = false;

    constructor(withLogprobs: boolean) {
        this.#withLogprobs = withLogprobs;
    }

    content(text: string, logprob: TokenLogprob | undefined): GenerationEvent[] {
        if (logprob != null)
            this.#logprobs.push(logprob);
        if (this.#trimContentStart) {
            text = text.trimStart();
            if (text === "")
                return [];
            this.#trimContentStart = false;
        }
        if (text === "")
            return [];
        this.#content += text;
        const logprobs = this.#logprobs;
        this.#logprobs = [];
        return [{type: "text", text, ...(this.#withLogprobs ? {logprobs} : {})}];
    }

    reasoning(text: string): GenerationEvent[] {
        if (!this.#reasoningStarted) {
            text = text.trimStart();
            if (text === "")
                return [];
            this.#reasoningStarted = true;
        }
        const combined = this.#heldWhitespace + text;
        const body = combined.trimEnd();
        this.#heldWhitespace = combined.slice(body.length);
        if (body === "")
            return [];
        this.#reasoning += body;
        return [{type: "reasoning", text: body}];
    }

    /**
     * An item of the reply (a segment) ended: returns its thinking and its answer text. Trailing whitespace of
     * the thinking is dropped, and the answer after it starts at its first visible character.
     */
    endItem(): {reasoning: string, content: string} {
        const item = {reasoning: this.#reasoning, content: this.#content};
        this.#reasoning = "";
        this.#content = "";
        this.#heldWhitespace = "";
        this.#reasoningStarted = false;
        this.#trimContentStart = true;
        return item;
    }

    /** The reply ended: whitespace still held back belonged to nothing. */
    finish(): GenerationEvent[] {
        this.#heldWhitespace = "";
        return [];
    }
}
