/**
 * Text of a server-sent event stream that arrives in pieces, cut into whole lines: each {@link push} returns the
 * lines its piece completes (trimmed, so `\r\n` ends a line too), and the unfinished last line waits for the next.
 */
export class SseLines {
    #rest = "";

    push(text: string): string[] {
        const lines = (this.#rest + text).split("\n");
        this.#rest = lines.pop()!;
        return lines.map((line) => line.trim());
    }

    /** The unfinished last line so far, untrimmed. */
    get rest(): string {
        return this.#rest;
    }

    /** Takes the unfinished last line (at the stream's end), leaving none. */
    takeRest(): string {
        const rest = this.#rest;
        this.#rest = "";
        return rest;
    }
}
