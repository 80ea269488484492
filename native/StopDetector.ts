/**
 * Finds stop strings in streamed text and holds back any tail that could still become one,
 * so a stop string is never sent to the client, not even in part.
 */
export class StopDetector {
    readonly #stops: readonly string[];
    #pending = "";

    constructor(stops: readonly string[]) {
        this.#stops = stops.filter((stop) => stop.length > 0);
    }

    /**
     * Adds text; returns what is safe to emit, and the stop string when one was found
     * (the text from it on is dropped).
     */
    push(text: string): {text: string, stop: string | undefined} {
        this.#pending += text;
        let stopAt = -1;
        let found: string | undefined;
        for (const stop of this.#stops) {
            const index = this.#pending.indexOf(stop);
            if (index >= 0 && (stopAt < 0 || index < stopAt)) {
                stopAt = index;
                found = stop;
            }
        }
        if (found != null) {
            const emitted = this.#pending.slice(0, stopAt);
            this.#pending = "";
            return {text: emitted, stop: found};
        }
        const hold = this.#heldBackLength();
        const emitted = this.#pending.slice(0, this.#pending.length - hold);
        this.#pending = this.#pending.slice(this.#pending.length - hold);
        return {text: emitted, stop: undefined};
    }

    /** Releases held-back text at the end of generation (it did not become a stop string). */
    flush(): string {
        const rest = this.#pending;
        this.#pending = "";
        return rest;
    }

    #heldBackLength(): number {
        let longest = 0;
        for (const stop of this.#stops) {
            const max = Math.min(stop.length - 1, this.#pending.length);
            for (let length = max; length > longest; length--) {
                if (this.#pending.endsWith(stop.slice(0, length))) {
                    longest = length;
                    break;
                }
            }
        }
        return longest;
    }
}
