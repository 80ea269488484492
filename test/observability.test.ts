import assert from "node:assert/strict";
import {Writable} from "node:stream";
import {after, before, describe, test} from "node:test";
import OpenAI from "openai";
import {metricValue} from "./helpers/metrics.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

type AuditEntry = {request_id: string, key_id: string | null, method: string, path: string, model: string | null, status: number,
    prompt_tokens: number | null, completion_tokens: number | null, request_body: string | null};

describe("/metrics, /ready, request ids, logs and the audit log", () => {
    const logLines: Record<string, unknown>[] = [];
    let server: TestServer;
    let client: OpenAI;
    const key = "observe-key-1234";

    before(async () => {
        const stream = new Writable({write(chunk: Buffer, _encoding, done) {
            for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
                logLines.push(JSON.parse(line) as Record<string, unknown>);
            done();
        }});
        server = await startTestServer({apiKeys: [key], logger: {level: "info", stream}});
        client = new OpenAI({baseURL: server.baseURL, apiKey: key, maxRetries: 0});
    });
    after(() => server.close());

    const get = (path: string) => fetch(`${server.url}${path}`, {headers: {authorization: `Bearer ${key}`}});

    test("/ready is 200 once a model can serve; /health and /ready need no key", async () => {
        const ready = await fetch(`${server.url}/ready`);
        assert.equal(ready.status, 200);
        assert.deepEqual(await ready.json(), {status: "ready", loaded_models: ["stories260K"]});
    });

    test("/metrics counts requests by route and status, tokens, time to first token, slots and memory, in Prometheus' format", async () => {
        await client.chat.completions.create({model: "stories260K", messages: [{role: "user", content: "Once upon a time"}], max_tokens: 8, temperature: 0});
        const stream = await client.chat.completions.create({model: "stories260K", messages: [{role: "user", content: "Once upon a time"}], max_tokens: 8, stream: true});
        for await (const chunk of stream)
            void chunk;
        await fetch(`${server.baseURL}/models`);

        const response = await get("/metrics");
        assert.equal(response.status, 200);
        assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
        const text = await response.text();
        assert.equal(metricValue(text, "hearth_http_requests_total", {method: "POST", route: "/v1/chat/completions", status: "200"}), 2);
        assert.equal(metricValue(text, "hearth_http_requests_total", {method: "GET", route: "/v1/models", status: "401"}), 1);
        assert.ok(metricValue(text, "hearth_generated_tokens_total", {model: "stories260K"})! >= 2);
        assert.equal(metricValue(text, "hearth_time_to_first_token_seconds_count", {model: "stories260K"}), 2);
        assert.equal(metricValue(text, "hearth_generation_tokens_per_second_count", {model: "stories260K"}), 2);
        assert.ok(metricValue(text, "hearth_http_request_duration_seconds_count", {method: "POST", route: "/v1/chat/completions"})! >= 2);
        assert.equal(metricValue(text, "hearth_busy_slots", {model: "stories260K"}), 0);
        assert.equal(metricValue(text, "hearth_slots", {model: "stories260K"}), 4);
        assert.equal(metricValue(text, "hearth_queue_depth", {model: "stories260K"}), 0);
        assert.equal(metricValue(text, "hearth_loaded_models"), 1);
        assert.equal(metricValue(text, "hearth_download_bytes_total"), 0);
        assert.ok(metricValue(text, "process_resident_memory_bytes")! > 0);
    });

    test("every response carries a request id (the client's, when it sent a sane one), found again in the logs and the audit log", async () => {
        const mine = await fetch(`${server.baseURL}/completions`, {
            method: "POST",
            headers: {"content-type": "application/json", "authorization": `Bearer ${key}`, "x-request-id": "trace-42"},
            body: JSON.stringify({model: "stories260K", prompt: "a secret prompt", max_tokens: 3})
        });
        assert.equal(mine.status, 200);
        assert.equal(mine.headers.get("x-request-id"), "trace-42");
        const generated = await fetch(`${server.url}/health`, {headers: {"x-request-id": "bad id with spaces"}});
        assert.match(generated.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);

        const line = logLines.find((entry) => entry.reqId === "trace-42" && entry.msg === "request");
        assert.ok(line != null, "one JSON log line for the request");
        assert.equal(line.path, "/v1/completions");
        assert.equal(line.status, 200);
        assert.equal(line.keyId, "startup-1");
        assert.equal(line.model, "stories260K");
        assert.ok((line.completionTokens as number) > 0);
        const everything = JSON.stringify(logLines);
        assert.ok(!everything.includes(key), "no key in the logs");
        assert.ok(!everything.includes("a secret prompt"), "no prompt in the logs");

        const audit = await (await get("/api/audit?limit=50")).json() as {prompts_kept: boolean, entries: AuditEntry[]};
        assert.equal(audit.prompts_kept, false);
        const entry = audit.entries.find((item) => item.request_id === "trace-42");
        assert.ok(entry != null);
        assert.deepEqual({...entry, completion_tokens: entry.completion_tokens! > 0}, {
            ...entry, key_id: "startup-1", method: "POST", path: "/v1/completions", model: "stories260K", status: 200,
            request_body: null, completion_tokens: true
        });
        assert.ok(entry.prompt_tokens! > 0);
        const refused = audit.entries.find((item) => item.path === "/v1/models" && item.status === 401);
        assert.ok(refused != null && refused.key_id == null, "refusals are audited too");
    });
});

