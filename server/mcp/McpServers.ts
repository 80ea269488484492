import {Client} from "@modelcontextprotocol/sdk/client/index.js";
import {SSEClientTransport} from "@modelcontextprotocol/sdk/client/sse.js";
import {StdioClientTransport, getDefaultEnvironment} from "@modelcontextprotocol/sdk/client/stdio.js";
import {StreamableHTTPClientTransport} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {DEFAULT_TOOL_TIMEOUT_SECONDS, isStdio, readConfigFile, writeConfigFile} from "./mcpConfig.js";
import type {McpConfigFile, McpServerConfig} from "./mcpConfig.js";

/** A tool a server offers, as its `tools/list` gives it. */
export type McpTool = {name: string, description?: string, inputSchema: Record<string, unknown>};
export type McpServerState = "starting" | "ready" | "failed" | "stopped";
export type McpServerStatus = {name: string, config: McpServerConfig, state: McpServerState, tools: McpTool[], error?: string, pid?: number};
/** What a tool call gives the model: the server's content, or an error it can read (a timeout, a crash, a refusal). */
export type McpToolResult = {content: Array<Record<string, unknown>>, isError: boolean, structuredContent?: Record<string, unknown>};

const CONNECT_TIMEOUT_MS = 30_000;

class Connection {
    state: McpServerState = "starting";
    tools: McpTool[] = [];
    error: string | undefined;
    private client: Client | undefined;
    private transport: StdioClientTransport | undefined;
    private closing = false;
    /** Every client made, connected or not: a failed SSE client would otherwise keep retrying, and a close during a start must reach it. */
    private readonly made: Client[] = [];
    readonly started: Promise<void>;

    constructor(readonly name: string, readonly config: McpServerConfig) {
        this.started = this.start();
    }

    get pid(): number | undefined {
        return this.transport?.pid ?? undefined;
    }

    private async start(): Promise<void> {
        try {
            this.client = await this.connect();
            const tools = [];
            let cursor: string | undefined;
            do {
                const page = await this.client.listTools(cursor != null ? {cursor} : {}, {timeout: CONNECT_TIMEOUT_MS});
                tools.push(...page.tools.map((tool) => ({name: tool.name, ...tool.description != null ? {description: tool.description} : {}, inputSchema: tool.inputSchema as Record<string, unknown>})));
                cursor = page.nextCursor;
            } while (cursor != null);
            if (this.closing)
                return;
            this.tools = tools;
            this.state = "ready";
        } catch (error) {
            if (!this.closing) {
                this.fail(`It did not start: ${(error as Error).message}`);
                // A stdio server that started but did not answer is not left running.
                await Promise.all(this.made.map((client) => client.close().catch(() => undefined)));
            }
        }
    }

    private async connect(): Promise<Client> {
        const config = this.config;
        const client = this.newClient();
        // A server that exits or drops the connection by itself is shown as failed; its tools are no longer offered.
        client.onclose = () => {
            if (!this.closing && this.state !== "failed")
                this.fail(this.state === "starting" ? "It exited while starting." : "It exited or closed the connection.");
        };
        if (isStdio(config)) {
            // Its stderr is its log, not Hearth's: kept out of Hearth's output.
            this.transport = new StdioClientTransport({command: config.command, args: config.args ?? [], env: {...getDefaultEnvironment(), ...config.env}, stderr: "ignore"});
            await client.connect(this.transport, {timeout: CONNECT_TIMEOUT_MS});
            return client;
        }
        const url = new URL(config.url);
        const requestInit = {headers: config.headers ?? {}};
        try {
            await client.connect(new StreamableHTTPClientTransport(url, {requestInit}), {timeout: CONNECT_TIMEOUT_MS});
            return client;
        } catch (error) {
            // Servers written before Streamable HTTP speak the older HTTP+SSE transport at the same URL.
            await client.close().catch(() => undefined);
            if (this.closing)
                throw error;
            const fallback = this.newClient();
            fallback.onclose = client.onclose;
            try {
                await fallback.connect(new SSEClientTransport(url, {requestInit}), {timeout: CONNECT_TIMEOUT_MS});
            } catch {
                await fallback.close().catch(() => undefined);
                throw error;
            }
            return fallback;
        }
    }

    private newClient(): Client {
        const client = new Client({name: "hearth", version: "1"});
        this.made.push(client);
        return client;
    }

    private fail(message: string): void {
        this.state = "failed";
        this.error = message;
        this.tools = [];
    }

    async call(tool: string, args: Record<string, unknown>, signal?: AbortSignal): Promise<McpToolResult> {
        await this.started;
        if (this.state !== "ready" || this.client == null)
            return errorResult(`The MCP server "${this.name}" is ${this.state}${this.error != null ? `: ${this.error}` : ""}`);
        const timeoutSeconds = this.config.timeout ?? DEFAULT_TOOL_TIMEOUT_SECONDS;
        try {
            const result = await this.client.callTool({name: tool, arguments: args}, undefined, {signal, timeout: timeoutSeconds * 1000});
            return {
                content: Array.isArray(result.content) ? result.content as Array<Record<string, unknown>> : [],
                isError: result.isError === true,
                ...result.structuredContent != null ? {structuredContent: result.structuredContent as Record<string, unknown>} : {}
            };
        } catch (error) {
            if (signal?.aborted === true)
                return errorResult(`The call to ${tool} was stopped.`);
            const message = (error as Error).message;
            return errorResult(/timed out/i.test(message)
                ? `The tool ${tool} on "${this.name}" did not answer within ${timeoutSeconds} s.`
                : `The tool ${tool} on "${this.name}" failed: ${message}`);
        }
    }

