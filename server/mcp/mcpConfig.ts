import {mkdir, readFile, rename, writeFile} from "node:fs/promises";
import path from "node:path";
import {InvalidRequestError} from "../../native/errors.js";

/**
 * `mcp.json` in the data folder, in the format Cursor and Claude Desktop use (`mcpServers`), so a file from
 * either can be copied in. Hearth adds two fields of its own to a server: `disabled` and `timeout` (seconds).
 */

/** A server Hearth starts as a child process and talks to over stdin/stdout. */
export type StdioServerConfig = {command: string, args?: string[], env?: Record<string, string>, disabled?: boolean, timeout?: number};
/** A server Hearth reaches over Streamable HTTP (falling back to SSE). */
export type UrlServerConfig = {url: string, headers?: Record<string, string>, disabled?: boolean, timeout?: number};
export type McpServerConfig = StdioServerConfig | UrlServerConfig;
export type McpConfigFile = {mcpServers: Record<string, McpServerConfig>};

/** A tool call that takes longer comes back as an error result. */
export const DEFAULT_TOOL_TIMEOUT_SECONDS = 30;
const NAME = /^[A-Za-z0-9][\w.-]{0,63}$/;

export function mcpConfigPath(home: string): string {
    return path.join(home, "mcp.json");
}

export function isStdio(config: McpServerConfig): config is StdioServerConfig {
    return "command" in config;
}

function stringRecord(value: unknown, field: string): Record<string, string> | undefined {
    if (value == null)
        return undefined;
    if (typeof value !== "object" || Array.isArray(value) || Object.values(value).some((item) => typeof item !== "string"))
        throw new InvalidRequestError(`${field} must be an object of strings`, field);
    return {...value as Record<string, string>};
}

/** Checks a server's name: it becomes part of tool names and of URLs, so it is kept short and plain. */
export function checkServerName(name: string): string {
    if (!NAME.test(name))
        throw new InvalidRequestError(`"${name}" cannot name an MCP server: use up to 64 letters, digits, "-", "_" or ".", starting with a letter or digit.`, "name");
    return name;
}

/** Reads one server's entry, as a client or a copied file gives it; unknown fields are dropped. */
export function parseServerConfig(value: unknown, name: string): McpServerConfig {
    const field = `mcpServers.${name}`;
    if (value == null || typeof value !== "object" || Array.isArray(value))
        throw new InvalidRequestError(`${field} must be an object with "command" (a program to start) or "url" (a server to reach)`, field);
    const entry = value as Record<string, unknown>;
    const common: {disabled?: boolean, timeout?: number} = {};
    if (entry.disabled != null) {
        if (typeof entry.disabled !== "boolean")
            throw new InvalidRequestError(`${field}.disabled must be true or false`, `${field}.disabled`);
        common.disabled = entry.disabled;
    }
    if (entry.timeout != null) {
        if (typeof entry.timeout !== "number" || !(entry.timeout > 0 && entry.timeout <= 3600))
            throw new InvalidRequestError(`${field}.timeout must be a number of seconds between 0 and 3600`, `${field}.timeout`);
        common.timeout = entry.timeout;
    }
    if (typeof entry.command === "string" && entry.command.trim() !== "") {
        if (entry.url != null)
            throw new InvalidRequestError(`${field} has both "command" and "url": give one`, field);
        if (entry.args != null && (!Array.isArray(entry.args) || entry.args.some((arg) => typeof arg !== "string")))
            throw new InvalidRequestError(`${field}.args must be an array of strings`, `${field}.args`);
        const env = stringRecord(entry.env, `${field}.env`);
        return {command: entry.command, ...entry.args != null ? {args: [...entry.args as string[]]} : {}, ...env != null ? {env} : {}, ...common};
    }
    if (typeof entry.url === "string") {
        let url: URL;
        try {
            url = new URL(entry.url);
        } catch {
            throw new InvalidRequestError(`${field}.url "${entry.url}" is not a URL`, `${field}.url`);
        }
        if (url.protocol !== "http:" && url.protocol !== "https:")
            throw new InvalidRequestError(`${field}.url must be an http or https URL`, `${field}.url`);
        const headers = stringRecord(entry.headers, `${field}.headers`);
        return {url: entry.url, ...headers != null ? {headers} : {}, ...common};
    }
    throw new InvalidRequestError(`${field} needs "command" (a program to start) or "url" (a server to reach)`, field);
}

/** Reads a whole file's `mcpServers` (Claude Desktop's and Cursor's files have other keys too, which are ignored). */
export function parseConfigFile(value: unknown): McpConfigFile {
    if (value == null || typeof value !== "object" || Array.isArray(value))
        throw new InvalidRequestError("An MCP configuration must be a JSON object with \"mcpServers\"", "mcpServers");
    const servers = (value as {mcpServers?: unknown}).mcpServers;
    if (servers == null || typeof servers !== "object" || Array.isArray(servers))
        throw new InvalidRequestError("An MCP configuration needs \"mcpServers\": an object of servers by name", "mcpServers");
    const parsed: Record<string, McpServerConfig> = {};
    for (const [name, entry] of Object.entries(servers))
        parsed[checkServerName(name)] = parseServerConfig(entry, name);
    return {mcpServers: parsed};
}

/** The file's servers; none when there is no file yet. A file that cannot be read is an error, never silently empty. */
export async function readConfigFile(home: string): Promise<McpConfigFile> {
    let text: string;
    try {
        text = await readFile(mcpConfigPath(home), "utf8");
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT")
            return {mcpServers: {}};
        throw error;
    }
    let json: unknown;
    try {
        json = JSON.parse(text);
    } catch (error) {
        throw new InvalidRequestError(`${mcpConfigPath(home)} is not valid JSON: ${(error as Error).message}`, "mcpServers");
    }
    return parseConfigFile(json);
}

/** Writes the file whole through a temporary file and a rename, so a reader never sees half of it. Owner-only: it may hold secrets. */
export async function writeConfigFile(home: string, config: McpConfigFile): Promise<void> {
    await mkdir(home, {recursive: true, mode: 0o700});
    const target = mcpConfigPath(home);
    const temporary = `${target}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(temporary, `${JSON.stringify(config, null, 2)}\n`, {mode: 0o600});
    await rename(temporary, target);
}

/** A value shown where secrets may not be: its first characters only when it is long enough to stay secret. */
export function mask(value: string): string {
    return value.length >= 12 ? `${value.slice(0, 3)}…` : "…";
}

/** The server's entry as the API shows it: env and header values masked, since a GET may be a LAN client's. */
export function maskedConfig(config: McpServerConfig): McpServerConfig {
    const maskAll = (record: Record<string, string> | undefined) => record == null ? undefined : Object.fromEntries(Object.entries(record).map(([key, value]) => [key, mask(value)]));
    if (isStdio(config))
        return {...config, ...config.env != null ? {env: maskAll(config.env)} : {}};
    return {...config, ...config.headers != null ? {headers: maskAll(config.headers)} : {}};
}
