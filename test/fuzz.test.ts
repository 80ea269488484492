import assert from "node:assert/strict";
import {after, before, describe, test} from "node:test";
import fc from "fast-check";
import {startFakeHub} from "./helpers/fakeHub.js";
import {crafted, fixtureImage} from "./helpers/imageBytes.js";
import type {FakeHub} from "./helpers/fakeHub.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";

/**
 * Thousands of malformed bodies against every JSON route of the real server: whatever comes in, the answer
 * is never a 5xx, a refusal always says why in the route's error shape, and the server keeps serving.
 * `HEARTH_FUZZ_RUNS` sets the runs per route and kind of body (default 50).
 */

const RUNS = Number(process.env.HEARTH_FUZZ_RUNS ?? 50);
const KEY = "fuzz-key-000000";
const MODEL = "stories260K";

type Route = {method: "POST" | "PATCH" | "PUT" | "DELETE", path: string, valid: Record<string, unknown>};
type Failure = {route: string, body: string, status: number, reply: string};

const message = fc.record({
    role: fc.oneof(fc.constantFrom("user", "system", "assistant", "tool", "developer"), fc.string()),
    content: fc.oneof(fc.string(), fc.jsonValue(), fc.array(fc.record({type: fc.oneof(fc.constant("text"), fc.string()), text: fc.jsonValue()}, {requiredKeys: []})))
}, {requiredKeys: []});

/** Any JSON; a valid body with some fields replaced by anything; a valid body with hostile messages; text that is not JSON. */
function bodiesFor(valid: Record<string, unknown>): fc.Arbitrary<string>[] {
    const keys = [...Object.keys(valid), "messages", "prompt", "max_tokens", "n", "stream", "options", "response_format", "tools", "stop", "logit_bias"];
    return [
        fc.jsonValue().map((value) => JSON.stringify(value)),
        fc.dictionary(fc.constantFrom(...keys), fc.jsonValue(), {maxKeys: 4}).map((changes) => JSON.stringify({...valid, ...changes})),
        fc.array(message, {maxLength: 4}).map((messages) => JSON.stringify({...valid, messages})),
        fc.string({maxLength: 200}).filter((text) => {
            try {
                JSON.parse(text);
                return false;
            } catch {
                return true;
            }
        })
    ];
}

