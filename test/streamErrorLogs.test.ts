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
        // A 256-token slot, which a forced call's arguments that run on fill.
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

    test("a forced call that fills its slot ends as a whole reply, logged with its tokens and no error", async () => {
        // This request used to fail its decode at the slot's end after its 200, and was logged as a success with no tokens.
        const {requestId, text} = await stream("/v1/chat/completions", {
            model: "llama3.1-script", messages: [{role: "user", content: "hi"}], temperature: 1, seed: 3,
            tools: [{type: "function", function: {name: "lookup_forecast", parameters: {type: "object", properties: {place: {type: "string"}, notes: {type: "string"}}, required: ["place"]}}}],
            tool_choice: "required", stream_options: {include_usage: true}
        });
        assert.doesNotMatch(text, /data: \{"error":/, "no error event");
        assert.match(text, /"finish_reason":"length"/, "it ends as if its tokens ran out");
        const usage = /"usage":\{"prompt_tokens":(\d+),"completion_tokens":(\d+)/.exec(text);
        assert.ok(usage != null, text.slice(-500));
        const {line, entry} = await logsOf(requestId);
        assert.equal(line.status, 200);
        assert.equal(line.error, undefined);
        assert.equal(line.promptTokens, Number(usage[1]));
        assert.equal(line.completionTokens, Number(usage[2]));
        assert.ok(line.promptTokens! + line.completionTokens! <= 256, "within the slot");
        assert.equal(entry.error_status, null);
        assert.equal(entry.completion_tokens, line.completionTokens);
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
            const {requests} = await logsOf(requestId);
            assert.ok(requests.some((item) => item.error?.message === line.error!.message), "the Server view's request log has it");
        }
        const {metrics} = await (await fetch(`${server.url}/api/server`)).json() as {metrics: {serverErrorsTotal: number}};
        assert.ok(metrics.serverErrorsTotal >= 2, "they count as server errors in the Server view");
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
