/** A marker found in the text: which one, and where it starts and ends in the scanned text. */
export type FoundMarker = {marker: string, start: number, end: number};

/**
 * Reads a reply's text as it streams and finds markers in it (stop strings, segment and call delimiters),
 * holding back any tail that could still become one, so a marker never reaches a client, not even in part.
 * The text of special tokens (`<|channel|>`, `<|im_end|>`) is matched as markers but never emitted.
 * The caller asks with the markers that matter in its current state, since finding one may change them.
 */
export class MarkerScanner {
    #text = "";
    /** Where each special token's text lies in `#text`, in order. */
    #specials: [number, number][] = [];
    #cursor = 0;

    /** All the text pushed so far, special tokens included. */
    get text(): string {
        return this.#text;
    }

    push(text: string, special: boolean): void {
        if (special && text !== "")
            this.#specials.push([this.#text.length, this.#text.length + text.length]);
        this.#text += text;
    }

    /**
     * The visible text from where the last call stopped up to the first of `markers`, and that marker; without
     * one, up to where a marker could still begin (everything, when `flush`).
     */
    next(markers: readonly string[], flush = false): {text: string, found?: FoundMarker} {
        let found: FoundMarker | undefined;
        for (const marker of markers) {
            if (marker === "")
                continue;
            const start = this.#text.indexOf(marker, this.#cursor);
            if (start >= 0 && (found == null || start < found.start))
                found = {marker, start, end: start + marker.length};
        }
        if (found != null) {
            const text = this.#visible(this.#cursor, found.start);
            this.#cursor = found.end;
            return {text, found};
        }
        const end = flush ? this.#text.length : this.#text.length - this.#heldBackLength(markers);
        const text = this.#visible(this.#cursor, Math.max(this.#cursor, end));
        this.#cursor = Math.max(this.#cursor, end);
        return {text};
    }

    #visible(start: number, end: number): string {
        let out = "";
        let at = start;
        for (const [specialStart, specialEnd] of this.#specials) {
            if (specialEnd <= at)
                continue;
            if (specialStart >= end)
                break;
            out += this.#text.slice(at, Math.max(at, specialStart));
            at = Math.max(at, specialEnd);
        }
        if (at < end)
            out += this.#text.slice(at, end);
        return out;
    }

    #heldBackLength(markers: readonly string[]): number {
        const pending = this.#text.length - this.#cursor;
        let longest = 0;
        for (const marker of markers) {
            for (let length = Math.min(marker.length - 1, pending); length > longest; length--) {
                if (this.#text.endsWith(marker.slice(0, length))) {
                    longest = length;
                    break;
                }
            }
        }
        return longest;
    }
}