describe("the audit log with --audit-prompts", () => {
    let server: TestServer;
    before(async () => {
        server = await startTestServer({auditPrompts: true});
    });
    after(() => server.close());

    test("keeps request bodies when the operator turns it on", async () => {
        await server.client.completions.create({model: "stories260K", prompt: "a kept prompt", max_tokens: 2});
        const audit = await (await fetch(`${server.url}/api/audit`)).json() as {prompts_kept: boolean, entries: AuditEntry[]};
        assert.equal(audit.prompts_kept, true);
        const entry = audit.entries.find((item) => item.path === "/v1/completions");
        assert.match(entry?.request_body ?? "", /a kept prompt/);
    });
});

describe("/ready without a model", () => {
    test("is 503 with a reason while nothing can serve", async () => {
        const server = await startTestServer({models: []});
        try {
            const response = await fetch(`${server.url}/ready`);
            assert.equal(response.status, 503);
            assert.equal((await response.json() as {status: string}).status, "no_model");
            assert.equal(response.headers.get("retry-after"), "5");
        } finally {
            await server.close();
        }
    });
});

describe("the request timeout", () => {
    let server: TestServer;
    before(async () => {
        const model = await testModel("synthetic/synthetic-llama-23M-Q8_0.gguf");
        server = await startTestServer({models: [{path: model, names: ["synthetic"]}], ctxSize: 1024, parallel: 1, requestTimeoutMs: 300});
    });
    after(() => server.close());

    test("ends a long generation early with finish_reason length, streamed or not, and the reply stays well formed", async () => {
        const started = performance.now();
        const completion = await server.client.completions.create({model: "synthetic", prompt: "Once upon a time", max_tokens: 1000, temperature: 0});
        assert.equal(completion.choices[0]!.finish_reason, "length");
        assert.ok(completion.usage!.completion_tokens < 1000, `${completion.usage!.completion_tokens} tokens`);
        assert.ok(performance.now() - started < 5000);

        const stream = await server.client.chat.completions.create({model: "synthetic", messages: [{role: "user", content: "Hi"}], max_tokens: 1000, stream: true, stream_options: {include_usage: true}});
        let finish: string | null | undefined;
        let usage: OpenAI.CompletionUsage | undefined | null;
        for await (const chunk of stream) {
            finish = chunk.choices[0]?.finish_reason ?? finish;
            usage = chunk.usage ?? usage;
        }
        assert.equal(finish, "length");
        assert.ok(usage != null && usage.completion_tokens < 1000);
    });
});
