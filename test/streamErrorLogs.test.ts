import assert from "node:assert/strict";
import {Writable} from "node:stream";
import {after, before, describe, test} from "node:test";
import {eventually} from "./helpers/eventually.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {troubledUpstream} from "./helpers/troubledUpstreams.js";
import type {TroubledUpstream} from "./helpers/troubledUpstreams.js";

type LogError = {status: number, message: string};
type LogLine = {reqId?: string, msg?: string, status?: number, durationMs?: number, promptTokens?: number, completionTokens?: number, error?: LogError};
type AuditEntry = {request_id: string, status: number, prompt_tokens: number | null, completion_tokens: number | null, duration_ms: number,
    request_body: string | null, error_status: number | null, error: string | null};
type RequestLogEntry = {path: string, status: number, error?: LogError};

/**
 * A stream whose 200 went out before it failed is logged as what it was: with the error it ended with and the tokens
 * it did produce, in the log line, the Server view's request log and the audit log; and the audit log keeps bodies as
 * JSON (Claude Code's requests are about 75 KB).
 */
describe("logs of streams that end in an error, and audited bodies", () => {
    const logLines: LogLine[] = [];
    let server: TestServer;
    let troubled: TroubledUpstream;

    before(async () => {
        const stream = new Writable({write(chunk: Buffer, _encoding, done) {
            for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
                logLines.push(JSON.parse(line) as LogLine);
            done();
        }});
        troubled = await troubledUpstream();
        // A 256-token slot: a forced call's arguments that run on reach its end, which fails the stream after its 200.
        server = await startTestServer({
            modelFiles: ["scripted/llama3.1-script.gguf"], ctxSize: 256, parallel: 1, auditPrompts: true,
            upstreams: [{url: troubled.url, key: undefined}], logger: {level: "info", stream}
        });
        await eventually(async () => {
            const {data} = await (await fetch(`${server.baseURL}/models`)).json() as {data: {id: string}[]};
            assert.ok(data.some((model) => model.id === "qwen-error"));
        });
    });
    after(async () => {
        await server?.close();
        await troubled?.close();
    });

    /** Posts `body` to `path` as a stream; returns the request id and the error event's message, if one came. */
    async function stream(path: string, body: Record<string, unknown>): Promise<{requestId: string, text: string}> {
        const response = await fetch(`${server.url}${path}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({...body, stream: true})});
        assert.equal(response.status, 200);
        return {requestId: response.headers.get("x-request-id")!, text: await response.text()};
    }

    /** What each log says of a request, once its connection has closed. */
    async function logsOf(requestId: string): Promise<{line: LogLine, entry: AuditEntry, requests: RequestLogEntry[]}> {
        return eventually(async () => {
            const line = logLines.find((item) => item.reqId === requestId && item.msg === "request");
            assert.ok(line != null, "the request's log line");
            const {entries} = await (await fetch(`${server.url}/api/audit?limit=50`)).json() as {entries: AuditEntry[]};
            const entry = entries.find((item) => item.request_id === requestId);
            assert.ok(entry != null, "the request's audit entry");
            const {requests} = await (await fetch(`${server.url}/api/server/requests`)).json() as {requests: RequestLogEntry[]};
            return {line, entry, requests};
        });
    }

    test("a local generation that fails mid-stream is logged with its error and the tokens it produced", async () => {
        const {requestId, text} = await stream("/v1/chat/completions", {
            model: "llama3.1-script", messages: [{role: "user", content: "hi"}], temperature: 1, seed: 3,
            tools: [{type: "function", function: {name: "lookup_forecast", parameters: {type: "object", properties: {place: {type: "string"}, notes: {type: "string"}}, required: ["place"]}}}],
            tool_choice: "required"
        });
        assert.match(text, /data: \{"error":/, "the stream ends in an error event");
        const streamed = (text.match(/"arguments":/g) ?? []).length;
        const {line, entry, requests} = await logsOf(requestId);

        assert.equal(line.status, 200);
        assert.equal(line.error?.status, 500);
        assert.match(line.error.message, /context|KV cache/i, "the error in its own words, not the client's generic text");
        assert.ok(line.promptTokens! > 0);
        assert.ok(line.completionTokens! >= streamed - 1 && line.completionTokens! > 0, `${line.completionTokens} tokens, ${streamed} argument pieces streamed`);
        assert.ok(line.durationMs! > 0);

        assert.equal(entry.status, 200);
        assert.equal(entry.error_status, 500);
        assert.equal(entry.error, line.error.message);
        assert.equal(entry.prompt_tokens, line.promptTokens);
        assert.equal(entry.completion_tokens, line.completionTokens);
        assert.ok(entry.duration_ms > 0);

        const logged = requests.filter((item) => item.path === "/v1/chat/completions").at(-1);
        assert.deepEqual(logged?.error, line.error);
        const {metrics} = await (await fetch(`${server.url}/api/server`)).json() as {metrics: {serverErrorsTotal: number}};
        assert.ok(metrics.serverErrorsTotal >= 1, "it counts as a server error in the Server view");
    });

    test("a translated upstream stream that breaks (/v1/messages) and a forwarded one (/v1/chat/completions) are logged with their errors", async () => {
        const translated = await stream("/v1/messages", {model: "qwen-error", max_tokens: 20, messages: [{role: "user", content: "Hi"}]});
        assert.match(translated.text, /event: error/);
        const forwarded = await stream("/v1/chat/completions", {model: "qwen-broken", messages: [{role: "user", content: "Hi"}]});
        assert.match(forwarded.text, /"error"/);
        for (const [{requestId}, words] of [[translated, /the model crashed/], [forwarded, /stopped in the middle of its reply/]] as const) {
            const {line, entry} = await logsOf(requestId);
            assert.equal(line.status, 200);
            assert.ok(line.error != null && line.error.status >= 500, JSON.stringify(line));
            assert.match(line.error.message, words);
            assert.equal(entry.error_status, line.error.status);
            assert.equal(entry.error, line.error.message);
        }
    });

    test("a stream that ends well has no error in any log", async () => {
        const {requestId, text} = await stream("/v1/chat/completions", {model: "llama3.1-script", messages: [{role: "user", content: "Hi"}], temperature: 0});
        assert.match(text, /"finish_reason":"stop"/);
        const {line, entry} = await logsOf(requestId);
        assert.equal(line.error, undefined);
        assert.equal(entry.error_status, null);
        assert.equal(entry.error, null);
        assert.ok(entry.completion_tokens! > 0);
    });

    test("the audit log keeps a 75 KB body whole, and marks a body over 1 MiB as cut while staying JSON", async () => {
        const agentSized = {model: "no-such-model", max_tokens: 32000, system: "s".repeat(60_000), messages: [{role: "user", content: "é\"\\\n".repeat(4_000)}]};
        const huge = {model: "no-such-model", max_tokens: 100, messages: [{role: "user", content: "x".repeat(1_300_000)}]};
        const ids: string[] = [];
        for (const body of [agentSized, huge]) {
            const response = await fetch(`${server.url}/v1/messages`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
            assert.equal(response.status, 404);
            ids.push(response.headers.get("x-request-id")!);
        }
        const [whole, cut] = await Promise.all(ids.map(async (id) => (await logsOf(id)).entry));
        assert.ok(JSON.stringify(agentSized).length > 64 * 1024);
        assert.deepEqual(JSON.parse(whole!.request_body!), agentSized);
        const marked = JSON.parse(cut!.request_body!) as {truncated: boolean, length: number, start: string};
        assert.equal(marked.truncated, true);
        assert.equal(marked.length, JSON.stringify(huge).length);
        assert.equal(marked.start.length, 1024 * 1024);
        assert.ok(JSON.stringify(huge).startsWith(marked.start));
    });
});