describe("a fuzzer over every JSON route", {timeout: 15 * 60_000}, () => {
    let hub: FakeHub;
    let server: TestServer;
    let routes: Route[];
    const failures: Failure[] = [];
    let requests = 0;

    const send = async (method: string, path: string, body: string | undefined, contentType = "application/json") => {
        requests++;
        const response = await fetch(`${server.url}${path}`, {
            method,
            headers: {"authorization": `Bearer ${KEY}`, ...(body != null ? {"content-type": contentType} : {})},
            body
        });
        const reply = await response.text();
        return {status: response.status, reply};
    };

    /** A 4xx must explain itself in the route's error shape: `{"error": "…"}` under /api, `{"error": {"message": …}}` elsewhere. */
    const explained = (path: string, reply: string) => {
        try {
            const error = (JSON.parse(reply) as {error?: unknown}).error;
            return path.startsWith("/api/") ? typeof error === "string" && error.length > 0 : typeof (error as {message?: unknown})?.message === "string";
        } catch {
            return false;
        }
    };

    const check = async (route: string, method: string, path: string, body: string | undefined) => {
        const {status, reply} = await send(method, path, body);
        if (status >= 500 || (status >= 400 && !explained(path, reply)))
            failures.push({route, body: body ?? "", status, reply: reply.slice(0, 300)});
        return true;
    };

    before(async () => {
        hub = await startFakeHub([]);
        server = await startTestServer({apiKeys: [KEY], ctxSize: 256, parallel: 2, hub: {endpoint: hub.url, token: undefined}, maxBodyBytes: 96 * 1024 * 1024});
        const conversation = await (await send("POST", "/api/conversations", JSON.stringify({title: "fuzz", model: MODEL}))).reply;
        const id = (JSON.parse(conversation) as {id: string}).id;
        const added = JSON.parse((await send("POST", `/api/conversations/${id}/messages`, JSON.stringify({role: "user", content: "Hi"}))).reply) as {id: string};
        const absent = "hf.co/nobody/nothing-GGUF:Q4_0";
        routes = [
            {method: "POST", path: "/v1/chat/completions", valid: {model: MODEL, messages: [{role: "user", content: "Hi"}], max_tokens: 3}},
            {method: "POST", path: "/v1/completions", valid: {model: MODEL, prompt: "Once", max_tokens: 3}},
            {method: "POST", path: "/v1/responses", valid: {model: MODEL, input: "Hi", max_output_tokens: 3}},
            {method: "POST", path: "/v1/embeddings", valid: {model: MODEL, input: "Hi"}},
            {method: "POST", path: "/v1/messages", valid: {model: MODEL, max_tokens: 3, messages: [{role: "user", content: "Hi"}]}},
            {method: "POST", path: "/v1/messages/count_tokens", valid: {model: MODEL, messages: [{role: "user", content: "Hi"}]}},
            {method: "POST", path: "/api/chat", valid: {model: MODEL, messages: [{role: "user", content: "Hi"}], stream: false, options: {num_predict: 3}}},
            {method: "POST", path: "/api/generate", valid: {model: MODEL, prompt: "Once", stream: false, options: {num_predict: 3}}},
            {method: "POST", path: "/api/embed", valid: {model: MODEL, input: "Hi"}},
            {method: "POST", path: "/api/embeddings", valid: {model: MODEL, prompt: "Hi"}},
            {method: "POST", path: "/api/show", valid: {model: MODEL}},
            {method: "DELETE", path: "/api/delete", valid: {model: "nothing-here"}},
            {method: "POST", path: "/api/pull", valid: {model: absent, stream: false}},
            {method: "POST", path: "/api/create", valid: {model: "fuzz-preset", from: MODEL, system: "Be brief.", parameters: {temperature: 0, num_predict: 3, stop: ["x"]},
                messages: [{role: "user", content: "Hi"}, {role: "assistant", content: "Hello"}], stream: false}},
            {method: "POST", path: "/api/create", valid: {name: "fuzz-modelfile", modelfile: `FROM ${MODEL}\nSYSTEM """Be\nbrief."""\nPARAMETER top_k 4\nMESSAGE user Hi`, stream: false}},
            {method: "POST", path: "/api/copy", valid: {source: MODEL, destination: "fuzz-copy"}},
            {method: "POST", path: "/api/load", valid: {model: "nothing-here"}},
            {method: "POST", path: "/api/unload", valid: {model: "nothing-here"}},
            {method: "POST", path: "/api/conversations", valid: {title: "t"}},
            {method: "PATCH", path: `/api/conversations/${id}`, valid: {title: "x"}},
            {method: "POST", path: `/api/conversations/${id}/messages`, valid: {role: "user", content: "Hi"}},
            {method: "PATCH", path: `/api/conversations/${id}/messages/${added.id}`, valid: {content: "Hi"}},
            {method: "POST", path: `/api/conversations/${id}/reply`, valid: {model: MODEL}},
            {method: "POST", path: "/api/downloads", valid: {model: absent}},
            {method: "POST", path: "/api/downloads/pause", valid: {model: absent}},
            {method: "DELETE", path: "/api/downloads", valid: {model: absent}},
            {method: "POST", path: "/api/server/keys", valid: {name: "k"}},
            {method: "PATCH", path: "/api/server/settings", valid: {allowed_origins: []}},
            {method: "POST", path: "/api/upstreams", valid: {url: "http://127.0.0.1:9", key: "k"}},
            {method: "PUT", path: "/api/routes/fuzzed", valid: {targets: [{model: MODEL, weight: 90}, {model: "other", weight: 10}], shadow: MODEL}}
        ];
    });
    after(async () => {
        await server?.close();
        await hub?.close();
    });

    test("malformed bodies on every route: never a 5xx, always an explained 4xx", async () => {
        for (const route of routes) {
            const name = `${route.method} ${route.path}`;
            for (const bodies of bodiesFor(route.valid))
                await fc.assert(fc.asyncProperty(bodies, (body) => check(name, route.method, route.path, body)), {numRuns: RUNS});
        }
        assert.ok(requests >= routes.length * 4 * RUNS, `${requests} requests`);
        assert.deepEqual(failures.slice(0, 5), []);
    });

    test("bad images on every API that takes them: a 400 that says why, never a 5xx, and the server keeps serving", async () => {
        const fixtures = await Promise.all(["red.png", "yellow.jpg", "magenta-wide.png"].map((name) => fixtureImage(name)));
        const size = fc.oneof(fc.constantFrom(0, 1, 0x3fff, 0xffff, 0x7fffffff, 0xffffffff), fc.nat());
        const side = (max: number) => fc.oneof(fc.constantFrom(0, 1, max), fc.integer({min: 0, max}));
        const bytes = fc.oneof(
            fc.uint8Array({maxLength: 64}),
            fc.record({width: size, height: size}).map(({width, height}) => crafted.png(width >>> 0, height >>> 0)),
            fc.record({width: side(0xffff), height: side(0xffff)}).map(({width, height}) => crafted.gif(width, height)),
            fc.record({width: fc.integer({min: -0x7fffffff, max: 0x7fffffff}), height: fc.integer({min: -0x7fffffff, max: 0x7fffffff})}).map(({width, height}) => crafted.bmp(width, height)),
            fc.record({width: side(0x4000), height: side(0x4000)}).map(({width, height}) => crafted.webpLossless(Math.max(1, width), Math.max(1, height))),
            fc.record({width: side(0x1000000), height: side(0x1000000)}).map(({width, height}) => crafted.webpExtended(Math.max(1, width), Math.max(1, height))),
            fc.record({image: fc.constantFrom(...fixtures), end: fc.nat()}).map(({image, end}) => image.subarray(0, end % image.length)),
            fc.record({image: fc.constantFrom(...fixtures), at: fc.nat(), value: fc.integer({min: 0, max: 255})}).map(({image, at, value}) => {
                const flipped = Uint8Array.from(image);
                flipped[at % flipped.length] = value;
                return flipped;
            })
        );
        const base64 = fc.oneof(
            bytes.map((data) => Buffer.from(data).toString("base64")),
            fc.constantFrom(...fixtures).map((image) => image.toString("base64")),
            fc.string({maxLength: 80}),
            fc.constantFrom("", "====", "%%%", "A", "data:image/png;base64,")
        );
        const declared = fc.oneof(fc.constantFrom("image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/svg+xml", "text/plain", ""), fc.string({maxLength: 20}));
        const requests = fc.record({data: base64, declared, api: fc.nat(5)}).map(({data, declared, api}) => {
            const uri = `data:${declared};base64,${data}`;
            const image = [
                {path: "/v1/chat/completions", body: {model: MODEL, max_tokens: 3, messages: [{role: "user", content: [{type: "text", text: "Hi"}, {type: "image_url", image_url: {url: uri}}]}]}},
                {path: "/v1/chat/completions", body: {model: MODEL, max_tokens: 3, messages: [{role: "user", content: [{type: "image_url", image_url: data}]}]}},
                {path: "/v1/responses", body: {model: MODEL, max_output_tokens: 3, input: [{role: "user", content: [{type: "input_image", image_url: uri}]}]}},
                {path: "/v1/messages", body: {model: MODEL, max_tokens: 3, messages: [{role: "user", content: [{type: "image", source: {type: "base64", media_type: declared, data}}]}]}},
                {path: "/api/chat", body: {model: MODEL, stream: false, messages: [{role: "user", content: "Hi", images: [data]}]}},
                {path: "/api/generate", body: {model: MODEL, stream: false, prompt: "Hi", images: [data]}}
            ];
            return image[api]!;
        });
        await fc.assert(fc.asyncProperty(requests, async ({path, body}) => {
            const {status, reply} = await send("POST", path, JSON.stringify(body));
            // An image that passes the edge's checks still cannot be seen by this model (it has no projector): always a 400.
            if (status !== 400 || !explained(path, reply))
                failures.push({route: `POST ${path}`, body: JSON.stringify(body).slice(0, 300), status, reply: reply.slice(0, 300)});
            return true;
        }), {numRuns: RUNS * 6});
        assert.deepEqual(failures.slice(0, 5), []);
        const completion = await send("POST", "/v1/completions", JSON.stringify({model: MODEL, prompt: "Once upon a time", max_tokens: 4, temperature: 0}));
        assert.equal(completion.status, 200);
    });

    test("hostile paths and query strings: never a 5xx, and nothing outside the data folder is reached", async () => {
        const segment = fc.oneof(fc.string({maxLength: 40}), fc.constantFrom("..", "../../etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..\\..\\windows", "\u0000", "hf.co/../../x"));
        const paths = fc.oneof(
            segment.map((value) => `/v1/models/${encodeURIComponent(value)}`),
            segment.map((value) => `/api/conversations/${encodeURIComponent(value)}`),
            segment.map((value) => `/api/routes/${encodeURIComponent(value)}`),
            fc.record({model: segment, ctx: fc.string({maxLength: 8})}).map(({model, ctx}) => `/api/estimate?model=${encodeURIComponent(model)}&ctx_size=${encodeURIComponent(ctx)}`),
            segment.map((value) => `/api/hub/files?repo=${encodeURIComponent(value)}`),
            segment.map((value) => `/api/hub/search?q=${encodeURIComponent(value)}&limit=${encodeURIComponent(value)}`),
            segment.map((value) => `/api/audit?limit=${encodeURIComponent(value)}&before=${encodeURIComponent(value)}`),
            segment.map((value) => `/api/server/requests?after=${encodeURIComponent(value)}`),
            segment.map((value) => `/${value.replace(/[?#]/g, "")}`)
        );
        await fc.assert(fc.asyncProperty(paths, (path) => check(`GET ${path}`, "GET", path, undefined)), {numRuns: RUNS * 8});
        const showPasswd = await send("POST", "/api/show", JSON.stringify({model: "../../../../etc/passwd"}));
        assert.equal(showPasswd.status, 400);
        assert.doesNotMatch(showPasswd.reply, /root:/);
        const pullOutside = await send("POST", "/api/pull", JSON.stringify({model: "hf.co/../../../tmp/x:Q4_0", stream: false}));
        assert.equal(pullOutside.status, 400);
        const modelfiles = fc.oneof(segment, fc.constantFrom("/etc/passwd", "../../../../etc/passwd", "~/.ssh/id_rsa", "./../x.gguf", "/proc/self/environ"));
        await fc.assert(fc.asyncProperty(modelfiles, async (from) => {
            const {status, reply} = await send("POST", "/api/create", JSON.stringify({model: "fuzz-from", modelfile: `FROM ${from}`, stream: false}));
            if (status >= 500 || (status >= 400 && !explained("/api/create", reply)) || /root:|PRIVATE KEY/.test(reply))
                failures.push({route: "POST /api/create", body: from, status, reply: reply.slice(0, 300)});
            return true;
        }), {numRuns: RUNS * 4});
        const createOutside = await send("POST", "/api/create", JSON.stringify({model: "fuzz-from", modelfile: "FROM /etc/passwd", stream: false}));
        assert.equal(createOutside.status, 400);
        assert.match(createOutside.reply, /only inside Hearth's data folder/);
        assert.deepEqual(failures.slice(0, 5), []);
    });

    test("a body over the limit gets 413, a body of another type 415, and the server still answers", async () => {
        // The client is still uploading when the 413 is sent: it gets the reply, not a broken pipe, every time.
        const big = JSON.stringify({model: MODEL, prompt: "x".repeat(101 * 1024 * 1024)});
        for (let attempt = 0; attempt < 4; attempt++) {
            const oversize = await send("POST", "/v1/completions", big);
            assert.equal(oversize.status, 413);
            assert.ok(explained("/v1/completions", oversize.reply), oversize.reply);
            assert.match(oversize.reply, /over this server.s limit of 96 MiB/);
        }
        // Three images at the 20 MiB limit fit: they are read and checked (this model cannot see them), not refused for their size.
        const image = new Uint8Array(19 * 1024 * 1024);
        image.set(crafted.png(1024, 1024));
        const url = `data:image/png;base64,${Buffer.from(image).toString("base64")}`;
        const images = await send("POST", "/v1/chat/completions", JSON.stringify({
            model: MODEL, messages: [{role: "user", content: [1, 2, 3].map(() => ({type: "image_url", image_url: {url}}))}]
        }));
        assert.equal(images.status, 400, images.reply);
        assert.match(images.reply, /cannot see images/);
        const form = await send("POST", "/v1/chat/completions", "model=x", "application/x-www-form-urlencoded");
        assert.equal(form.status, 415);
        const health = await fetch(`${server.url}/health`);
        assert.equal(health.status, 200);
        const completion = await send("POST", "/v1/completions", JSON.stringify({model: MODEL, prompt: "Once upon a time", max_tokens: 4, temperature: 0}));
        assert.equal(completion.status, 200);
    });
});
