import {createServer} from "node:http";
import type {Server} from "node:http";
import type {AddressInfo} from "node:net";
import {pathToFileURL} from "node:url";
import {McpServer} from "@modelcontextprotocol/sdk/server/mcp.js";
import {StdioServerTransport} from "@modelcontextprotocol/sdk/server/stdio.js";
import {StreamableHTTPServerTransport} from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import {z} from "zod";

/**
 * A real MCP server, written with the SDK, for the tests: `get_weather` answers, `crash` exits in the middle of
 * its call, `hang` never answers, `fail` returns an error result. Run as a script it serves stdio; `startHttpToolServer`
 * serves the same tools over Streamable HTTP on a loopback port.
 */
export function toolServer(): McpServer {
    const server = new McpServer({name: "hearth-test-tools", version: "1.0.0"});
    server.registerTool("get_weather", {description: "The weather in a city", inputSchema: {city: z.string()}},
        async ({city}) => ({content: [{type: "text", text: `Sunny and 21 °C in ${city}`}]}));
    server.registerTool("crash", {description: "Exits while answering"}, async () => process.exit(3));
    server.registerTool("hang", {description: "Never answers"}, () => new Promise<never>(() => undefined));
    server.registerTool("fail", {description: "Returns an error result"},
        async () => ({content: [{type: "text", text: "The weather service is down"}], isError: true}));
    return server;
}

/** The same tools over Streamable HTTP, stateless: one server and transport per request, as the SDK's examples do. */
export async function startHttpToolServer(): Promise<{url: string, close(): Promise<void>, headersSeen: Array<string | undefined>}> {
    const headersSeen: Array<string | undefined> = [];
    const http: Server = createServer((request, response) => {
        headersSeen.push(request.headers.authorization);
        const server = toolServer();
        const transport = new StreamableHTTPServerTransport({sessionIdGenerator: undefined});
        response.on("close", () => {
            void transport.close();
            void server.close();
        });
        void server.connect(transport).then(() => transport.handleRequest(request, response));
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const {port} = http.address() as AddressInfo;
    return {
        url: `http://127.0.0.1:${port}/mcp`,
        headersSeen,
        close: () => new Promise((resolve) => {
            http.closeAllConnections();
            http.close(() => resolve());
        })
    };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href)
    await toolServer().connect(new StdioServerTransport());
