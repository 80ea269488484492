import assert from "node:assert/strict";
import {request as httpRequest} from "node:http";
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, test} from "node:test";
import OpenAI from "openai";
import {ConfigError} from "../server/config.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

type RawResponse = {status: number, headers: Record<string, string | string[] | undefined>, body: string};

/** A request with any headers, `Host` included, which fetch does not let a caller set. */
function raw(url: string, {method = "GET", headers = {}, body}: {method?: string, headers?: Record<string, string>, body?: string} = {}): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
        const request = httpRequest(url, {method, headers: {...(body != null ? {"content-type": "application/json"} : {}), ...headers}}, (response) => {
            let text = "";
            response.setEncoding("utf8");
            response.on("data", (chunk: string) => text += chunk);
            response.on("end", () => resolve({status: response.statusCode!, headers: response.headers, body: text}));
        });
        request.on("error", reject);
        request.end(body);
    });
}

async function createKeyWithCli(home: string, name: string): Promise<{id: string, key: string}> {
    const {exited} = spawnHearth(["keys", "create", "--name", name], {HEARTH_HOME: home});
    const {code, stdout, stderr} = await exited;
    assert.equal(code, 0, stderr);
    const key = /\n {2}(hk-\S+)\n/.exec(stdout)?.[1];
    const id = /Created (key_\w+)/.exec(stdout)?.[1];
    assert.ok(key != null && id != null, stdout);
    return {id, key};
}

describe("API keys", () => {
    let home: string;
    let server: TestServer;
    let created: {id: string, key: string};

    before(async () => {
        home = await mkdtemp(path.join(os.tmpdir(), "hearth-access-"));
        created = await createKeyWithCli(home, "laptop");
        server = await startTestServer({home, apiKeys: ["startup-key-123"]});
    });
    after(async () => {
        await server.close();
        await rm(home, {recursive: true, force: true});
    });

    test("a request without a key gets 401 in each API's error shape; /health and the app's page stay open", async () => {
        const v1 = await fetch(`${server.baseURL}/models`);
        assert.equal(v1.status, 401);
        assert.equal(v1.headers.get("www-authenticate"), "Bearer");
        const body = await v1.json() as {error: {code: string, message: string}};
        assert.equal(body.error.code, "missing_api_key");
        assert.match(body.error.message, /hearth keys create/);

        const api = await fetch(`${server.url}/api/tags`);
        assert.equal(api.status, 401);
        assert.equal(typeof (await api.json() as {error: unknown}).error, "string");

        assert.equal((await fetch(`${server.url}/health`)).status, 200);
        assert.equal((await fetch(`${server.url}/`)).status, 200);
        assert.equal((await fetch(`${server.url}/metrics`)).status, 401);
    });

    test("the OpenAI SDK with a stored key, a startup key, or x-api-key is served; a wrong key is 401", async () => {
        const client = new OpenAI({baseURL: server.baseURL, apiKey: created.key, maxRetries: 0});
        const completion = await client.chat.completions.create({model: "stories260K", messages: [{role: "user", content: "Once upon a time"}], max_tokens: 4, temperature: 0});
        assert.ok(completion.usage!.completion_tokens > 0);

        const startup = new OpenAI({baseURL: server.baseURL, apiKey: "startup-key-123", maxRetries: 0});
        assert.ok((await startup.models.list()).data.length > 0);

        assert.equal((await fetch(`${server.url}/api/tags`, {headers: {"x-api-key": created.key}})).status, 200);

        const wrong = new OpenAI({baseURL: server.baseURL, apiKey: "hk-not-a-key", maxRetries: 0});
        await assert.rejects(wrong.models.list(), (error: InstanceType<typeof OpenAI.APIError>) => error.status === 401 && error.code === "invalid_api_key");
    });

    test("keys are listed without their secret; a startup key cannot be revoked; revoking from the CLI takes effect in the running server", async () => {
        const headers = {authorization: `Bearer ${created.key}`};
        const list = await (await fetch(`${server.url}/api/server/keys`, {headers})).json() as {keys: {id: string, prefix: string, source: string}[]};
        assert.deepEqual(list.keys.map((key) => key.source).sort(), ["startup", "stored"]);
        assert.ok(!JSON.stringify(list).includes(created.key) && !JSON.stringify(list).includes("startup-key-123"));

        const startupRevoke = await fetch(`${server.url}/api/server/keys/startup-1`, {method: "DELETE", headers});
        assert.equal(startupRevoke.status, 400);
        assert.match((await startupRevoke.json() as {error: string}).error, /--api-key/);

        const {code, stderr} = await spawnHearth(["keys", "revoke", created.id], {HEARTH_HOME: home}).exited;
        assert.equal(code, 0, stderr);
        const after = await fetch(`${server.baseURL}/models`, {headers});
        assert.equal(after.status, 401);
        assert.equal((await after.json() as {error: {code: string}}).error.code, "invalid_api_key");
    });

    test("keys made in the Server view are shown once and work at once; a client on another machine cannot manage keys", async () => {
        const headers = {"authorization": "Bearer startup-key-123", "content-type": "application/json"};
        const response = await fetch(`${server.url}/api/server/keys`, {method: "POST", headers, body: JSON.stringify({name: "phone"})});
        assert.equal(response.status, 201);
        const made = await response.json() as {id: string, key: string, name: string};
        assert.equal(made.name, "phone");
        assert.equal((await fetch(`${server.baseURL}/models`, {headers: {authorization: `Bearer ${made.key}`}})).status, 200);

        const remote = await server.app.inject({method: "POST", url: "/api/server/keys", remoteAddress: "192.168.1.20", headers, payload: {name: "x"}});
        assert.equal(remote.statusCode, 403);
        const revoke = await fetch(`${server.url}/api/server/keys/${made.id}`, {method: "DELETE", headers});
        assert.equal(revoke.status, 204);
        assert.equal((await fetch(`${server.url}/api/server/keys/${made.id}`, {method: "DELETE", headers})).status, 404);
    });
});

