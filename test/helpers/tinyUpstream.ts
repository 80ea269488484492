import {once} from "node:events";
import {createServer} from "node:http";
import type {IncomingMessage, Server, ServerResponse} from "node:http";
import type {AddressInfo} from "node:net";

export type TinyUpstream = {url: string, server: Server, posts: number, close(): Promise<void>};

export type TinyHandler = (request: IncomingMessage, response: ServerResponse, body: Record<string, unknown>) => void;

/** A tiny OpenAI-compatible server on loopback that lists `models` and answers POSTs with `handler`. */
export async function tinyUpstream(models: string[], handler: TinyHandler): Promise<TinyUpstream> {
    const state = {posts: 0};
    const server = createServer((request, response) => {
        if (request.method === "GET" && request.url === "/v1/models") {
            response.writeHead(200, {"content-type": "application/json"});
            response.end(JSON.stringify({object: "list", data: models.map((id) => ({id, object: "model", created: 1, owned_by: "tiny"}))}));
            return;
        }
        let text = "";
        request.setEncoding("utf8");
        request.on("data", (chunk: string) => text += chunk);
        request.on("end", () => {
            state.posts += 1;
            handler(request, response, JSON.parse(text) as Record<string, unknown>);
        });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
        url, server,
        get posts() {
            return state.posts;
        },
        close: async () => {
            server.closeAllConnections();
            await new Promise((resolve) => server.close(resolve));
        }
    };
}
