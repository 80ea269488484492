import {readSseData} from "../server/readSseData.js";

/** One streamed greedy `/v1/completions` reply as `npm run bench:spec` measures it, on Hearth or llama-server alike. */
export type SpecReply = {
    text: string,
    tokens: number,
    promptTokens?: number,
    /** From sending the request to the first piece of text. */
    ttftMs: number,
    /** (tokens - 1) / (last text - first text): decoding alone, which is what drafting changes. */
    decodeTokensPerSecond: number,
    /** Drafted tokens and those of them kept: Hearth's prediction counts, or llama-server's `timings.draft_n*`. */
    drafted?: number, accepted?: number
};

type Chunk = {
    choices?: {text?: string}[],
    usage?: {completion_tokens: number, prompt_tokens?: number, completion_tokens_details?: {accepted_prediction_tokens?: number, rejected_prediction_tokens?: number}} | null,
    timings?: {predicted_n?: number, draft_n?: number, draft_n_accepted?: number}
};

export async function specReply(url: string, body: object): Promise<SpecReply> {
    const request = () => fetch(`${url}/v1/completions`, {
        method: "POST", headers: {"content-type": "application/json"},
        body: JSON.stringify({...body, stream: true, stream_options: {include_usage: true}})
    });
    let start = performance.now();
    // llama-server closes idle kept-alive connections: a request that failed before any answer never arrived.
    const response = await request().catch(() => (start = performance.now(), request()));
    if (!response.ok || response.body == null)
        throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    let first = 0;
    let last = 0;
    let text = "";
    let pieces = 0;
    let usage: Chunk["usage"];
    let timings: Chunk["timings"];
    for await (const data of readSseData(response.body)) {
        const chunk = data as Chunk;
        usage = chunk.usage ?? usage;
        timings = chunk.timings ?? timings;
        const piece = chunk.choices?.[0]?.text;
        if (piece) {
            text += piece;
            pieces++;
            last = performance.now();
            if (first === 0)
                first = last;
        }
    }
    const tokens = usage?.completion_tokens ?? timings?.predicted_n ?? pieces;
    const details = usage?.completion_tokens_details;
    const drafts = details?.accepted_prediction_tokens != null
        ? {drafted: details.accepted_prediction_tokens + (details.rejected_prediction_tokens ?? 0), accepted: details.accepted_prediction_tokens}
        : timings?.draft_n != null ? {drafted: timings.draft_n, accepted: timings.draft_n_accepted ?? 0} : {};
    return {text, tokens, promptTokens: usage?.prompt_tokens, ttftMs: first - start, decodeTokensPerSecond: (tokens - 1) / ((last - first) / 1000), ...drafts};
}

/** The share of the reply's 16-character spans that occur in `source`: how much of a reply repeats it. */
export function repeatedShare(reply: string, source: string): number {
    const span = 16;
    let found = 0;
    let total = 0;
    for (let at = 0; at + span <= reply.length; at += span, total++)
        if (source.includes(reply.slice(at, at + span)))
            found++;
    return total === 0 ? 0 : found / total;
}
