import {SseLines} from "./SseLines.js";

/**
 * The JSON of each `data:` line of a server-sent event stream, as it arrives; `data: [DONE]` and other
 * lines are skipped. For clients of OpenAI-compatible servers (`hearth bench --server`, the benchmarks).
 */
export async function* readSseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<unknown> {
    const lines = new SseLines();
    const decoder = new TextDecoder();
    for await (const bytes of body)
        for (const line of lines.push(decoder.decode(bytes, {stream: true})))
            if (line.startsWith("data:") && line !== "data: [DONE]")
                yield JSON.parse(line.slice(5));
}
