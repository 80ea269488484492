/** What a shadow comparison reads from a reply: its final text (or embedding) and the tokens it reports. */
export type ReplyDigest = {text: string, embedding?: number[], completionTokens: number | undefined};

type Json = Record<string, unknown>;

/** Pieces of one reply's text from one JSON body or stream event, in the shapes of the APIs that routes serve. */
function textOf(value: Json): string {
    // Chat completions (whole, then a stream's delta), completions, the Responses API, Anthropic Messages, Ollama.
    const choice = (value.choices as Json[] | undefined)?.[0];
    if (choice != null) {
        const message = (choice.message ?? choice.delta) as Json | undefined;
        if (typeof message?.content === "string")
            return message.content;
        if (typeof choice.text === "string")
            return choice.text;
        return "";
    }
    if (value.type === "response.output_text.delta" && typeof value.delta === "string")
        return value.delta;
    if (value.object === "response" && typeof value.output_text === "string")
        return value.output_text;
    if (value.object === "response" && Array.isArray(value.output))
        return (value.output as Json[]).flatMap((item) => Array.isArray(item.content) ? item.content as Json[] : [])
            .map((part) => typeof part.text === "string" ? part.text : "").join("");
    if (value.type === "content_block_delta" && typeof (value.delta as Json | undefined)?.text === "string")
        return (value.delta as {text: string}).text;
    if (value.type === "message" && Array.isArray(value.content))
        return (value.content as Json[]).map((part) => typeof part.text === "string" ? part.text : "").join("");
    const ollamaMessage = value.message as Json | undefined;
    if (typeof ollamaMessage?.content === "string")
        return ollamaMessage.content;
    if (typeof value.response === "string")
        return value.response;
    return "";
}

function completionTokensOf(value: Json): number | undefined {
    const usage = (value.usage ?? (value.response as Json | undefined)?.usage ?? (value.message as Json | undefined)?.usage) as Json | undefined;
    const tokens = usage?.completion_tokens ?? usage?.output_tokens ?? value.eval_count;
    return typeof tokens === "number" ? tokens : undefined;
}

/**
 * The final text of a reply as it went to the client: a JSON body, server-sent events (OpenAI's, the Responses
 * API's named ones, Anthropic's) or Ollama's NDJSON lines, read after the reply ended. `contentType` may be empty.
 */
export function digestReply(body: string, contentType: string): ReplyDigest {
    const values: Json[] = [];
    const parse = (text: string) => {
        try {
            const value = JSON.parse(text) as unknown;
            if (value != null && typeof value === "object")
                values.push(value as Json);
        } catch {
            // `[DONE]` and anything else that is not JSON carries no text.
        }
    };
    // A hijacked stream's content type is not always readable from the response: the body says what it is too.
    if (/event-stream/i.test(contentType) || /^(data|event):/.test(body)) {
        for (const line of body.split(/\r?\n/))
            if (line.startsWith("data:"))
                parse(line.slice(5).trim());
    } else {
        parse(body);
        if (values.length === 0)
            for (const line of body.split("\n"))
                parse(line);
    }
    let text = "";
    let completionTokens: number | undefined;
    let embedding: number[] | undefined;
    // A Responses API stream ends with the whole response again: its deltas are the text, the last event is not added.
    const streamed = values.length > 1;
    for (const value of values) {
        if (!(streamed && value.type === "response.completed"))
            text += textOf(value);
        completionTokens = completionTokensOf(value) ?? completionTokens;
        const vector = ((value.data as Json[] | undefined)?.[0]?.embedding ?? (value.embeddings as unknown[] | undefined)?.[0] ?? value.embedding) as unknown;
        if (Array.isArray(vector) && vector.every((item) => typeof item === "number"))
            embedding = vector as number[];
    }
    return {text, completionTokens, ...embedding != null ? {embedding} : {}};
}

/**
 * How alike two replies are, from 0 to 1: the cosine of two embeddings, else the Dice coefficient of the two texts'
 * word bigrams (1 for equal texts, near 0 for unrelated ones). Cheap, linear in the texts' length.
 */
export function similarity(a: ReplyDigest, b: ReplyDigest): number {
    if (a.embedding != null && b.embedding != null && a.embedding.length === b.embedding.length && a.embedding.length > 0) {
        let dot = 0, normA = 0, normB = 0;
        for (let i = 0; i < a.embedding.length; i++) {
            dot += a.embedding[i]! * b.embedding[i]!;
            normA += a.embedding[i]! ** 2;
            normB += b.embedding[i]! ** 2;
        }
        return normA > 0 && normB > 0 ? Math.max(0, Math.min(1, dot / Math.sqrt(normA * normB))) : 0;
    }
    if (a.text === b.text)
        return 1;
    const bigrams = (text: string) => {
        const words = text.toLowerCase().split(/\s+/).filter(Boolean);
        const counts = new Map<string, number>();
        const units = words.length > 1 ? words.slice(1).map((word, index) => `${words[index]} ${word}`) : words;
        for (const unit of units)
            counts.set(unit, (counts.get(unit) ?? 0) + 1);
        return {counts, size: units.length};
    };
    const left = bigrams(a.text);
    const right = bigrams(b.text);
    if (left.size + right.size === 0)
        return 1;
    let shared = 0;
    for (const [unit, count] of left.counts)
        shared += Math.min(count, right.counts.get(unit) ?? 0);
    return 2 * shared / (left.size + right.size);
}

/** Whether two replies agree: the same final text (embeddings: a cosine of at least 0.999). */
export function agree(a: ReplyDigest, b: ReplyDigest): boolean {
    if (a.embedding != null && b.embedding != null)
        return similarity(a, b) >= 0.999;
    return a.text === b.text;
}