    async close(): Promise<void> {
        this.closing = true;
        this.state = "stopped";
        this.tools = [];
        // The SDK's close ends the child's stdin, then sends SIGTERM and SIGKILL to one that stays.
        await Promise.all(this.made.map((client) => client.close().catch(() => undefined)));
        await this.transport?.close().catch(() => undefined);
    }
}

function errorResult(text: string): McpToolResult {
    return {content: [{type: "text", text}], isError: true};
}

/**
 * The one owner of the MCP servers in `mcp.json`: it starts each enabled server when Hearth starts (in the
 * background, so a slow or broken one never delays listening, and its status and tools are known before the
 * first chat needs them), restarts a server whose entry changed, stops removed and disabled ones, and closes
 * every child process on shutdown. The file is read again before each answer, so `hearth mcp add` in a
 * terminal reaches a running server without a restart.
 */
export class McpServers {
    private config: McpConfigFile = {mcpServers: {}};
    private readonly connections = new Map<string, Connection>();
    private disposed = false;
    /** Changes run one at a time, so two requests never both start the same server. */
    private queue: Promise<unknown> = Promise.resolve();

    constructor(readonly home: string) {}

    /** Reads `mcp.json` and starts, restarts or stops servers to match it. */
    refresh(): Promise<void> {
        return this.serialized(async () => this.reconcile(await readConfigFile(this.home)));
    }

    /** Each configured server with its status and tools. */
    async list(): Promise<McpServerStatus[]> {
        await this.refresh();
        return Object.entries(this.config.mcpServers).map(([name, config]) => {
            const connection = this.connections.get(name);
            return {name, config, state: connection?.state ?? "stopped", tools: connection?.tools ?? [],
                ...connection?.error != null ? {error: connection.error} : {}, ...connection?.pid != null ? {pid: connection.pid} : {}};
        });
    }

    /** The enabled servers' tools, once each server has started or failed. */
    async listTools(): Promise<Array<{server: string, tool: McpTool}>> {
        await this.refresh();
        await Promise.all([...this.connections.values()].map((connection) => connection.started));
        return [...this.connections.values()].flatMap((connection) => connection.tools.map((tool) => ({server: connection.name, tool})));
    }

    /** Calls a tool; a timeout, a crash, a stopped call or an unknown server come back as an error result, never as an exception. */
    async callTool(server: string, tool: string, args: Record<string, unknown>, signal?: AbortSignal): Promise<McpToolResult> {
        const connection = this.connections.get(server);
        if (connection == null)
            return errorResult(`There is no enabled MCP server "${server}".`);
        return connection.call(tool, args, signal);
    }

    /** Adds or replaces one server's entry in `mcp.json`. */
    put(name: string, config: McpServerConfig): Promise<void> {
        return this.change((file) => ({mcpServers: {...file.mcpServers, [name]: config}}));
    }

    /** Removes a server; false if there was none by that name. */
    async remove(name: string): Promise<boolean> {
        let found = false;
        await this.change((file) => {
            found = name in file.mcpServers;
            const {[name]: _removed, ...rest} = file.mcpServers;
            return {mcpServers: rest};
        });
        return found;
    }

    /** Adds every server of another file (Claude Desktop's, Cursor's), replacing those of the same names. */
    import(servers: McpConfigFile): Promise<void> {
        return this.change((file) => ({mcpServers: {...file.mcpServers, ...servers.mcpServers}}));
    }

    /** Stops every server and its child process; idempotent. */
    async dispose(): Promise<void> {
        this.disposed = true;
        await this.serialized(async () => {
            await Promise.all([...this.connections.values()].map((connection) => connection.close()));
            this.connections.clear();
        });
    }

    private change(edit: (file: McpConfigFile) => McpConfigFile): Promise<void> {
        return this.serialized(async () => {
            const next = edit(await readConfigFile(this.home));
            await writeConfigFile(this.home, next);
            await this.reconcile(next);
        });
    }

    private async reconcile(next: McpConfigFile): Promise<void> {
        this.config = next;
        if (this.disposed)
            return;
        for (const [name, connection] of this.connections) {
            const wanted = next.mcpServers[name];
            if (wanted == null || wanted.disabled === true || JSON.stringify(wanted) !== JSON.stringify(connection.config)) {
                this.connections.delete(name);
                await connection.close();
            }
        }
        for (const [name, config] of Object.entries(next.mcpServers)) {
            if (config.disabled !== true && !this.connections.has(name))
                this.connections.set(name, new Connection(name, config));
        }
    }

    private serialized<T>(work: () => Promise<T>): Promise<T> {
        const run = this.queue.then(work, work);
        this.queue = run.catch(() => undefined);
        return run;
    }
}
