import assert from "node:assert/strict";
import {mkdtemp} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import Database from "better-sqlite3";
import {ConversationStore} from "../server/conversations/ConversationStore.js";
import {spawnHearth} from "./helpers/spawnHearth.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

type ToolCall = {id: string, name: string, arguments: string};
type Message = {
    id: string, role: string, content: string, reasoning: string, tool_calls: ToolCall[], tool_call_id: string | null, name: string | null,
    status: string, model: string | null, stats: {completion_tokens: number, tokens_per_second: number} | null
};
type Conversation = {id: string, title: string, model: string | null, options: Record<string, unknown>, messages: Message[]};
type ReplyLine = {type: "message" | "text" | "reasoning" | "done" | "error", text?: string, message?: Message, error?: string};

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
        server = await startTestServer({home, modelFiles: ["stories260K.gguf", "scripted/qwen3-script.gguf"]});
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

    it("keeps an assistant's thinking and tool calls and the tools' results, and answers from a tool's result", async () => {
        // The scripted Qwen3 model answers "It is sunny in Paris." only when its prompt holds a tool's result
        // (../shared/models/README.md, "Scripted real-format models").
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {model: "qwen3-script", options: {temperature: 0, max_tokens: 100}});
        const base = `${server.url}/api/conversations/${conversation.id}`;
        const weather = {id: "call_1", name: "get_weather", arguments: "{\"city\": \"Paris\"}"};
        await call("POST", `${base}/messages`, {role: "user", content: "What is the weather in Paris?"});
        const assistant = await call<Message>("POST", `${base}/messages`, {role: "assistant", content: "", reasoning: "The user wants the weather.", tool_calls: [weather]});
        assert.equal(assistant.status, 201, JSON.stringify(assistant.json));
        assert.equal(assistant.json.reasoning, "The user wants the weather.");
        assert.deepEqual(assistant.json.tool_calls, [weather]);
        const result = await call<Message>("POST", `${base}/messages`, {role: "tool", content: "{\"sky\": \"sunny\"}", tool_call_id: "call_1", name: "get_weather"});
        assert.equal(result.status, 201, JSON.stringify(result.json));
        assert.deepEqual([result.json.role, result.json.tool_call_id, result.json.name, result.json.tool_calls], ["tool", "call_1", "get_weather", []]);

        const stored = (await call<Conversation>("GET", base)).json;
        assert.deepEqual(stored.messages.map((message) => [message.role, message.reasoning, message.tool_calls, message.tool_call_id, message.name]), [
            ["user", "", [], null, null],
            ["assistant", "The user wants the weather.", [weather], null, null],
            ["tool", "", [], "call_1", "get_weather"]
        ]);

        const lines = await readReply(`${base}/reply`, {});
        const done = lines.at(-1)!;
        assert.equal(done.type, "done", JSON.stringify(done));
        assert.equal(done.message!.content, "It is sunny in Paris.", "the model was given the call and its result");

        for (const [body, field] of [
            [{role: "user", content: "x", tool_calls: [weather]}, /tool_calls/],
            [{role: "tool", content: "x", reasoning: "hmm"}, /reasoning/],
            [{role: "user", content: "x", tool_call_id: "call_1"}, /tool_call_id/],
            [{role: "assistant", content: "x", name: "get_weather"}, /name/],
            [{role: "assistant", content: "", tool_calls: [{id: "call_2", arguments: "{}"}]}, /name/],
            [{role: "system", content: "x"}, /role/]
        ] as const) {
            const refused = await call<{error: string}>("POST", `${base}/messages`, body);
            assert.equal(refused.status, 400, JSON.stringify(body));
            assert.match(refused.json.error, field);
        }
        assert.equal((await call<Conversation>("GET", base)).json.messages.length, 4, "nothing refused was stored");
    });

    it("streams a thinking model's reasoning apart from its answer, and stores both", async () => {
        // The scripted Qwen3 model thinks "Let me think." and answers "Hello from Qwen." to a plain chat.
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {model: "qwen3-script", options: {temperature: 0, max_tokens: 100}});
        const base = `${server.url}/api/conversations/${conversation.id}`;
        await call("POST", `${base}/messages`, {role: "user", content: "Hello"});
        const lines = await readReply(`${base}/reply`, {});
        const reasoning = lines.filter((line) => line.type === "reasoning").map((line) => line.text).join("");
        assert.equal(reasoning.trim(), "Let me think.");
        assert.equal(textOf(lines), "Hello from Qwen.", "the thinking is not in the answer");
        assert.ok(lines.findLastIndex((line) => line.type === "reasoning") < lines.findIndex((line) => line.type === "text"), "thinking comes first");
        const done = lines.at(-1)!;
        assert.equal(done.type, "done", JSON.stringify(done));
        assert.deepEqual([done.message!.reasoning, done.message!.content], [reasoning, "Hello from Qwen."]);
        const stats = done.message!.stats as {reasoning_tokens: number, completion_tokens: number} | null;
        assert.ok(stats!.reasoning_tokens > 0 && stats!.reasoning_tokens < stats!.completion_tokens, JSON.stringify(stats));

        const stored = (await call<Conversation>("GET", base)).json.messages[1]!;
        assert.deepEqual([stored.reasoning, stored.content], [reasoning, "Hello from Qwen."]);
        // A conversation that goes on gives the model its past thinking (the template leaves it out) and still works.
        await call("POST", `${base}/messages`, {role: "user", content: "Again"});
        assert.equal(textOf(await readReply(`${base}/reply`, {})), "Hello from Qwen.");
    });

    it("stores a reply's thinking and tool calls as they stream, and the API returns them", async () => {
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {title: "Streamed by the store"});
        // A second store on the same file, as a second process would open it (WAL).
        const store = new ConversationStore(home);
        try {
            store.addMessage(conversation.id, {role: "user", content: "Weather in Paris and Rome?"});
            const reply = store.addMessage(conversation.id, {role: "assistant", content: "", status: "streaming", model: "qwen3-script"});
            store.appendReasoningToReply(reply.id, "Two cities, ");
            store.appendReasoningToReply(reply.id, "two calls.");
            store.appendToReply(reply.id, "Looking both up.");
            store.addToolCallToReply(reply.id, {id: "call_a", name: "get_weather"});
            store.appendToolCallArguments(reply.id, 0, "{\"city\": ");
            store.addToolCallToReply(reply.id, {id: "call_b", name: "get_weather"});
            store.appendToolCallArguments(reply.id, 1, "{\"city\": \"Rome\"}");
            store.appendToolCallArguments(reply.id, 0, "\"Paris\"}");
            assert.throws(() => store.appendToolCallArguments(reply.id, -1, "x"), RangeError);
            const finished = store.finishReply(reply.id, "complete");
            assert.equal(finished.reasoning, "Two cities, two calls.");
        } finally {
            store.close();
        }

        const [user, assistant] = (await call<Conversation>("GET", `${server.url}/api/conversations/${conversation.id}`)).json.messages;
        assert.equal(user!.reasoning, "");
        assert.deepEqual(user!.tool_calls, []);
        assert.equal(assistant!.content, "Looking both up.");
        assert.equal(assistant!.reasoning, "Two cities, two calls.");
        assert.deepEqual(assistant!.tool_calls, [
            {id: "call_a", name: "get_weather", arguments: "{\"city\": \"Paris\"}"},
            {id: "call_b", name: "get_weather", arguments: "{\"city\": \"Rome\"}"}
        ]);
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

describe("conversations databases of older Hearths", () => {
    /** The schema as Hearth wrote it before tool calls (user_version 2), when messages held only users and assistants. */
    const SCHEMA_2 = `CREATE TABLE conversations (
            id TEXT PRIMARY KEY, title TEXT NOT NULL, model TEXT, system_prompt TEXT, options_json TEXT NOT NULL,
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL
        ) STRICT;
        CREATE TABLE messages (
            id TEXT PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'interrupted', 'error')),
            model TEXT, stats_json TEXT, error TEXT, created_at TEXT NOT NULL,
            UNIQUE (conversation_id, position)
        ) STRICT;
        ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT '';
        PRAGMA user_version = 2;`;

    it("keeps every message when the messages table is rebuilt for tool messages", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-conversations-old-"));
        const old = new Database(path.join(home, "conversations.db"));
        old.exec(SCHEMA_2);
        old.exec(`INSERT INTO conversations VALUES
            ('c1', 'Kept', 'stories260K', 'Be brief', '{"temperature":0}', '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z'),
            ('c2', 'Other', NULL, NULL, '{}', '2026-01-03T00:00:00.000Z', '2026-01-03T00:00:00.000Z');
            INSERT INTO messages (id, conversation_id, position, role, content, status, model, stats_json, error, created_at, reasoning) VALUES
            ('m1', 'c1', 0, 'user', 'Hello', 'complete', NULL, NULL, NULL, '2026-01-01T00:00:01.000Z', ''),
            ('m2', 'c1', 1, 'assistant', 'Hi there', 'complete', 'stories260K',
                '{"prompt_tokens":3,"completion_tokens":2,"tokens_per_second":10,"time_to_first_token_ms":5}', NULL, '2026-01-01T00:00:02.000Z', 'A greeting.'),
            ('m3', 'c1', 2, 'user', 'And?', 'complete', NULL, NULL, NULL, '2026-01-01T00:00:03.000Z', ''),
            ('m4', 'c1', 3, 'assistant', 'Half a', 'streaming', 'stories260K', NULL, NULL, '2026-01-01T00:00:04.000Z', ''),
            ('m5', 'c2', 0, 'user', 'Elsewhere', 'complete', NULL, NULL, NULL, '2026-01-03T00:00:01.000Z', ''),
            ('m6', 'c2', 1, 'assistant', '', 'error', 'gone', NULL, 'The model failed', '2026-01-03T00:00:02.000Z', '');`);
        old.close();

        const store = new ConversationStore(home);
        try {
            const kept = store.get("c1")!;
            assert.deepEqual({...kept, messages: undefined}, {
                id: "c1", title: "Kept", model: "stories260K", system_prompt: "Be brief", options: {temperature: 0},
                created_at: "2026-01-01T00:00:00.000Z", updated_at: "2026-01-02T00:00:00.000Z", messages: undefined
            });
            const noTools = {images: [], tool_calls: [], tool_call_id: null, name: null};
            assert.deepEqual(kept.messages, [
                {id: "m1", role: "user", content: "Hello", reasoning: "", ...noTools, status: "complete", model: null, stats: null, error: null, created_at: "2026-01-01T00:00:01.000Z"},
                {
                    id: "m2", role: "assistant", content: "Hi there", reasoning: "A greeting.", ...noTools, status: "complete", model: "stories260K",
                    stats: {prompt_tokens: 3, completion_tokens: 2, tokens_per_second: 10, time_to_first_token_ms: 5}, error: null, created_at: "2026-01-01T00:00:02.000Z"
                },
                {id: "m3", role: "user", content: "And?", reasoning: "", ...noTools, status: "complete", model: null, stats: null, error: null, created_at: "2026-01-01T00:00:03.000Z"},
                // Opening the store marks a reply the last server left streaming as interrupted, as before.
                {id: "m4", role: "assistant", content: "Half a", reasoning: "", ...noTools, status: "interrupted", model: "stories260K", stats: null, error: null, created_at: "2026-01-01T00:00:04.000Z"}
            ]);
            assert.deepEqual(store.get("c2")!.messages.map((message) => [message.id, message.content, message.status, message.error]),
                [["m5", "Elsewhere", "complete", null], ["m6", "", "error", "The model failed"]]);
            assert.deepEqual(store.list().map((summary) => [summary.id, summary.message_count]), [["c2", 2], ["c1", 4]]);

            const tool = store.addMessage("c1", {role: "tool", content: "42", tool_call_id: "call_1", name: "answer"});
            assert.deepEqual(store.get("c1")!.messages.map((message) => message.id), ["m1", "m2", "m3", "m4", tool.id], "new messages go after the old");
            assert.ok(store.remove("c2"));
            assert.equal(store.get("c2"), undefined);
        } finally {
            store.close();
        }
        const reopened = new Database(path.join(home, "conversations.db"), {readonly: true});
        try {
            assert.equal(reopened.pragma("user_version", {simple: true}), 4);
            assert.equal((reopened.prepare("SELECT COUNT(*) AS count FROM messages WHERE conversation_id = 'c2'").get() as {count: number}).count, 0,
                "deleting a conversation still deletes its messages");
            assert.deepEqual(reopened.pragma("foreign_key_check"), []);
        } finally {
            reopened.close();
        }
    });
});
