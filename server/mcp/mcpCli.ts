import {parseArgs} from "node:util";
import {ConfigError, resolveHome} from "../config.js";
import {table} from "../libraryCli.js";
import {InvalidRequestError} from "../../native/errors.js";
import {checkServerName, isStdio, maskedConfig, mcpConfigPath, parseServerConfig, readConfigFile, writeConfigFile} from "./mcpConfig.js";
import type {McpServerConfig} from "./mcpConfig.js";

export const MCP_USAGE = `MCP servers (mcp.json in the data folder; all take --home DIR; HEARTH_HOME):
  mcp list [--json]                              the configured servers (secrets masked)
  mcp add NAME [--env K=V]… [--timeout S] -- COMMAND [ARGS…]
                                                 a server Hearth starts (stdio)
  mcp add NAME --url URL [--header K=V]… [--timeout S]
                                                 a server Hearth reaches (Streamable HTTP or SSE)
  mcp remove NAME                                forget a server; a running Hearth stops it`;

function pairs(values: string[] | undefined, flag: string): Record<string, string> | undefined {
    if (values == null || values.length === 0)
        return undefined;
    const record: Record<string, string> = {};
    for (const value of values) {
        const at = value.indexOf("=");
        if (at <= 0)
            throw new ConfigError(`${flag} takes KEY=VALUE, got "${value}"`);
        record[value.slice(0, at)] = value.slice(at + 1);
    }
    return record;
}

function describe(config: McpServerConfig): string {
    return isStdio(config) ? [config.command, ...config.args ?? []].join(" ") : config.url;
}

/**
 * `hearth mcp …`: edits `mcp.json` directly, like a text editor would; a running server reads the file again
 * before each answer about its servers, so it starts, restarts or stops them without a restart of its own.
 */
export async function runMcpCommand(argv: readonly string[]): Promise<void> {
    const dashes = argv.indexOf("--");
    const own = dashes >= 0 ? argv.slice(0, dashes) : [...argv];
    const command = dashes >= 0 ? argv.slice(dashes + 1) : [];
    let parsed;
    try {
        parsed = parseArgs({args: own, allowPositionals: true, strict: true, options: {
            home: {type: "string"}, json: {type: "boolean"}, url: {type: "string"}, header: {type: "string", multiple: true},
            env: {type: "string", multiple: true}, timeout: {type: "string"}
        }});
    } catch (error) {
        throw new ConfigError(`${(error as Error).message}\n${MCP_USAGE}`);
    }
    const [action, name] = parsed.positionals;
    const home = resolveHome(parsed.values.home);
    const file = await readConfigFile(home);
    switch (action) {
        case "list": {
            const entries = Object.entries(file.mcpServers).map(([server, config]) => ({name: server, ...maskedConfig(config)}));
            if (parsed.values.json === true)
                console.log(JSON.stringify(entries, null, 2));
            else if (entries.length === 0)
                console.log(`No MCP servers in ${mcpConfigPath(home)}: hearth mcp add NAME -- COMMAND adds one.`);
            else
                console.log(table([["NAME", "KIND", "ENABLED", "COMMAND OR URL"],
                    ...Object.entries(file.mcpServers).map(([server, config]) => [server, isStdio(config) ? "stdio" : "http", config.disabled === true ? "no" : "yes", describe(config)])]));
            return;
        }
        case "add": {
            if (name == null)
                throw new ConfigError(`mcp add needs a name\n${MCP_USAGE}`);
            const timeout = parsed.values.timeout != null ? Number(parsed.values.timeout) : undefined;
            const entry = parsed.values.url != null
                ? {url: parsed.values.url, headers: pairs(parsed.values.header, "--header"), timeout}
                : {command: command[0], args: command.slice(1), env: pairs(parsed.values.env, "--env"), timeout};
            if (parsed.values.url == null && command.length === 0)
                throw new ConfigError(`mcp add ${name} needs a command after "--", or --url URL\n${MCP_USAGE}`);
            let config: McpServerConfig;
            try {
                config = parseServerConfig(JSON.parse(JSON.stringify(entry)), checkServerName(name));
            } catch (error) {
                throw error instanceof InvalidRequestError ? new ConfigError(error.message) : error;
            }
            const replaced = name in file.mcpServers;
            await writeConfigFile(home, {mcpServers: {...file.mcpServers, [name]: config}});
            console.log(`${replaced ? "Replaced" : "Added"} the MCP server ${name}: ${describe(config)}`);
            return;
        }
        case "remove": {
            if (name == null)
                throw new ConfigError(`mcp remove needs a name\n${MCP_USAGE}`);
            if (!(name in file.mcpServers))
                throw new ConfigError(`there is no MCP server "${name}" (hearth mcp list shows them)`);
            const {[name]: _removed, ...rest} = file.mcpServers;
            await writeConfigFile(home, {mcpServers: rest});
            console.log(`Removed the MCP server ${name}.`);
            return;
        }
        default:
            throw new ConfigError(action == null ? MCP_USAGE : `unknown mcp command "${action}"\n${MCP_USAGE}`);
    }
}
