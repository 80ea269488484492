import {once} from "node:events";
import {createServer} from "node:http";
import type {Server, ServerResponse} from "node:http";
import type {AddressInfo} from "node:net";

/** Tiny OpenAI-compatible servers on loopback that go wrong in the ways a translated request must survive. */

/** A server that lists one model and then is gone: its port refuses connections. */
export async function vanishingUpstream(model: string): Promise<{url: string, server: Server}> {
    const server = createServer((request, response) => {
        response.writeHead(200, {"content-type": "application/json"});
        response.end(JSON.stringify({object: "list", data: [{id: model, object: "model", created: 1, owned_by: "gone"}]}));
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return {url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server};
}

export type TroubledUpstream = {url: string, server: Server, bodies: Record<string, unknown>[], closedEarly: number};

/**
 * An OpenAI-compatible server whose streams go wrong, by model: `qwen-error` sends a chunk then an error event,
 * `qwen-broken` a chunk then closes the connection, `qwen-slow` a chunk every 50 ms until the client goes away, and
 * `qwen-dialect` a reply as other servers write it (below).
 */
export async function troubledUpstream(): Promise<TroubledUpstream> {
    const chunk = (model: string, content: string) => `data: ${JSON.stringify({id: "x", object: "chat.completion.chunk", created: 1, model, choices: [{index: 0, delta: {content}, finish_reason: null}]})}\n\n`;
    const state: TroubledUpstream = {url: "", server: undefined as unknown as Server, bodies: [], closedEarly: 0};
    state.server = createServer((request, response) => {
        if (request.method === "GET") {
            response.writeHead(200, {"content-type": "application/json"});
            response.end(JSON.stringify({object: "list", data: ["qwen-error", "qwen-broken", "qwen-slow", "qwen-dialect"].map((id) => ({id, object: "model", created: 1, owned_by: "troubled"}))}));
            return;
        }
        let text = "";
        request.on("data", (data: Buffer) => text += data);
        request.on("end", () => {
            const body = JSON.parse(text) as {model: string};
            state.bodies.push(body);
            response.writeHead(200, {"content-type": "text/event-stream"});
            if (body.model === "qwen-dialect") {
                void writeDialect(response);
                return;
            }
            response.write(chunk(body.model, "Half a"));
            if (body.model === "qwen-error") {
                response.end(`data: ${JSON.stringify({error: {message: "the model crashed", type: "server_error"}})}\n\ndata: [DONE]\n\n`);
            } else if (body.model === "qwen-broken") {
                setTimeout(() => response.socket?.destroy(), 50);
            } else {
                const timer = setInterval(() => response.write(chunk(body.model, " more")), 50);
                response.once("close", () => {
                    clearInterval(timer);
                    if (!response.writableFinished)
                        state.closedEarly += 1;
                });
            }
        });
    });
    state.server.listen(0, "127.0.0.1");
    await once(state.server, "listening");
    state.url = `http://127.0.0.1:${(state.server.address() as AddressInfo).port}`;
    return state;
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
