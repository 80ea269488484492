import {readSseData} from "./readSseData.js";

/**
 * `hearth bench --server`: a load test of any OpenAI-compatible server (Hearth, Ollama's /v1, llama-server,
 * vLLM): `requests` streamed chat completions, `concurrency` at a time, each with the same prompt.
 */

export type LoadTestOptions = {
    /** The server's address, with or without `/v1`. */
    baseUrl: string,
    model: string,
    concurrency: number,
    requests: number,
    maxTokens: number,
    apiKey?: string,
    prompt?: string
};

export type LoadTestResult = {
    concurrency: number,
    requests: number,
    errors: number,
    /** The first error's message, to say what went wrong. */
    first_error: string | null,
    ttft_p50_ms: number,
    ttft_p95_ms: number,
    latency_p50_ms: number,
    latency_p95_ms: number,
    latency_p99_ms: number,
    /** Completion tokens of every successful request over the wall time of the whole level. */
    tokens_per_s: number,
    wall_ms: number
};

type Chunk = {choices?: {delta?: {content?: string | null}}[], usage?: {completion_tokens?: number} | null};

const DEFAULT_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle.";

/** Nearest-rank percentile of sorted values; 0 for none. */
export function percentile(sorted: readonly number[], fraction: number): number {
    if (sorted.length === 0)
        return 0;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))]!;
}

async function oneRequest(url: string, options: LoadTestOptions): Promise<{ttftMs: number, latencyMs: number, tokens: number}> {
    const started = performance.now();
    const response = await fetch(url, {
        method: "POST",
        headers: {"content-type": "application/json", ...options.apiKey != null ? {authorization: `Bearer ${options.apiKey}`} : {}},
        body: JSON.stringify({
            model: options.model, messages: [{role: "user", content: options.prompt ?? DEFAULT_PROMPT}],
            max_tokens: options.maxTokens, stream: true, stream_options: {include_usage: true}
        })
    });
    if (!response.ok || response.body == null)
        throw new Error(`HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
    let ttftMs: number | undefined;
    let contentChunks = 0;
    let usageTokens: number | undefined;
    for await (const data of readSseData(response.body)) {
        const chunk = data as Chunk;
        usageTokens = chunk.usage?.completion_tokens ?? usageTokens;
        if (chunk.choices?.[0]?.delta?.content) {
            contentChunks++;
            ttftMs ??= performance.now() - started;
        }
    }
    const latencyMs = performance.now() - started;
    return {ttftMs: ttftMs ?? latencyMs, latencyMs, tokens: usageTokens ?? contentChunks};
}

export async function loadTest(options: LoadTestOptions): Promise<LoadTestResult> {
    const base = options.baseUrl.replace(/\/+$/, "");
    const url = `${/\/v1$/.test(base) ? base : `${base}/v1`}/chat/completions`;
    const ttfts: number[] = [];
    const latencies: number[] = [];
    let tokens = 0;
    const errors: string[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({length: Math.min(options.concurrency, options.requests)}, async () => {
        while (next < options.requests) {
            next++;
            try {
                const result = await oneRequest(url, options);
                ttfts.push(result.ttftMs);
                latencies.push(result.latencyMs);
                tokens += result.tokens;
            } catch (error) {
                errors.push((error as Error).message);
            }
        }
    }));
    const wallMs = performance.now() - started;
    ttfts.sort((a, b) => a - b);
    latencies.sort((a, b) => a - b);
    return {
        concurrency: options.concurrency,
        requests: options.requests,
        errors: errors.length,
        first_error: errors[0] ?? null,
        ttft_p50_ms: percentile(ttfts, 0.5),
        ttft_p95_ms: percentile(ttfts, 0.95),
        latency_p50_ms: percentile(latencies, 0.5),
        latency_p95_ms: percentile(latencies, 0.95),
        latency_p99_ms: percentile(latencies, 0.99),
        tokens_per_s: tokens / (wallMs / 1000),
        wall_ms: wallMs
    };
}
