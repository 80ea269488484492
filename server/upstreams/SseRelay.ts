/** The token counts a reply reports, in OpenAI's chat/completions naming or the Responses API's. */
export type ReportedUsage = {promptTokens: number, completionTokens: number};

const BLANK_LINE = Buffer.from("\n\n");
const BLANK_LINE_CRLF = Buffer.from("\r\n\r\n");
const CR = 0x0d;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const EMPTY = Buffer.alloc(0);
const EVENT_FIELD = Buffer.from("event:");
const EVENT_LINE = /^event:/m;
const USAGE_KEY = Buffer.from('"usage"');
const USAGE = /"usage"\s*:\s*\{/;
const SEQUENCE_NUMBER = Buffer.from('"sequence_number"');
const SEQUENCE_VALUE = /^"sequence_number"\s*:\s*(\d+)/;
/** An event longer than this is not server-sent events as an API writes them; it is not held in memory any longer. */
export const MAX_EVENT_BYTES = 8 * 1024 * 1024;

/** Usage in a reply body or event: `usage` at the top, or in the Responses API's `response`. */
export function usageOf(value: unknown): ReportedUsage | undefined {
    const object = value as {usage?: Record<string, unknown> | null, response?: {usage?: Record<string, unknown> | null}} | null;
    const usage = object?.usage ?? object?.response?.usage;
    if (usage == null || typeof usage !== "object")
        return undefined;
    const prompt = usage.prompt_tokens ?? usage.input_tokens;
    const completion = usage.completion_tokens ?? usage.output_tokens ?? 0;
    return typeof prompt === "number" && typeof completion === "number" ? {promptTokens: prompt, completionTokens: completion} : undefined;
}

/**
 * Passes server-sent events on as they come, whole events only: a chunk's unfinished last event waits for the
 * chunk that ends it, so an error event written after a break never lands in the middle of one. On the way it
 * notes the usage the stream reports, whether its events are named (the Responses API) and their last
 * `sequence_number`, so that error event can be written in the stream's own shape.
 */
export class SseRelay {
    usage: ReportedUsage | undefined;
    /** The start of an unfinished event, kept as it came (joined only once its end arrives). */
    #pending: Buffer[] = [];
    #pendingBytes = 0;
    #named = false;
    #lastSequence = -1;

    /** The bytes to send now for `chunk`: every event it completes. */
    push(chunk: Buffer): Buffer {
        if (this.#pending.length > 0 && !this.#endsEvent(chunk))
            return this.#hold(chunk);
        const data = this.#pending.length > 0 ? Buffer.concat([...this.#pending, chunk]) : chunk;
        const end = eventsEnd(data);
        if (end === 0)
            return this.#hold(chunk);
        const rest = data.subarray(end);
        this.#pending = rest.length > 0 ? [rest] : [];
        this.#pendingBytes = rest.length;
        const complete = end === data.length ? data : data.subarray(0, end);
        this.#inspect(complete);
        return complete;
    }

    #hold(chunk: Buffer): Buffer {
        this.#pendingBytes += chunk.length;
        if (this.#pendingBytes > MAX_EVENT_BYTES)
            throw new RangeError(`an event over ${MAX_EVENT_BYTES / 1024 / 1024} MiB`);
        this.#pending.push(chunk);
        return EMPTY;
    }

    /** What is left at the end of a stream that ended properly. */
    flush(): Buffer {
        const rest = Buffer.concat(this.#pending);
        this.#pending = [];
        this.#pendingBytes = 0;
        return rest;
    }

    /** Whether `chunk` ends an event: it has a blank line, or one begins in the bytes held before it. */
    #endsEvent(chunk: Buffer): boolean {
        if (chunk.includes(BLANK_LINE) || chunk.includes(BLANK_LINE_CRLF))
            return true;
        const last = this.#pending.at(-1);
        if (last == null)
            return false;
        const joint = Buffer.concat([last.subarray(Math.max(0, last.length - 3)), chunk.subarray(0, 3)]);
        return joint.includes(BLANK_LINE) || joint.includes(BLANK_LINE_CRLF);
    }

    /** An error event that ends a broken stream: OpenAI's `{"error": …}` chunk then `[DONE]`, or a named `error` event. */
    errorEvent(message: string, code: string): string {
        if (this.#named)
            return `event: error\ndata: ${JSON.stringify({type: "error", code, message, param: null, sequence_number: this.#lastSequence + 1})}\n\n`;
        return `data: ${JSON.stringify({error: {message, type: "server_error", param: null, code}})}\n\ndata: [DONE]\n\n`;
    }

    /**
     * What the stream's whole events tell, read from their bytes: most events name no usage and (past the first) no
     * event type, so they are searched for a few fixed strings and decoded only when one is there.
     */
    #inspect(events: Buffer): void {
        if (!this.#named && events.includes(EVENT_FIELD) && EVENT_LINE.test(events.toString("utf8")))
            this.#named = true;
        this.#lastSequence = lastSequenceNumber(events) ?? this.#lastSequence;
        if (!hasUsageObject(events))
            return;
        for (const line of events.toString("utf8").split(/\r?\n/)) {
            if (!line.startsWith("data:") || !USAGE.test(line))
                continue;
            try {
                this.usage = usageOf(JSON.parse(line.slice(5))) ?? this.usage;
            } catch {
                // Not JSON: passed on as it came, and nothing is learned from it.
            }
        }
    }
}

/** Where the last whole event in `data` ends (after its blank line), or 0 when none ends in it. */
function eventsEnd(data: Buffer): number {
    const lf = data.lastIndexOf(BLANK_LINE);
    // A CRLF blank line ending after the last LF one can only be there when the stream writes CR at all.
    const crlf = data.lastIndexOf(CR) > lf ? data.lastIndexOf(BLANK_LINE_CRLF) : -1;
    return Math.max(lf >= 0 ? lf + 2 : 0, crlf >= 0 ? crlf + 4 : 0);
}

/** The value of the last `"sequence_number": N` in `events`, if any. */
function lastSequenceNumber(events: Buffer): number | undefined {
    for (let at = events.lastIndexOf(SEQUENCE_NUMBER); at >= 0; at = at > 0 ? events.lastIndexOf(SEQUENCE_NUMBER, at - 1) : -1) {
        const match = SEQUENCE_VALUE.exec(events.toString("utf8", at));
        if (match != null)
            return Number(match[1]);
    }
    return undefined;
}

/**
 * Whether `events` hold `"usage": {` with JSON's white space (what {@link USAGE} finds where JSON.parse can then read
 * it), found without decoding them: most events say `"usage":null`, or nothing of usage.
 */
function hasUsageObject(events: Buffer): boolean {
    for (let at = events.indexOf(USAGE_KEY); at >= 0; at = events.indexOf(USAGE_KEY, at + 1)) {
        let next = skipSpace(events, at + USAGE_KEY.length);
        if (events[next] !== COLON)
            continue;
        next = skipSpace(events, next + 1);
        if (events[next] === OPEN_BRACE)
            return true;
    }
    return false;
}

/** The index of the first byte at or after `from` that is not ASCII white space. */
function skipSpace(bytes: Buffer, from: number): number {
    let index = from;
    while (index < bytes.length && (bytes[index] === 0x20 || (bytes[index]! >= 0x09 && bytes[index]! <= 0x0d)))
        index++;
    return index;
}
