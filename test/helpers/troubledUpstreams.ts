import type {ServerResponse} from "node:http";
import {tinyUpstream} from "./tinyUpstream.js";
import type {TinyUpstream} from "./tinyUpstream.js";

/** Tiny OpenAI-compatible servers on loopback that go wrong in the ways a translated request must survive. */

/** A server that lists one model and then is gone: its port refuses connections. */
export async function vanishingUpstream(model: string): Promise<TinyUpstream> {
    return tinyUpstream([model], () => undefined);
}

export type TroubledUpstream = TinyUpstream & {bodies: Record<string, unknown>[], closedEarly: number};

/**
 * An OpenAI-compatible server whose streams go wrong, by model: `qwen-error` sends a chunk then an error event,
 * `qwen-broken` a chunk then closes the connection, `qwen-slow` a chunk every 50 ms until the client goes away,
 * `qwen-silent` nothing at all until the client goes away, and `qwen-dialect` a reply as other servers write it (below).
 */
export async function troubledUpstream(): Promise<TroubledUpstream> {
    const chunk = (model: string, content: string) => `data: ${JSON.stringify({id: "x", object: "chat.completion.chunk", created: 1, model, choices: [{index: 0, delta: {content}, finish_reason: null}]})}\n\n`;
    const seen = {bodies: [] as Record<string, unknown>[], closedEarly: 0};
    const tiny = await tinyUpstream(["qwen-error", "qwen-broken", "qwen-slow", "qwen-silent", "qwen-dialect"], (_request, response, body) => {
        const model = String(body.model);
        seen.bodies.push(body);
        if (model === "qwen-silent") {
            response.once("close", () => {
                seen.closedEarly += 1;
            });
            return;
        }
        response.writeHead(200, {"content-type": "text/event-stream"});
        if (model === "qwen-dialect") {
            void writeDialect(response);
            return;
        }
        response.write(chunk(model, "Half a"));
        if (model === "qwen-error") {
            response.end(`data: ${JSON.stringify({error: {message: "the model crashed", type: "server_error"}})}\n\ndata: [DONE]\n\n`);
        } else if (model === "qwen-broken") {
            setTimeout(() => response.socket?.destroy(), 50);
        } else {
            const timer = setInterval(() => response.write(chunk(model, " more")), 50);
            response.once("close", () => {
                clearInterval(timer);
                if (!response.writableFinished)
                    seen.closedEarly += 1;
            });
        }
    });
    return {
        url: tiny.url, server: tiny.server, close: tiny.close, bodies: seen.bodies,
        get posts() {
            return tiny.posts;
        },
        get closedEarly() {
            return seen.closedEarly;
        }
    };
}

/**
 * A reply in another server's dialect: thinking in `delta.reasoning` (vLLM's newer name), a call whose id and name
 * come first and its arguments in pieces, `finish_reason: "stop"` for it, the usage alone in a last chunk with no
 * choices, CRLF line ends, and a character split across two writes.
 */
async function writeDialect(response: ServerResponse): Promise<void> {
    const chunk = (choice: object | undefined, extra: object = {}) => `data: ${JSON.stringify({id: "d", object: "chat.completion.chunk", created: 1, model: "qwen-dialect", choices: choice != null ? [{index: 0, finish_reason: null, ...choice}] : [], ...extra})}\r\n\r\n`;
    const text = [
        chunk({delta: {role: "assistant", reasoning: "Thinking"}}),
        chunk({delta: {reasoning: " hard"}}),
        chunk({delta: {content: "Calling"}}),
        chunk({delta: {tool_calls: [{index: 0, id: "call_dialect", type: "function", function: {name: "get_weather", arguments: ""}}]}}),
        chunk({delta: {tool_calls: [{index: 0, function: {arguments: "{\"city\": "}}]}}),
        chunk({delta: {tool_calls: [{index: 0, function: {arguments: "\"Zürich\"}"}}]}}),
        chunk({delta: {}, finish_reason: "stop"}),
        chunk(undefined, {usage: {prompt_tokens: 11, completion_tokens: 7, total_tokens: 18, prompt_tokens_details: {cached_tokens: 4}}}),
        "data: [DONE]\r\n\r\n"
    ].join("");
    const bytes = Buffer.from(text);
    const split = bytes.indexOf(Buffer.from("ü")) + 1;
    response.write(bytes.subarray(0, split));
    await new Promise((resolve) => setTimeout(resolve, 20));
    response.end(bytes.subarray(split));
}
