import assert from "node:assert/strict";
import {connect} from "node:net";
import {describe, it} from "node:test";
import {useTestServer} from "./helpers/testServer.js";

/** A streamed POST's body as the HTTP/1.1 chunks it was sent in (each write of the server's is one chunk). */
async function chunkFrames(baseURL: string, path: string, body: object): Promise<string[]> {
    const url = new URL(baseURL);
    const json = JSON.stringify(body);
    const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname);
        let received = "";
        socket.setEncoding("utf8");
        socket.on("data", (data: string) => {
            received += data;
            if (received.endsWith("\r\n0\r\n\r\n")) {
                socket.end();
                resolve(received);
            }
        });
        socket.on("error", reject);
        socket.write(`POST ${url.pathname}${path} HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\n\r\n${json}`);
    });
    assert.match(raw, /^HTTP\/1\.1 200/);
    assert.match(raw, /transfer-encoding: chunked/i);
    const frames: string[] = [];
    let rest = raw.slice(raw.indexOf("\r\n\r\n") + 4);
    for (;;) {
        const lineEnd = rest.indexOf("\r\n");
        const size = parseInt(rest.slice(0, lineEnd), 16);
        if (size === 0)
            return frames;
        // The chunk's size counts bytes; the SSE text here is ASCII (the story model's tokens are plain words).
        frames.push(rest.slice(lineEnd + 2, lineEnd + 2 + size));
        rest = rest.slice(lineEnd + 2 + size + 2);
    }
}

describe("streamed chunks on the wire", () => {
    const server = useTestServer();

    for (const [path, body] of [
        ["/completions", {prompt: "Once upon a time"}],
        ["/chat/completions", {messages: [{role: "user", content: "Once upon a time"}]}]
    ] as const)
        it(`${path}: the last chunks, the usage and [DONE] go in one write; every token's chunk is sent on its own as it comes`, async () => {
            const frames = await chunkFrames(server.baseURL, path, {
                model: "stories260K", ...body, max_tokens: 4, temperature: 0, stream: true, stream_options: {include_usage: true}
            });
            for (const frame of frames)
                assert.match(frame, /^(data: .*\n\n)+$/, "a frame holds whole events");
            const last = frames.at(-1)!;
            assert.ok(last.endsWith("data: [DONE]\n\n"));
            assert.match(last, /"usage":\{[^}]*"completion_tokens":4/, "the usage chunk goes with [DONE]");
            const withText = frames.filter((frame) => /"(text|content)":"[^"]/.test(frame));
            assert.ok(withText.length >= 2, `tokens are not held back to be sent together (${withText.length} frames with text)`);
        });
});
