import assert from "node:assert/strict";
import {mkdtemp} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

type Message = {id: string, role: string, content: string, status: string, model: string | null, stats: {completion_tokens: number, tokens_per_second: number} | null};
type Conversation = {id: string, title: string, model: string | null, options: Record<string, unknown>, messages: Message[]};
type ReplyLine = {type: "message" | "text" | "done" | "error", text?: string, message?: Message, error?: string};

async function call<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<{status: number, json: T}> {
    const response = await fetch(url, {method, ...body !== undefined ? {headers: {"content-type": "application/json"}, body: JSON.stringify(body)} : {}});
    return {status: response.status, json: await response.json() as T};
}

/** Reads a reply's NDJSON lines; `onLine` returning true stops reading (and leaves the response open). */
async function readReply(url: string, body: unknown, onLine?: (line: ReplyLine) => boolean): Promise<ReplyLine[]> {
    const response = await fetch(url, {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
    if (response.status !== 200)
        assert.fail(`HTTP ${response.status}: ${await response.text()}`);
    const lines: ReplyLine[] = [];
    let buffered = "";
    const decoder = new TextDecoder();
    for await (const chunk of response.body!) {
        buffered += decoder.decode(chunk, {stream: true});
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
            const line = JSON.parse(buffered.slice(0, newline)) as ReplyLine;
            buffered = buffered.slice(newline + 1);
            lines.push(line);
            if (onLine?.(line) === true)
                return lines;
        }
    }
    return lines;
}

const textOf = (lines: readonly ReplyLine[]) => lines.filter((line) => line.type === "text").map((line) => line.text).join("");

describe("conversations", () => {
    let server: TestServer;
    let home: string;

    before(async () => {
        home = await mkdtemp(path.join(os.tmpdir(), "hearth-conversations-"));
        server = await startTestServer({home});
    });
    after(() => server.close());

    it("creates, lists, renames and deletes conversations; unknown ids are 404 and bad fields 400", async () => {
        const created = await call<Conversation>("POST", `${server.url}/api/conversations`, {model: "stories260K", options: {temperature: 0}});
        assert.equal(created.status, 201);
        assert.equal(created.json.title, "New conversation");
        const renamed = await call<Conversation>("PATCH", `${server.url}/api/conversations/${created.json.id}`, {title: "Stories"});
        assert.equal(renamed.json.title, "Stories");
        const listed = await call<{conversations: {id: string, message_count: number}[]}>("GET", `${server.url}/api/conversations`);
        assert.ok(listed.json.conversations.some((entry) => entry.id === created.json.id && entry.message_count === 0));
        assert.deepEqual((await call("DELETE", `${server.url}/api/conversations/${created.json.id}`)).json, {deleted: true});
        assert.equal((await call("GET", `${server.url}/api/conversations/${created.json.id}`)).status, 404);
        assert.equal((await call("DELETE", `${server.url}/api/conversations/nope`)).status, 404);
        const bad = await call<{error: string}>("POST", `${server.url}/api/conversations`, {options: {temperature: "hot"}});
        assert.equal(bad.status, 400);
        assert.match(bad.json.error, /temperature/);
    });

    it("streams a reply that is stored as it comes, with its statistics; regenerate replaces it and an edit rewinds", async () => {
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {model: "stories260K", options: {temperature: 0, max_tokens: 24}});
        const base = `${server.url}/api/conversations/${conversation.id}`;
        const noUser = await call<{error: string}>("POST", `${base}/reply`, {});
        assert.equal(noUser.status, 400);
        assert.match(noUser.json.error, /end with a user message/);

        const user = await call<Message>("POST", `${base}/messages`, {role: "user", content: "Once upon a time"});
        assert.equal(user.status, 201);
        const lines = await readReply(`${base}/reply`, {});
        assert.equal(lines[0]!.type, "message");
        assert.equal(lines[0]!.message!.status, "streaming");
        const done = lines.at(-1)!;
        assert.equal(done.type, "done", JSON.stringify(done));
        assert.equal(done.message!.status, "complete");
        assert.equal(done.message!.content, textOf(lines));
        assert.ok(done.message!.stats!.completion_tokens > 0 && done.message!.stats!.tokens_per_second > 0);

        const stored = (await call<Conversation>("GET", base)).json;
        assert.equal(stored.title, "Once upon a time");
        assert.deepEqual(stored.messages.map((message) => [message.role, message.status]), [["user", "complete"], ["assistant", "complete"]]);
        assert.equal(stored.messages[1]!.content, textOf(lines));
        assert.ok(stored.messages[1]!.content.length > 10);

        const again = await readReply(`${base}/reply`, {regenerate: true});
        assert.equal(textOf(again), textOf(lines), "greedy, so the same reply");
        assert.equal((await call<Conversation>("GET", base)).json.messages.length, 2);

        const edited = await call<Message>("PATCH", `${base}/messages/${user.json.id}`, {content: "Once upon a time, there was a dog"});
        assert.equal(edited.json.content, "Once upon a time, there was a dog");
        assert.deepEqual((await call<Conversation>("GET", base)).json.messages.map((message) => message.role), ["user"]);
        assert.equal((await call("PATCH", `${base}/messages/nope`, {content: "x"})).status, 404);
    });

    it("keeps conversations across a restart of the server", async () => {
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {title: "Kept", model: "stories260K"});
        await call("POST", `${server.url}/api/conversations/${conversation.id}/messages`, {role: "user", content: "Hello"});
        await server.close();
        server = await startTestServer({home});
        const stored = (await call<Conversation>("GET", `${server.url}/api/conversations/${conversation.id}`)).json;
        assert.equal(stored.title, "Kept");
        assert.deepEqual(stored.messages.map((message) => message.content), ["Hello"]);
    });
});

describe("conversations survive a crash mid-reply", () => {
    it("keeps every piece of a reply a client was shown when the server is killed with SIGKILL", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-crash-"));
        const model = await testModel("synthetic/synthetic-llama-23M-Q4_K_M.gguf");
        const args = ["serve", "--model", model, "--port", "0", "--parallel", "1", "--ctx-size", "4096"];
        const first = spawnHearth(args, {HEARTH_HOME: home});
        const [, url] = await first.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        await first.waitForOutput(/Ready/);
        const {json: conversation} = await call<Conversation>("POST", `${url}/api/conversations`, {model: "synthetic-llama-23M-Q4_K_M", options: {max_tokens: 3000}});
        await call("POST", `${url}/api/conversations/${conversation.id}/messages`, {role: "user", content: "Tell me a long story"});

        let pieces = 0;
        // Killed before this client stops reading, so the server never sees the client leave (which would mark the reply stopped).
        const shown = await readReply(`${url}/api/conversations/${conversation.id}/reply`, {}, (line) => {
            const enough = line.type === "text" && ++pieces >= 20;
            if (enough)
                first.child.kill("SIGKILL");
            return enough;
        });
        await first.exited;
        assert.notEqual(shown.at(-1)!.type, "done", "killed before the reply ended");

        const second = spawnHearth(args, {HEARTH_HOME: home});
        const [, secondUrl] = await second.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        try {
            const stored = (await call<Conversation>("GET", `${secondUrl}/api/conversations/${conversation.id}`)).json;
            const reply = stored.messages[1]!;
            assert.equal(reply.status, "interrupted");
            assert.ok(reply.content.startsWith(textOf(shown)), "everything shown before the crash is stored");
            assert.ok(textOf(shown).length > 0);
        } finally {
            second.child.kill("SIGTERM");
            await second.exited;
        }
    });
});