describe("browser-borne requests", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({allowedHosts: ["hearth.lan"]});
    });
    after(() => server.close());

    test("a Host that is not an address, localhost or configured is refused (DNS rebinding)", async () => {
        const url = `${server.url}/v1/models`;
        const port = new URL(server.url).port;
        const evil = await raw(url, {headers: {host: `attacker.example:${port}`}});
        assert.equal(evil.status, 403);
        assert.equal((JSON.parse(evil.body) as {error: {code: string}}).error.code, "host_not_allowed");
        assert.equal((await raw(`${server.url}/api/tags`, {headers: {host: "rebind.attacker.example"}})).status, 403);
        for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `hearth.lan:${port}`, `app.localhost:${port}`])
            assert.equal((await raw(url, {headers: {host}})).status, 200, host);
    });

    test("localhost pages and the app itself may call the API; other pages are refused, also with simple requests; credentials never", async () => {
        const url = `${server.baseURL}/models`;
        const local = await raw(url, {headers: {origin: "http://localhost:5173"}});
        assert.equal(local.status, 200);
        assert.equal(local.headers["access-control-allow-origin"], "http://localhost:5173");
        assert.equal(local.headers["access-control-allow-credentials"], undefined);
        const streamed = await raw(`${server.baseURL}/chat/completions`, {method: "POST", headers: {origin: "http://localhost:5173"},
            body: JSON.stringify({model: "stories260K", messages: [{role: "user", content: "Hi"}], max_tokens: 2, stream: true})});
        assert.match(streamed.body, /data: \[DONE\]/);
        assert.equal(streamed.headers["access-control-allow-origin"], "http://localhost:5173", "a stream carries the CORS header too");
        assert.ok(streamed.headers["x-request-id"] != null);
        const own = await raw(url, {headers: {origin: server.url}});
        assert.equal(own.headers["access-control-allow-origin"], server.url);

        const preflight = await raw(`${server.baseURL}/chat/completions`, {method: "OPTIONS", headers: {
            "origin": "http://127.0.0.1:3000", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type"
        }});
        assert.equal(preflight.status, 204);
        assert.match(String(preflight.headers["access-control-allow-headers"]), /authorization/i);
        assert.match(String(preflight.headers["access-control-allow-methods"]), /POST/);

        const evilPreflight = await raw(`${server.baseURL}/chat/completions`, {method: "OPTIONS", headers: {"origin": "https://evil.example", "access-control-request-method": "POST"}});
        assert.equal(evilPreflight.status, 403);
        assert.equal(evilPreflight.headers["access-control-allow-origin"], undefined);
        // A form-style POST needs no preflight, so the origin check itself must refuse it.
        const simple = await raw(`${server.url}/api/conversations`, {method: "POST", headers: {"origin": "https://evil.example", "content-type": "text/plain"}, body: "{}"});
        assert.equal(simple.status, 403);
        assert.equal((JSON.parse(simple.body) as {error: string}).error.includes("https://evil.example"), true);
        assert.equal((await raw(url, {headers: {origin: "null"}})).status, 403);
    });

    test("an origin added in the Server view is let in at once; a bad one is refused with a message", async () => {
        const url = `${server.baseURL}/models`;
        assert.equal((await raw(url, {headers: {origin: "https://notes.example"}})).status, 403);
        const change = await fetch(`${server.url}/api/server/settings`, {method: "PATCH", headers: {"content-type": "application/json"}, body: JSON.stringify({allowed_origins: ["https://notes.example/"]})});
        assert.equal(change.status, 200);
        assert.deepEqual((await change.json() as {allowed_origins: string[]}).allowed_origins, ["https://notes.example"]);
        const allowed = await raw(url, {headers: {origin: "https://notes.example"}});
        assert.equal(allowed.status, 200);
        assert.equal(allowed.headers["access-control-allow-origin"], "https://notes.example");

        const bad = await fetch(`${server.url}/api/server/settings`, {method: "PATCH", headers: {"content-type": "application/json"}, body: JSON.stringify({allowed_origins: ["notes.example/path"]})});
        assert.equal(bad.status, 400);
        assert.match((await bad.json() as {error: string}).error, /is not an origin/);
    });

    test("LAN access cannot be turned on without a key, and says it applies at the next start", async () => {
        const patch = (body: object) => fetch(`${server.url}/api/server/settings`, {method: "PATCH", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
        const refused = await patch({lan_access: true});
        assert.equal(refused.status, 409);
        assert.match((await refused.json() as {error: string}).error, /Create an API key first/);
        const key = await (await fetch(`${server.url}/api/server/keys`, {method: "POST", headers: {"content-type": "application/json"}, body: "{}"})).json() as {key: string};
        const turnedOn = await fetch(`${server.url}/api/server/settings`, {method: "PATCH", headers: {"content-type": "application/json", "authorization": `Bearer ${key.key}`}, body: JSON.stringify({lan_access: true})});
        assert.equal(turnedOn.status, 200);
        const settings = await turnedOn.json() as {lan_access: boolean, lan_access_now: boolean, restart_required: boolean};
        assert.deepEqual([settings.lan_access, settings.lan_access_now, settings.restart_required], [true, false, true]);
    });
});

