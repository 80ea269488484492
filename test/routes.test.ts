import assert from "node:assert/strict";
import {once} from "node:events";
import {mkdtemp, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {createServer} from "node:http";
import type {ServerResponse} from "node:http";
import type {AddressInfo} from "node:net";
import {after, before, describe, test} from "node:test";
import OpenAI from "openai";
import {ConfigError, parseServeArgs} from "../server/config.js";
import {digestReply} from "../server/routing/replyText.js";
import {metricValue} from "./helpers/metrics.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {eventually} from "./helpers/eventually.js";

const PRIMARY = "stories260K";
const QUANT = "stories260K-Q8_0";
/** Served only by the upstream: a route may send requests there too. */
const UPSTREAM_MODEL = "stories260K-F16";
/** Served by a tiny upstream that answers only when the test lets it. */
const SLOW = "slow-shadow";

type ShadowView = {model: string, in_flight: number, sent: number, dropped: number, failed: number, compared: number, agreed: number,
    agreement: number | null, similarity_mean: number | null,
    primary: {latency_ms_mean: number | null, latency_ms_p50: number | null, completion_tokens_mean: number | null},
    shadow: {latency_ms_mean: number | null, latency_ms_p50: number | null, completion_tokens_mean: number | null}};
type RouteView = {name: string, source: string, targets: {model: string, weight: number, share: number, requests: number}[], shadow: ShadowView | null};

const ask = {messages: [{role: "user" as const, content: "Once upon a time"}], temperature: 0};

async function routeOf(server: TestServer, name: string, headers: Record<string, string> = {}): Promise<RouteView> {
    const response = await fetch(`${server.url}/api/routes/${encodeURIComponent(name)}`, {headers});
    assert.equal(response.status, 200);
    return await response.json() as RouteView;
}

async function putRoute(server: TestServer, name: string, body: unknown): Promise<Response> {
    return fetch(`${server.url}/api/routes/${encodeURIComponent(name)}`, {method: "PUT", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
}

async function metricsOf(url: string, headers: Record<string, string> = {}): Promise<string> {
    const response = await fetch(`${url}/metrics`, {headers});
    assert.equal(response.status, 200);
    return response.text();
}

/** Chat completions a Hearth server has answered, from its own `/metrics`. */
async function chatRequestsServed(url: string): Promise<number> {
    let total = 0;
    for (const line of (await metricsOf(url)).split("\n"))
        if (line.startsWith("hearth_http_requests_total{") && line.includes('route="/v1/chat/completions"'))
            total += Number(line.split(" ").at(-1));
    return total;
}

/** One chat completion through the SDK: the text and the model Hearth says it chose. */
async function chat(client: OpenAI, model: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Promise<{text: string, chosen: string | null}> {
    const {data, response} = await client.chat.completions.create({model, ...ask, max_tokens: 1, ...extra} as OpenAI.ChatCompletionCreateParamsNonStreaming, {headers}).withResponse();
    return {text: data.choices[0]!.message.content ?? "", chosen: response.headers.get("x-hearth-model")};
}

/** A tiny OpenAI-compatible upstream serving {@link SLOW}: it holds each chat completion until `release()`. */
async function slowUpstream() {
    const held: ServerResponse[] = [];
    let posts = 0;
    const server = createServer((request, response) => {
        if (request.method === "GET" && request.url === "/v1/models") {
            response.writeHead(200, {"content-type": "application/json"});
            response.end(JSON.stringify({object: "list", data: [{id: SLOW, object: "model", created: 1, owned_by: "tiny"}]}));
            return;
        }
        request.resume();
        request.on("end", () => {
            posts += 1;
            held.push(response);
        });
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        get posts() {
            return posts;
        },
        release() {
            for (const response of held.splice(0)) {
                response.writeHead(200, {"content-type": "application/json"});
                response.end(JSON.stringify({
                    id: "chatcmpl-slow", object: "chat.completion", created: 1, model: SLOW,
                    choices: [{index: 0, message: {role: "assistant", content: "something else"}, finish_reason: "stop"}],
                    usage: {prompt_tokens: 3, completion_tokens: 2, total_tokens: 5}
                }));
            }
        },
        close: async () => {
            server.closeAllConnections();
            await new Promise((resolve) => server.close(resolve));
        }
    };
}

describe("routes: names that send requests to models by weight, with shadows", () => {
    let upstream: TestServer;
    let slow: Awaited<ReturnType<typeof slowUpstream>>;
    let front: TestServer;

    before(async () => {
        [upstream, slow] = await Promise.all([startTestServer({modelFiles: ["derived/stories260K-F16.gguf"]}), slowUpstream()]);
        const {config} = parseServeArgs([
            "--route", `split=${PRIMARY}:90,${QUANT}:10`,
            "--route", `mixed=${QUANT}:1,${UPSTREAM_MODEL}:1`,
            "--route", `mirrored=${PRIMARY}`, "--shadow", `mirrored=${UPSTREAM_MODEL}`,
            "--route", `busy=${PRIMARY}`, "--shadow", `busy=${SLOW}`
        ], {});
        front = await startTestServer({
            modelFiles: ["stories260K.gguf", "derived/stories260K-Q8_0.gguf"],
            upstreams: [{url: upstream.url, key: undefined}, {url: slow.url, key: undefined}],
            routes: config.routes
        });
        await eventually(async () => {
            const models = (await front.client.models.list()).data.map((model) => model.id);
            assert.ok(models.includes(UPSTREAM_MODEL) && models.includes(SLOW), JSON.stringify(models));
        });
    });
    after(async () => {
        slow?.release();
        await front?.close();
        await Promise.all([upstream?.close(), slow?.close()]);
    });

    test("/v1/models lists each route's name, owned by hearth-route, beside the models", async () => {
        const models = (await front.client.models.list()).data;
        for (const name of ["split", "mixed", "mirrored", "busy"])
            assert.equal(models.find((model) => model.id === name)?.owned_by, "hearth-route", name);
        assert.ok(models.some((model) => model.id === PRIMARY));
        assert.equal((await front.client.models.retrieve("split")).owned_by, "hearth-route");
    });

    test("a 90/10 route sends 200 requests within 6 points of 90/10, names its choice in x-hearth-model, and counts them", async () => {
        const before = await routeOf(front, "split");
        const chosen: string[] = [];
        const queue = Array.from({length: 200}, (_, index) => index);
        await Promise.all(Array.from({length: 8}, async () => {
            while (queue.shift() != null) {
                const reply = await chat(front.client, "split");
                assert.ok(reply.chosen != null);
                chosen.push(reply.chosen);
            }
        }));
        assert.equal(chosen.length, 200);
        assert.deepEqual([...new Set(chosen)].sort(), [PRIMARY, QUANT]);
        const primaryShare = chosen.filter((model) => model === PRIMARY).length / 200;
        assert.ok(Math.abs(primaryShare - 0.9) <= 0.06, `${PRIMARY} got ${primaryShare * 100}% of the requests`);
        // Requests without a session take turns by weight: any 200 in a row are exactly 180 and 20.
        assert.equal(primaryShare, 0.9);
        const after = await routeOf(front, "split");
        for (const model of [PRIMARY, QUANT]) {
            const counted = after.targets.find((target) => target.model === model)!.requests - before.targets.find((target) => target.model === model)!.requests;
            assert.equal(counted, chosen.filter((entry) => entry === model).length, model);
        }
        assert.deepEqual(after.targets.map((target) => [target.model, target.weight, target.share]), [[PRIMARY, 90, 0.9], [QUANT, 10, 0.1]]);
        const metrics = await metricsOf(front.url);
        assert.ok((metricValue(metrics, "hearth_route_requests_total", {route: "split", model: QUANT}) ?? 0) >= chosen.filter((model) => model === QUANT).length);
    });

    test("a session (x-session-id, or the body's user) stays on one model while the weights stay the same", async () => {
        const landed = new Map<string, Set<string>>();
        for (let session = 0; session < 12; session++)
            for (let turn = 0; turn < 4; turn++) {
                const byHeader = await chat(front.client, "mixed", {}, {"x-session-id": `conversation-${session}`});
                const byUser = await chat(front.client, "mixed", {user: `person-${session}`});
                for (const [key, reply] of [[`header-${session}`, byHeader], [`user-${session}`, byUser]] as const)
                    landed.set(key, (landed.get(key) ?? new Set()).add(reply.chosen!));
            }
        for (const [session, models] of landed)
            assert.equal(models.size, 1, `${session} landed on ${[...models].join(" and ")}`);
        // Different sessions spread over both targets, one of them an upstream's.
        const all = new Set([...landed.values()].flatMap((models) => [...models]));
        assert.deepEqual([...all].sort(), [QUANT, UPSTREAM_MODEL].sort());
    });

    test("a route's upstream target is forwarded there, streamed too, and the chosen model is in the audit log", async () => {
        const servedBefore = await chatRequestsServed(upstream.url);
        let upstreamReplies = 0;
        for (let index = 0; index < 30 && upstreamReplies < 3; index++) {
            const {data: stream, response} = await front.client.chat.completions.create({model: "mixed", ...ask, max_tokens: 4, stream: true}).withResponse();
            let text = "";
            for await (const chunk of stream)
                text += chunk.choices[0]?.delta.content ?? "";
            assert.ok(text.length > 0);
            const chosen = response.headers.get("x-hearth-model");
            assert.ok(chosen === QUANT || chosen === UPSTREAM_MODEL, String(chosen));
            if (chosen === UPSTREAM_MODEL)
                upstreamReplies += 1;
        }
        assert.equal(upstreamReplies, 3);
        assert.ok(await chatRequestsServed(upstream.url) - servedBefore >= 3);
        const {chosen} = await chat(front.client, "split", {}, {"x-request-id": "routed-audit-check"});
        await eventually(async () => {
            const audit = await (await fetch(`${front.url}/api/audit?limit=50`)).json() as {entries: {request_id: string, model: string | null}[]};
            assert.equal(audit.entries.find((entry) => entry.request_id === "routed-audit-check")?.model, chosen);
        });
    });

    test("new weights set with PUT /api/routes/NAME apply to the next request, without a restart; the Ollama API is routed too", async () => {
        try {
            const put = await putRoute(front, "split", {targets: [{model: PRIMARY, weight: 0}, {model: QUANT, weight: 5}]});
            assert.equal(put.status, 200);
            assert.equal(((await put.json()) as RouteView).source, "stored");
            for (let index = 0; index < 20; index++)
                assert.equal((await chat(front.client, "split")).chosen, QUANT);
            const ollama = await fetch(`${front.url}/api/chat`, {method: "POST", body: JSON.stringify({model: "split", messages: ask.messages, stream: false, options: {num_predict: 2}})});
            assert.equal(ollama.status, 200);
            assert.equal(ollama.headers.get("x-hearth-model"), QUANT);
            assert.equal(((await ollama.json()) as {model: string}).model, QUANT);
        } finally {
            // Deleting the stored route brings back the one given at start.
            assert.equal((await fetch(`${front.url}/api/routes/split`, {method: "DELETE"})).status, 204);
        }
        const restored = await routeOf(front, "split");
        assert.equal(restored.source, "startup");
        assert.deepEqual(restored.targets.map((target) => target.weight), [90, 10]);
    });

    test("the shadow gets a copy of every request, and the client gets only the primary's reply, the same as asking the primary", async () => {
        const servedBefore = await chatRequestsServed(upstream.url);
        const sentBefore = (await routeOf(front, "mirrored")).shadow!.sent;
        const direct = await front.client.chat.completions.create({model: PRIMARY, ...ask, max_tokens: 12});
        const directText = direct.choices[0]!.message.content;
        for (let index = 0; index < 3; index++) {
            const whole = await front.client.chat.completions.create({model: "mirrored", ...ask, max_tokens: 12}).withResponse();
            assert.equal(whole.data.choices[0]!.message.content, directText);
            assert.equal(whole.data.model, PRIMARY);
            assert.equal(whole.response.headers.get("x-hearth-model"), PRIMARY);
            const stream = await front.client.chat.completions.create({model: "mirrored", ...ask, max_tokens: 12, stream: true});
            let text = "";
            for await (const chunk of stream) {
                assert.equal(chunk.model, PRIMARY);
                text += chunk.choices[0]?.delta.content ?? "";
            }
            assert.equal(text, directText);
            // The copies finish before the next pair is sent, so none meets a full shadow queue (4) on a slow machine.
            await eventually(async () => assert.equal((await routeOf(front, "mirrored")).shadow!.in_flight, 0));
        }
        const route = await eventually(async () => {
            const view = await routeOf(front, "mirrored");
            assert.equal(view.shadow!.sent - sentBefore, 6);
            assert.equal(view.shadow!.in_flight, 0);
            assert.ok(view.shadow!.compared >= 6, JSON.stringify(view.shadow));
            return view;
        });
        // The copies reached the shadow's own server, one per request.
        assert.equal(await chatRequestsServed(upstream.url) - servedBefore, 6);
        const shadow = route.shadow!;
        assert.equal(shadow.model, UPSTREAM_MODEL);
        assert.equal(shadow.failed, 0);
        assert.ok(shadow.agreement != null && shadow.agreement >= 0 && shadow.agreement <= 1);
        assert.ok(shadow.similarity_mean != null && shadow.similarity_mean >= 0 && shadow.similarity_mean <= 1);
        // The F16 file and the primary decode greedily to the same text: the comparison says they agree.
        assert.equal(shadow.agreed, shadow.compared, JSON.stringify(shadow));
        for (const side of [shadow.primary, shadow.shadow]) {
            assert.ok(side.latency_ms_mean != null && side.latency_ms_mean > 0);
            assert.ok(side.completion_tokens_mean != null && side.completion_tokens_mean > 0 && side.completion_tokens_mean <= 12);
        }
        const metrics = await metricsOf(front.url);
        assert.ok((metricValue(metrics, "hearth_shadow_requests_total", {route: "mirrored", shadow: UPSTREAM_MODEL, outcome: "compared"}) ?? 0) >= 6);
        assert.ok((metricValue(metrics, "hearth_shadow_comparisons_total", {route: "mirrored", agree: "true"}) ?? 0) >= 6);
        assert.ok((metricValue(metrics, "hearth_shadow_latency_seconds_count", {route: "mirrored", side: "shadow"}) ?? 0) >= 6);
        assert.ok((metricValue(metrics, "hearth_shadow_completion_tokens_total", {route: "mirrored", side: "primary"}) ?? 0) > 0);
    });

    test("a shadow that does not answer never holds the primary replies; past 4 copies in flight the rest are dropped and counted", async () => {
        const before = (await routeOf(front, "busy")).shadow!;
        const replies = await Promise.all(Array.from({length: 12}, () => chat(front.client, "busy", {max_tokens: 4})));
        // All 12 primary replies came while the shadow held every copy it got.
        assert.ok(replies.every((reply) => reply.chosen === PRIMARY));
        const during = await routeOf(front, "busy");
        assert.equal(during.shadow!.in_flight, 4);
        assert.equal(during.shadow!.sent - before.sent, 4);
        assert.equal(during.shadow!.dropped - before.dropped, 8);
        await eventually(async () => assert.equal(slow.posts, 4));
        const metrics = await metricsOf(front.url);
        assert.equal(metricValue(metrics, "hearth_shadow_requests_total", {route: "busy", shadow: SLOW, outcome: "dropped"}), 8);
        assert.equal(metricValue(metrics, "hearth_shadow_in_flight", {route: "busy"}), 4);
        slow.release();
        const after = await eventually(async () => {
            const view = (await routeOf(front, "busy")).shadow!;
            assert.equal(view.in_flight, 0);
            assert.equal(view.compared - before.compared, 4);
            return view;
        });
        // The tiny shadow answers something else: compared, and found not to agree.
        assert.equal(after.agreed, before.agreed);
        assert.ok(after.similarity_mean != null && after.similarity_mean < 1);
    });

    test("a shadow of a route whose model is an upstream's compares the relayed stream with the local shadow's reply", async () => {
        const put = await putRoute(front, "outward", {targets: [{model: UPSTREAM_MODEL}], shadow: PRIMARY});
        assert.equal(put.status, 200);
        try {
            for (let index = 0; index < 2; index++) {
                // A relayed stream tells its tokens only with usage, which the client asks for (Hearth never adds it to a reply).
                const {data: stream, response} = await front.client.chat.completions.create({model: "outward", ...ask, max_tokens: 8, stream: true, stream_options: {include_usage: true}}).withResponse();
                assert.equal(response.headers.get("x-hearth-model"), UPSTREAM_MODEL);
                for await (const _ of stream)
                    ;
            }
            const shadow = await eventually(async () => {
                const view = (await routeOf(front, "outward")).shadow!;
                assert.equal(view.compared, 2, JSON.stringify(view));
                return view;
            });
            assert.equal(shadow.failed, 0);
            assert.equal(shadow.agreed, 2, "the F16 upstream and the local model decode greedily to the same text");
            assert.equal(shadow.primary.completion_tokens_mean, 8);
            assert.equal(shadow.shadow.completion_tokens_mean, 8);
        } finally {
            assert.equal((await fetch(`${front.url}/api/routes/outward`, {method: "DELETE"})).status, 204);
        }
    });

    test("the comparison reads the same final text from each API's reply, streamed or not", async () => {
        const post = async (path: string, body: Record<string, unknown>) => {
            const response = await fetch(`${front.url}${path}`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: PRIMARY, ...body})});
            assert.equal(response.status, 200, path);
            return digestReply(await response.text(), response.headers.get("content-type") ?? "");
        };
        const messages = ask.messages;
        const apis: [string, Record<string, unknown>, Record<string, unknown>, Record<string, unknown>][] = [
            ["/v1/chat/completions", {messages, max_tokens: 8, temperature: 0}, {stream: true}, {stream: false}],
            ["/v1/completions", {prompt: "Once upon a time", max_tokens: 8, temperature: 0}, {stream: true}, {stream: false}],
            ["/v1/responses", {input: "Once upon a time", max_output_tokens: 8, temperature: 0}, {stream: true}, {stream: false}],
            ["/v1/messages", {messages, max_tokens: 8, temperature: 0}, {stream: true}, {stream: false}],
            ["/api/chat", {messages, options: {num_predict: 8, temperature: 0}}, {stream: true}, {stream: false}],
            ["/api/generate", {prompt: "Once upon a time", options: {num_predict: 8, temperature: 0}}, {stream: true}, {stream: false}]
        ];
        for (const [path, body, streamed, whole] of apis) {
            const [fromStream, fromBody] = [await post(path, {...body, ...streamed}), await post(path, {...body, ...whole})];
            assert.ok(fromBody.text.length > 0, `${path}: ${JSON.stringify(fromBody)}`);
            assert.equal(fromStream.text, fromBody.text, path);
            assert.equal(fromBody.completionTokens, 8, `${path}: ${JSON.stringify(fromBody)}`);
        }
    });

    test("bad routes get a 400 from /api/routes that says what is wrong", async () => {
        const cases: [string, unknown, RegExp][] = [
            ["empty", {targets: []}, /targets/],
            ["negative", {targets: [{model: PRIMARY, weight: -1}]}, /weight/],
            ["zero", {targets: [{model: PRIMARY, weight: 0}]}, /Every weight .* is 0/],
            ["twice", {targets: [{model: PRIMARY}, {model: PRIMARY}]}, /twice/],
            ["to-a-route", {targets: [{model: "split"}]}, /is a route/],
            ["shadow-route", {targets: [{model: PRIMARY}], shadow: "mixed"}, /is a route/],
            ["bad name", {targets: [{model: PRIMARY}]}, /not a route name/],
            ["unknown-field", {targets: [{model: PRIMARY}], extra: 1}, /extra|additional/i]
        ];
        for (const [name, body, message] of cases) {
            const response = await putRoute(front, name, body);
            assert.equal(response.status, 400, name);
            const error = (await response.json() as {error: string}).error;
            assert.match(error, message, name);
        }
        const startup = await fetch(`${front.url}/api/routes/mixed`, {method: "DELETE"});
        assert.equal(startup.status, 400);
        assert.match((await startup.json() as {error: string}).error, /--route/);
        assert.equal((await fetch(`${front.url}/api/routes/nothing-here`, {method: "DELETE"})).status, 404);
        assert.equal((await front.client.models.list()).data.filter((model) => model.owned_by === "hearth-route").length, 4);
    });
});

describe("routes: a target whose upstream is down", () => {
    test("is passed over while another target can answer, sessions that went there included", async () => {
        const upstream = await startTestServer({modelFiles: ["derived/stories260K-F16.gguf"]});
        const {config} = parseServeArgs(["--route", `failover=${QUANT}:1,${UPSTREAM_MODEL}:1`], {});
        const front = await startTestServer({modelFiles: ["derived/stories260K-Q8_0.gguf"], upstreams: [{url: upstream.url, key: undefined}], routes: config.routes});
        try {
            await eventually(async () => assert.ok((await front.client.models.list()).data.some((model) => model.id === UPSTREAM_MODEL)));
            const chosen = async (session: string) => {
                const {response} = await front.client.chat.completions.create({model: "failover", ...ask, max_tokens: 2}, {headers: {"x-session-id": session}, maxRetries: 0}).withResponse();
                return response.headers.get("x-hearth-model");
            };
            const sessions = Array.from({length: 12}, (_, index) => `session-${index}`);
            const before = await Promise.all(sessions.map(chosen));
            assert.ok(before.includes(UPSTREAM_MODEL) && before.includes(QUANT), JSON.stringify(before));

            await upstream.close();
            // The first request that fails takes the upstream out (it is retried on nothing else, so it fails).
            await eventually(async () => {
                await assert.rejects(front.client.chat.completions.create({model: UPSTREAM_MODEL, ...ask, max_tokens: 2}, {maxRetries: 0}));
                const listed = await (await fetch(`${front.url}/api/upstreams`)).json() as {upstreams: {health: string}[]};
                assert.equal(listed.upstreams[0]?.health, "down");
            });
            const after = await Promise.all(sessions.map(chosen));
            assert.deepEqual(after, sessions.map(() => QUANT));
        } finally {
            await front.close();
            await upstream.close().catch(() => undefined);
        }
    });
});

describe("routes: flags", () => {
    test("a bad --route or --shadow is refused at start with a message a person can act on", () => {
        const refused: [string[], RegExp][] = [
            [["--route", "chat"], /NAME=MODEL/],
            [["--route", "chat="], /names no model/],
            [["--route", "chat=a:0,b:0"], /Every weight/],
            [["--route", "chat=a,a"], /twice/],
            [["--route", "chat=a", "--route", "chat=b"], /given twice/],
            [["--route", "chat=a", "--route", "other=chat"], /is a route too/],
            [["--shadow", "chat=b"], /no --route gives/],
            [["--route", "chat=a", "--shadow", "chat"], /NAME=MODEL/],
            [["--route", "chat=a", "--shadow", "chat=b", "--shadow", "chat=c"], /two shadows/]
        ];
        for (const [argv, message] of refused)
            assert.throws(() => parseServeArgs(argv, {}), (error: Error) => error instanceof ConfigError && message.test(error.message), argv.join(" "));
        const {config} = parseServeArgs(["--route", "chat=owner/repo:Q4_K_M:90,owner/repo:Q5_K_M:10", "--shadow", "chat=owner/repo:Q8_0"], {});
        assert.deepEqual(config.routes, [{name: "chat", targets: [{model: "owner/repo:Q4_K_M", weight: 90}, {model: "owner/repo:Q5_K_M", weight: 10}], shadow: "owner/repo:Q8_0"}]);
        const fromEnv = parseServeArgs([], {HEARTH_ROUTES: "a=x:3,y;b=z", HEARTH_SHADOWS: "a=w"}).config.routes;
        assert.deepEqual(fromEnv, [{name: "a", targets: [{model: "x", weight: 3}, {model: "y", weight: 1}], shadow: "w"}, {name: "b", targets: [{model: "z", weight: 1}]}]);
    });
});

describe("routes: keys and rate limits hold for routed requests", () => {
    const KEY = "routes-test-key-123";
    let server: TestServer;
    before(async () => {
        server = await startTestServer({
            modelFiles: ["stories260K.gguf", "derived/stories260K-Q8_0.gguf"], apiKeys: [KEY], rateLimitPerMinute: 3,
            routes: [{name: "guarded", targets: [{model: PRIMARY, weight: 1}], shadow: QUANT}]
        });
    });
    after(async () => {
        await server?.close();
    });

    test("without a key a routed request gets 401; with one, three a minute pass (their shadow copies not counted) and the fourth gets 429", async () => {
        const keyless = await fetch(`${server.baseURL}/chat/completions`, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({model: "guarded", ...ask, max_tokens: 1})});
        assert.equal(keyless.status, 401);
        assert.equal(((await keyless.json()) as {error: {code: string}}).error.code, "missing_api_key");
        await assert.rejects(chat(server.client, "guarded"), (error: {status?: number, code?: string}) => error.status === 401 && error.code === "invalid_api_key");
        const client = new OpenAI({baseURL: server.baseURL, apiKey: KEY, maxRetries: 0});
        for (let index = 0; index < 3; index++)
            assert.equal((await chat(client, "guarded")).chosen, PRIMARY);
        await assert.rejects(chat(client, "guarded"), (error: {status?: number, code?: string}) => error.status === 429 && error.code === "rate_limit_exceeded");
        const headers = {authorization: `Bearer ${KEY}`};
        const route = await eventually(async () => {
            const view = await routeOf(server, "guarded", headers);
            assert.equal(view.shadow!.compared, 3, JSON.stringify(view.shadow));
            return view;
        });
        assert.equal(route.shadow!.failed, 0);
        assert.equal(route.targets[0]!.requests, 3);
    });
});

describe("routes: stored in the data folder", () => {
    test("a route set with PUT is served again after a restart, and a deleted one is gone", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-routes-home-"));
        try {
            let server = await startTestServer({home, modelFiles: ["stories260K.gguf", "derived/stories260K-Q8_0.gguf"]});
            try {
                assert.equal((await putRoute(server, "kept", {targets: [{model: PRIMARY, weight: 3}, {model: QUANT, weight: 1}], shadow: QUANT})).status, 200);
                assert.equal((await putRoute(server, "dropped", {targets: [{model: PRIMARY}]})).status, 200);
                assert.equal((await fetch(`${server.url}/api/routes/dropped`, {method: "DELETE"})).status, 204);
            } finally {
                await server.close();
            }
            server = await startTestServer({home, modelFiles: ["stories260K.gguf", "derived/stories260K-Q8_0.gguf"]});
            try {
                const routes = (await (await fetch(`${server.url}/api/routes`)).json() as {routes: RouteView[]}).routes;
                assert.deepEqual(routes.map((route) => [route.name, route.source, route.targets.map((target) => `${target.model}:${target.weight}`).join(","), route.shadow?.model]),
                    [["kept", "stored", `${PRIMARY}:3,${QUANT}:1`, QUANT]]);
                assert.ok([PRIMARY, QUANT].includes((await chat(server.client, "kept")).chosen!));
            } finally {
                await server.close();
            }
        } finally {
            await rm(home, {recursive: true, force: true});
        }
    });
});
