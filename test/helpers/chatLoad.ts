import assert from "node:assert/strict";
import type OpenAI from "openai";
import {metricValue} from "./metrics.js";

/** A streamed request's end: how many chunks it got, and the error that ended it, if any. */
export type StreamOutcome = {chunks: number, error: Error | undefined};

export type ChatLoad = {plain: Promise<unknown>[], streams: Promise<StreamOutcome>[]};

/** 18 plain chat completions and 9 streamed ones of `request`, all started at once: the load an upstream is lost under. */
export function startChatLoad(client: OpenAI, request: OpenAI.ChatCompletionCreateParamsNonStreaming): ChatLoad {
    const plain = Array.from({length: 18}, () => client.chat.completions.create(request));
    const streams = Array.from({length: 9}, async (): Promise<StreamOutcome> => {
        let chunks = 0;
        try {
            for await (const chunk of await client.chat.completions.create({...request, stream: true})) {
                void chunk;
                chunks += 1;
            }
            return {chunks, error: undefined};
        } catch (error) {
            return {chunks, error: error as Error};
        }
    });
    return {plain, streams};
}

/**
 * What losing an upstream under {@link startChatLoad} may cost: no plain request, and only streams that had begun,
 * each ended by the error event (never a hang or a dropped connection). Returns how many streams broke.
 */
export async function assertLoadSurvived({plain, streams}: ChatLoad): Promise<number> {
    const plainResults = await Promise.allSettled(plain);
    assert.deepEqual(plainResults.filter((result) => result.status === "rejected").map((result) => String((result as PromiseRejectedResult).reason)), []);
    const outcomes = await Promise.all(streams);
    for (const {chunks, error} of outcomes)
        if (error != null) {
            assert.ok(chunks > 0, `a stream that had not begun failed: ${error.message}`);
            assert.equal(error.constructor.name, "APIError", error.message);
            assert.match(error.message, /stopped in the middle of its reply/);
        }
    return outcomes.filter((outcome) => outcome.error != null).length;
}

/** The requests that failed on `upstream`, for any reason, by the front's `/metrics` text. */
export function upstreamFailures(metrics: string, upstream: string): number {
    return ["unreachable", "stream_broken", "timeout", "invalid_reply", "server_error"]
        .reduce((sum, reason) => sum + (metricValue(metrics, "hearth_upstream_errors_total", {upstream, reason}) ?? 0), 0);
}