describe("listening beyond loopback", () => {
    test("--host 0.0.0.0 without a key is refused at start, saying how to make one", async () => {
        await assert.rejects(startTestServer({host: "0.0.0.0"}), (error: Error) => error instanceof ConfigError && /hearth keys create/.test(error.message));
        const {code, stderr} = await spawnHearth(["serve", "--host", "0.0.0.0", "--port", "0"]).exited;
        assert.equal(code, 2);
        assert.match(stderr, /no API key.*hearth keys create/s);
    });

    test("with a key it listens, and a client elsewhere needs the key even for reading", async () => {
        const server = await startTestServer({host: "0.0.0.0", apiKeys: ["lan-key-123456"]});
        try {
            const port = new URL(server.url).port;
            const anonymous = await server.app.inject({method: "GET", url: "/v1/models", remoteAddress: "192.168.1.20", headers: {host: `192.168.1.5:${port}`}});
            assert.equal(anonymous.statusCode, 401);
            const keyed = await server.app.inject({method: "GET", url: "/v1/models", remoteAddress: "192.168.1.20", headers: {host: `192.168.1.5:${port}`, authorization: "Bearer lan-key-123456"}});
            assert.equal(keyed.statusCode, 200);
        } finally {
            await server.close();
        }
    });
});

describe("rate limit", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({rateLimitPerMinute: 2});
    });
    after(() => server.close());

    test("generation requests past the limit get 429 with Retry-After; other routes are not counted", async () => {
        const ask = () => server.client.completions.create({model: "stories260K", prompt: "Once", max_tokens: 2});
        await ask();
        await ask();
        for (let index = 0; index < 5; index++)
            assert.equal((await fetch(`${server.baseURL}/models`)).status, 200);
        const response = await fetch(`${server.baseURL}/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: "stories260K", prompt: "Once", max_tokens: 2})});
        assert.equal(response.status, 429);
        assert.ok(Number(response.headers.get("retry-after")) >= 1);
        assert.equal((await response.json() as {error: {type: string}}).error.type, "rate_limit_error");
    });
});
