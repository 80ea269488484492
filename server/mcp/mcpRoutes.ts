import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import {ApiError} from "../errors.js";
import {useOllamaConventions} from "../ollama/ollamaConventions.js";
import {LOCAL_ONLY, QUIET} from "../routeConfig.js";
import {checkServerName, isStdio, mask, maskedConfig, parseConfigFile, parseServerConfig} from "./mcpConfig.js";
import type {McpServerConfig} from "./mcpConfig.js";
import type {McpServers} from "./McpServers.js";

/**
 * `/api/mcp/…`: the MCP servers of `mcp.json`, their status and tools. A stdio server is a program Hearth
 * starts, so every change is accepted from this machine only, and with a key when keys are set (`accessControl`).
 */

const NameParams = Type.Object({name: Type.String({maxLength: 100})});
type NameParams = Static<typeof NameParams>;

/** A masked value sent back unchanged (the app edits what GET showed) keeps the secret it stands for. */
function keepSecrets(next: McpServerConfig, previous: McpServerConfig | undefined): McpServerConfig {
    const keep = (values: Record<string, string> | undefined, old: Record<string, string> | undefined) => values == null ? undefined
        : Object.fromEntries(Object.entries(values).map(([key, value]) => [key, old?.[key] != null && value === mask(old[key]) ? old[key] : value]));
    if (isStdio(next))
        return next.env == null ? next : {...next, env: keep(next.env, previous != null && isStdio(previous) ? previous.env : undefined)};
    return next.headers == null ? next : {...next, headers: keep(next.headers, previous != null && !isStdio(previous) ? previous.headers : undefined)};
}

export async function mcpRoutes(app: FastifyInstance, {servers}: {servers: McpServers}): Promise<void> {
    useOllamaConventions(app);

    app.get("/api/mcp/servers", QUIET, async () => ({
        servers: (await servers.list()).map((server) => ({...server, config: maskedConfig(server.config)}))
    }));

    app.put<{Params: NameParams, Body: unknown}>("/api/mcp/servers/:name", {schema: {params: NameParams}, ...LOCAL_ONLY}, async (request) => {
        const name = checkServerName(request.params.name);
        const previous = (await servers.list()).find((server) => server.name === name)?.config;
        await servers.put(name, keepSecrets(parseServerConfig(request.body, name), previous));
        const server = (await servers.list()).find((entry) => entry.name === name)!;
        return {...server, config: maskedConfig(server.config)};
    });

    app.delete<{Params: NameParams}>("/api/mcp/servers/:name", {schema: {params: NameParams}, ...LOCAL_ONLY}, async (request, reply) => {
        if (!await servers.remove(request.params.name))
            throw new ApiError(404, `There is no MCP server "${request.params.name}".`, {code: "not_found"});
        return reply.status(204).send();
    });

    app.post<{Body: unknown}>("/api/mcp/import", LOCAL_ONLY, async (request) => {
        const file = parseConfigFile(request.body);
        await servers.import(file);
        return {imported: Object.keys(file.mcpServers)};
    });
}
