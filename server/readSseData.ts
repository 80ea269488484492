/**
 * The JSON of each `data:` line of a server-sent event stream, as it arrives; `data: [DONE]` and other
 * lines are skipped. For clients of OpenAI-compatible servers (`hearth bench --server`, the benchmarks).
 */
export async function* readSseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<unknown> {
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const bytes of body) {
        buffer += decoder.decode(bytes, {stream: true});
        let end;
        while ((end = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, end).trim();
            buffer = buffer.slice(end + 1);
            if (line.startsWith("data:") && line !== "data: [DONE]")
                yield JSON.parse(line.slice(5));
        }
    }
}
