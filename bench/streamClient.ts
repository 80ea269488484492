/**
 * The benchmarks' client: streamed `/v1/completions` requests read as raw SSE, so the client costs as
 * little as possible and any OpenAI-compatible server can be measured the same way.
 */
import {readSseData} from "../server/readSseData.js";

export type StreamResult = {
    tokens: number,
    /** From sending the request to the first piece of text. */
    ttftMs: number,
    /** (tokens - 1) / (last text - first text): decoding alone, without prompt evaluation. */
    decodeTokensPerSecond: number,
    wallMs: number
};

export type ConcurrentResult = {aggregate: number, perStream: StreamResult[]};

type Chunk = {choices?: {text?: string}[], usage?: {completion_tokens: number} | null, timings?: {predicted_n?: number}};

/**
 * POSTs a streaming request and returns its body and when it was sent. A kept-alive connection that the server closed
 * while idle (llama-server closes them after 5 s) fails before any answer: the request never reached the server, so
 * it is sent again on a new connection.
 */
async function openStream(url: string, body: object): Promise<{start: number, stream: ReadableStream<Uint8Array>}> {
    const request = () => fetch(url, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    let start = performance.now();
    let response: Response;
    try {
        response = await request();
    } catch {
        start = performance.now();
        response = await request();
    }
    if (!response.ok || response.body == null)
        throw new Error(`HTTP ${response.status}: ${await response.text()}`);
    return {start, stream: response.body};
}

/** One streamed completion; its token count comes from `usage` (or llama-server's `timings`) in the last chunks. */
export async function streamCompletion(url: string, body: object): Promise<StreamResult> {
    const {start, stream} = await openStream(`${url}/v1/completions`, {...body, stream: true, stream_options: {include_usage: true}});
    let first = 0;
    let last = 0;
    let completionTokens: number | undefined;
    let textChunks = 0;
    for await (const data of readSseData(stream)) {
        const chunk = data as Chunk;
        completionTokens = chunk.usage?.completion_tokens ?? chunk.timings?.predicted_n ?? completionTokens;
        if (chunk.choices?.[0]?.text) {
            textChunks++;
            last = performance.now();
            if (first === 0)
                first = last;
        }
    }
    const tokens = completionTokens ?? textChunks;
    return {tokens, ttftMs: first - start, decodeTokensPerSecond: (tokens - 1) / ((last - first) / 1000), wallMs: last - start};
}

/** `streams` identical requests at once; aggregate tokens/s is every stream's tokens over the wall time of all. */
export async function concurrentStreams(url: string, streams: number, body: object): Promise<ConcurrentResult> {
    const start = performance.now();
    const perStream = await Promise.all(Array.from({length: streams}, () => streamCompletion(url, body)));
    const wall = performance.now() - start;
    return {aggregate: perStream.reduce((sum, result) => sum + result.tokens, 0) / (wall / 1000), perStream};
}

export const best = <T>(items: readonly T[], key: (item: T) => number): T => items.reduce((a, b) => key(b) > key(a) ? b : a);
export const median = (values: readonly number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export type ChatStreamResult = {
    /** From sending the request to the first piece of the reply. */
    ttftMs: number,
    /** The reply's text, to compare servers' replies. */
    text: string,
    /** The server's own `timings`: prompt tokens evaluated, reused from the cache, and the time it took to evaluate them. */
    promptTokens?: number, cachedTokens?: number, promptMs?: number
};

type ChatChunk = {choices?: {delta?: {content?: string | null, reasoning_content?: string | null}}[], timings?: {prompt_n?: number, cache_n?: number, prompt_ms?: number}};

/** One streamed `/v1/chat/completions` request, read as raw SSE like {@link streamCompletion}. */
export async function streamChat(url: string, body: object): Promise<ChatStreamResult> {
    const {start, stream} = await openStream(`${url}/v1/chat/completions`, {...body, stream: true});
    let first = 0;
    let text = "";
    let timings: ChatChunk["timings"];
    for await (const data of readSseData(stream)) {
        const chunk = data as ChatChunk;
        timings = chunk.timings ?? timings;
        const delta = chunk.choices?.[0]?.delta;
        const piece = (delta?.reasoning_content ?? "") + (delta?.content ?? "");
        if (piece !== "") {
            if (first === 0)
                first = performance.now();
            text += delta?.content ?? "";
        }
    }
    return {ttftMs: first - start, text, promptTokens: timings?.prompt_n, cachedTokens: timings?.cache_n, promptMs: timings?.prompt_ms};
}
