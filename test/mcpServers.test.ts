import assert from "node:assert/strict";
import {mkdtemp, readFile, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, test} from "node:test";
import {fileURLToPath} from "node:url";
import {eventually} from "./helpers/eventually.js";
import {startHttpToolServer} from "./helpers/mcpToolServer.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer, useTestServer} from "./helpers/testServer.js";

const TOOL_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "helpers", "mcpToolServer.js");
const KEY = "mcp-admin-key-123456";
const headers = {authorization: `Bearer ${KEY}`, "content-type": "application/json"};

type ServerReply = {name: string, state: string, tools: Array<{name: string}>, error?: string, pid?: number, config: {env?: Record<string, string>, headers?: Record<string, string>}};

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

describe("MCP servers in mcp.json", () => {
    const server = useTestServer({apiKeys: [KEY]});
    const put = (name: string, body: unknown, extra: Record<string, string> = headers) =>
        fetch(`${server.url}/api/mcp/servers/${name}`, {method: "PUT", headers: extra, body: JSON.stringify(body)});
    const listed = async () => ((await (await fetch(`${server.url}/api/mcp/servers`, {headers})).json()) as {servers: ServerReply[]}).servers;
    const ready = (name: string) => eventually(async () => {
        const found = (await listed()).find((entry) => entry.name === name);
        assert.ok(found != null && found.state !== "starting", `${name} is still starting`);
        return found;
    });
    const weather = {command: process.execPath, args: [TOOL_SCRIPT], env: {WEATHER_TOKEN: "secret-weather-token"}, timeout: 1};

    test("a stdio server added through the API starts, lists its tools, answers a call, and its secrets are masked", async () => {
        const response = await put("weather", weather);
        assert.equal(response.status, 200);
        const status = await ready("weather");
        assert.equal(status.state, "ready");
        assert.deepEqual(status.tools.map((tool) => tool.name).sort(), ["crash", "fail", "get_weather", "hang"]);
        assert.equal(status.config.env?.WEATHER_TOKEN, "sec…");
        assert.doesNotMatch(JSON.stringify(await listed()), /secret-weather-token/);
        const onDisk = JSON.parse(await readFile(path.join(server.library.home, "mcp.json"), "utf8")) as {mcpServers: Record<string, {env: Record<string, string>}>};
        assert.equal(onDisk.mcpServers.weather!.env.WEATHER_TOKEN, "secret-weather-token");

        const result = await server.mcpServers.callTool("weather", "get_weather", {city: "Lyon"});
        assert.deepEqual(result, {content: [{type: "text", text: "Sunny and 21 °C in Lyon"}], isError: false});
        const failed = await server.mcpServers.callTool("weather", "fail", {});
        assert.deepEqual(failed, {content: [{type: "text", text: "The weather service is down"}], isError: true});
        assert.ok((await server.mcpServers.listTools()).some(({server: name, tool}) => name === "weather" && tool.name === "get_weather"));
    });

    test("a masked secret sent back unchanged keeps the secret it stands for", async () => {
        const [status] = (await listed()).filter((entry) => entry.name === "weather");
        assert.equal((await put("weather", {...weather, env: status!.config.env})).status, 200);
        const onDisk = JSON.parse(await readFile(path.join(server.library.home, "mcp.json"), "utf8")) as {mcpServers: Record<string, {env: Record<string, string>}>};
        assert.equal(onDisk.mcpServers.weather!.env.WEATHER_TOKEN, "secret-weather-token");
        assert.equal((await ready("weather")).state, "ready");
    });

    test("a call that hangs past the server's timeout is an error result, and Hearth and the server go on", async () => {
        const started = Date.now();
        const result = await server.mcpServers.callTool("weather", "hang", {});
        assert.ok(Date.now() - started < 5000);
        assert.equal(result.isError, true);
        assert.match(JSON.stringify(result.content), /did not answer within 1 s/);
        assert.equal((await fetch(`${server.url}/health`)).status, 200);
        assert.equal((await server.mcpServers.callTool("weather", "get_weather", {city: "Oslo"})).isError, false);
    });

    test("a server that crashes mid-call costs one error result and is shown as failed; Hearth stays up", async () => {
        const {pid} = (await listed()).find((entry) => entry.name === "weather")!;
        const result = await server.mcpServers.callTool("weather", "crash", {});
        assert.equal(result.isError, true);
        const status = await eventually(async () => {
            const found = (await listed()).find((entry) => entry.name === "weather")!;
            assert.equal(found.state, "failed");
            return found;
        });
        assert.match(status.error!, /exited/);
        assert.equal(alive(pid!), false);
        assert.equal((await fetch(`${server.url}/health`)).status, 200);
        assert.equal((await server.mcpServers.callTool("weather", "get_weather", {city: "Oslo"})).isError, true);
    });

    test("a server whose program does not exist is shown as failed with the reason", async () => {
        assert.equal((await put("missing", {command: "/nonexistent/mcp-server"})).status, 200);
        const status = await ready("missing");
        assert.equal(status.state, "failed");
        assert.match(status.error!, /did not start/);
    });

    test("a Streamable HTTP server is reached with its headers, which are masked", async () => {
        const http = await startHttpToolServer();
        try {
            assert.equal((await put("remote", {url: http.url, headers: {Authorization: "Bearer http-secret-token"}})).status, 200);
            const status = await ready("remote");
            assert.equal(status.state, "ready", status.error);
            assert.equal(status.config.headers?.Authorization, "Bea…");
            assert.ok(http.headersSeen.includes("Bearer http-secret-token"));
            const result = await server.mcpServers.callTool("remote", "get_weather", {city: "Kyoto"});
            assert.deepEqual(result.content, [{type: "text", text: "Sunny and 21 °C in Kyoto"}]);
        } finally {
            await http.close();
        }
    });

    test("a Claude Desktop file is imported, a disabled server is stopped, and a removed one is gone", async () => {
        const file = {mcpServers: {desk: {command: process.execPath, args: [TOOL_SCRIPT]}, off: {command: process.execPath, args: [TOOL_SCRIPT], disabled: true}}, globalShortcut: "x"};
        const response = await fetch(`${server.url}/api/mcp/import`, {method: "POST", headers, body: JSON.stringify(file)});
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), {imported: ["desk", "off"]});
        assert.equal((await ready("desk")).state, "ready");
        assert.equal((await ready("off")).state, "stopped");
        const {pid} = (await ready("desk"));
        assert.equal((await put("desk", {command: process.execPath, args: [TOOL_SCRIPT], disabled: true})).status, 200);
        assert.equal((await ready("desk")).state, "stopped");
        await eventually(async () => assert.equal(alive(pid!), false));
        assert.equal((await fetch(`${server.url}/api/mcp/servers/desk`, {method: "DELETE", headers})).status, 204);
        assert.equal((await fetch(`${server.url}/api/mcp/servers/desk`, {method: "DELETE", headers})).status, 404);
        assert.ok(!(await listed()).some((entry) => entry.name === "desk"));
    });

    test("bad input is a 400 in Ollama's error shape; changes need the key and this machine", async () => {
        for (const [name, body] of [["bad name!", {command: "x"}], ["x", {args: ["no command"]}], ["x", {url: "ftp://host"}], ["x", {command: "x", timeout: -1}], ["x", {command: "x", env: {A: 1}}]] as const) {
            const response = await put(encodeURIComponent(name), body);
            assert.equal(response.status, 400, JSON.stringify(body));
            assert.equal(typeof ((await response.json()) as {error: string}).error, "string");
        }
        assert.equal((await fetch(`${server.url}/api/mcp/import`, {method: "POST", headers, body: JSON.stringify({servers: {}})})).status, 400);
        assert.equal((await put("x", {command: "x"}, {"content-type": "application/json"})).status, 401);
        for (const [method, url] of [["PUT", "/api/mcp/servers/evil"], ["DELETE", "/api/mcp/servers/weather"], ["POST", "/api/mcp/import"]] as const) {
            const remote = await server.app.inject({method, url, remoteAddress: "192.168.1.20", headers, payload: {mcpServers: {}, command: "touch"}});
            assert.equal(remote.statusCode, 403, url);
            assert.match((remote.json() as {error: string}).error, /MCP servers can be changed only on the machine Hearth runs on/);
        }
        assert.ok(!(await listed()).some((entry) => entry.name === "evil"));
    });

    test("hearth mcp add, list and remove edit mcp.json, and the running server follows", async () => {
        const env = {HEARTH_HOME: server.library.home};
        const added = await spawnHearth(["mcp", "add", "cli-weather", "--env", "TOKEN=cli-secret-value", "--", process.execPath, TOOL_SCRIPT], env).exited;
        assert.equal(added.code, 0, added.stderr);
        assert.match(added.stdout, /Added the MCP server cli-weather/);
        const list = await spawnHearth(["mcp", "list", "--json"], env).exited;
        const entries = JSON.parse(list.stdout) as Array<{name: string, env?: Record<string, string>}>;
        assert.equal(entries.find((entry) => entry.name === "cli-weather")?.env?.TOKEN, "cli…");
        assert.equal((await ready("cli-weather")).state, "ready");
        const http = await spawnHearth(["mcp", "add", "cli-http", "--url", "http://127.0.0.1:9/mcp", "--header", "Authorization=Bearer x"], env).exited;
        assert.equal(http.code, 0, http.stderr);
        assert.match((await spawnHearth(["mcp", "list"], env).exited).stdout, /^cli-http\s+http\s+yes\s+http:\/\/127\.0\.0\.1:9\/mcp$/m);
        const removed = await spawnHearth(["mcp", "remove", "cli-weather"], env).exited;
        assert.equal(removed.code, 0, removed.stderr);
        assert.equal((await spawnHearth(["mcp", "remove", "cli-weather"], env).exited).code, 2);
        assert.equal((await spawnHearth(["mcp", "add", "nothing"], env).exited).code, 2);
        assert.ok(!(await listed()).some((entry) => entry.name === "cli-weather"));
    });
});

describe("MCP servers at start and shutdown", () => {
    let home: string;
    before(async () => {
        home = await mkdtemp(path.join(os.tmpdir(), "hearth-mcp-home-"));
        await writeFile(path.join(home, "mcp.json"), JSON.stringify({mcpServers: {weather: {command: process.execPath, args: [TOOL_SCRIPT]}}}));
    });
    after(async () => rm(home, {recursive: true, force: true}));

    test("servers in mcp.json start with Hearth, and closing Hearth ends their processes", async () => {
        const server = await startTestServer({home});
        let pid: number | undefined;
        try {
            const tools = await server.mcpServers.listTools();
            assert.deepEqual(tools.map(({tool}) => tool.name).sort(), ["crash", "fail", "get_weather", "hang"]);
            pid = (await server.mcpServers.list())[0]!.pid;
            assert.ok(pid != null && alive(pid));
        } finally {
            await server.close();
        }
        await eventually(async () => assert.equal(alive(pid), false), 5000);
    });
});
