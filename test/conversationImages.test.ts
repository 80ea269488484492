import assert from "node:assert/strict";
import {createHash} from "node:crypto";
import {mkdtemp, readFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {after, before, describe, it} from "node:test";
import Database from "better-sqlite3";
import type {ModelToLoad} from "../native/engineTypes.js";
import {ConversationStore} from "../server/conversations/ConversationStore.js";
import type {Message} from "../server/conversations/conversationTypes.js";
import {startTestServer} from "./helpers/testServer.js";
import type {TestServer} from "./helpers/testServer.js";
import {testModel} from "./helpers/testModels.js";

/**
 * A conversation's images: kept with their message in `conversations.db` (once per content), served back to the
 * app by URL, and shown to the model before the message's text.
 */

type Conversation = {id: string, title: string, messages: Message[]};
type ReplyLine = {type: string, text?: string, message?: Message, error?: string};

const imageFile = async (name: string) => await readFile(await testModel(`vision/images/${name}`));
const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
const dataUri = (data: Uint8Array, mimeType = "image/png") => `data:${mimeType};base64,${Buffer.from(data).toString("base64")}`;

async function call<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<{status: number, json: T}> {
    const response = await fetch(url, {method, ...body !== undefined ? {headers: {"content-type": "application/json"}, body: JSON.stringify(body)} : {}});
    return {status: response.status, json: await response.json() as T};
}

async function replyLines(url: string): Promise<ReplyLine[]> {
    const response = await fetch(url, {method: "POST", headers: {"content-type": "application/json"}, body: "{}"});
    if (response.status !== 200)
        assert.fail(`HTTP ${response.status}: ${await response.text()}`);
    return (await response.text()).split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as ReplyLine);
}

describe("conversation images in the store", () => {
    it("keeps each message's images in order across a reopen, stores equal bytes once, and drops them with the last message that shows them", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-conversation-images-"));
        const [red, blue, yellow] = [await imageFile("red.png"), await imageFile("blue.png"), await imageFile("yellow.jpg")];
        let conversationId: string;
        let laterId: string;
        let store = new ConversationStore(home);
        try {
            const conversation = store.create({title: "Colours"});
            conversationId = conversation.id;
            const first = store.addMessage(conversation.id, {role: "user", content: "Which colours?", images: [
                {data: red, mimeType: "image/png"}, {data: blue, mimeType: "image/png"}
            ]});
            assert.deepEqual(first.images, [
                {sha256: sha256(red), mime_type: "image/png", size_bytes: red.byteLength},
                {sha256: sha256(blue), mime_type: "image/png", size_bytes: blue.byteLength}
            ]);
            store.addMessage(conversation.id, {role: "assistant", content: "Red and blue."});
            laterId = store.addMessage(conversation.id, {role: "user", content: "And these?", images: [
                {data: yellow, mimeType: "image/jpeg"}, {data: red, mimeType: "image/png"}
            ]}).id;
        } finally {
            store.close();
        }

        store = new ConversationStore(home);
        try {
            const messages = store.get(conversationId)!.messages;
            assert.deepEqual(messages.map((message) => message.images.map((image) => image.sha256)), [
                [sha256(red), sha256(blue)], [], [sha256(yellow), sha256(red)]
            ]);
            assert.equal(messages[2]!.images[0]!.mime_type, "image/jpeg");
            assert.deepEqual(store.image(conversationId, sha256(yellow)), {data: yellow, mimeType: "image/jpeg"});
            assert.equal(store.image("another conversation", sha256(yellow)), undefined, "an image is only served with its conversation");
            const prompt = store.promptImages(conversationId);
            assert.deepEqual([...prompt.keys()], [messages[0]!.id, laterId].sort(), "only messages that show images are listed");
            assert.deepEqual(prompt.get(laterId)!.map((image) => [Buffer.from(image.data).equals(yellow), image.mimeType]), [[true, "image/jpeg"], [false, "image/png"]]);
            assert.ok(Buffer.from(prompt.get(laterId)![1]!.data).equals(red));
            assert.deepEqual(store.list().map((summary) => summary.message_count), [3]);
        } finally {
            store.close();
        }

        const countImages = () => {
            const db = new Database(path.join(home, "conversations.db"), {readonly: true});
            try {
                return (db.prepare("SELECT COUNT(*) AS count FROM images").get() as {count: number}).count;
            } finally {
                db.close();
            }
        };
        assert.equal(countImages(), 3, "red is stored once though two messages show it");
        store = new ConversationStore(home);
        try {
            assert.ok(store.truncateFrom(conversationId, laterId));
            assert.equal(countImages(), 2, "yellow went with the only message that showed it; red stays for the first");
            assert.deepEqual(store.image(conversationId, sha256(red))?.data, red);
            assert.ok(store.remove(conversationId));
            assert.equal(countImages(), 0);
        } finally {
            store.close();
        }
    });
});

describe("conversation images over HTTP", () => {
    let server: TestServer;

    before(async () => {
        server = await startTestServer({modelFiles: ["stories260K.gguf"]});
    });
    after(() => server.close());

    it("stores a user message's images, serves them back by URL, and keeps the conversation as it was when an image is bad", async () => {
        const red = await imageFile("red.png");
        const yellow = await imageFile("yellow.jpg");
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {model: "stories260K"});
        const base = `${server.url}/api/conversations/${conversation.id}`;
        const posted = await call<Message>("POST", `${base}/messages`, {role: "user", content: "What \uFFFCcolour?", images: [dataUri(red), dataUri(yellow, "image/jpeg")]});
        assert.equal(posted.status, 201);
        assert.equal(posted.json.content, "What colour?", "a client's own placeholders are removed");
        assert.deepEqual(posted.json.images.map((image) => [image.sha256, image.mime_type, image.size_bytes]),
            [[sha256(red), "image/png", red.byteLength], [sha256(yellow), "image/jpeg", yellow.byteLength]]);

        const stored = await call<Conversation>("GET", base);
        assert.deepEqual(stored.json.messages[0]!.images, posted.json.images);
        assert.equal(stored.json.title, "What colour?");
        const served = await fetch(`${base}/images/${sha256(yellow)}`);
        assert.equal(served.status, 200);
        assert.equal(served.headers.get("content-type"), "image/jpeg");
        assert.equal(served.headers.get("x-content-type-options"), "nosniff");
        assert.ok(Buffer.from(await served.arrayBuffer()).equals(yellow));
        assert.equal((await fetch(`${base}/images/${"0".repeat(64)}`)).status, 404);
        assert.equal((await fetch(`${base}/images/..%2F..%2Fetc`)).status, 404);

        const bad = [
            [["not a data URI"], /not a base64 data: URI/],
            [["data:image/svg+xml;base64,PHN2Zy8+"], /image\/svg\+xml.*PNG, JPEG, WebP, GIF or BMP/],
            [["data:image/png;base64,"], /empty/],
            [[dataUri(red), "data:text/plain;base64,aGk="], /Image 2 is text\/plain/]
        ] as const;
        for (const [images, message] of bad) {
            const refused = await call<{error: string}>("POST", `${base}/messages`, {role: "user", content: "Again", images});
            assert.equal(refused.status, 400, images.join());
            assert.match(refused.json.error, message);
        }
        const onReply = await call<{error: string}>("POST", `${base}/messages`, {role: "assistant", content: "Hi", images: [dataUri(red)]});
        assert.equal(onReply.status, 400);
        assert.match(onReply.json.error, /Only user messages have images/);
        const after = await call<Conversation>("GET", base);
        assert.deepEqual(after.json.messages, stored.json.messages, "nothing stored was lost or added by the refusals");
        assert.ok(Buffer.from(await (await fetch(`${base}/images/${sha256(red)}`)).arrayBuffer()).equals(red));
    });

    it("says a model that cannot see cannot reply to images, and replies once they are gone", async () => {
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {model: "stories260K", options: {max_tokens: 4}});
        const base = `${server.url}/api/conversations/${conversation.id}`;
        const {json: message} = await call<Message>("POST", `${base}/messages`, {role: "user", content: "", images: [dataUri(await imageFile("red.png"))]});
        assert.equal((await call<Conversation>("GET", base)).json.title, "An image");
        const refused = await call<{error: string}>("POST", `${base}/reply`, {});
        assert.equal(refused.status, 400);
        assert.match(refused.json.error, /"stories260K" cannot see images/);
        assert.deepEqual((await call<Conversation>("GET", base)).json.messages.map((stored) => stored.id), [message.id], "no reply was started");

        await call("DELETE", `${base}/messages/${message.id}`);
        await call("POST", `${base}/messages`, {role: "user", content: "Once upon a time"});
        const lines = await replyLines(`${base}/reply`);
        assert.equal(lines.at(-1)!.type, "done");
    });
});

describe("conversation images seen by a model", () => {
    let server: TestServer;

    before(async () => {
        // The engine's own spec of a model with its projector, as `--mmproj` gives it.
        const visionModel: ModelToLoad & {names: string[]} = {
            path: await testModel("vision/gemma4-vision-script.gguf"), names: ["gemma4-vision-script"],
            projectorPath: await testModel("vision/mmproj-gemma4-vision-script.gguf")
        };
        server = await startTestServer({models: [visionModel]});
    });
    after(() => server.close());

    it("shows the model a message's images, and again on later turns after they are stored", async () => {
        const {json: listed} = await call<{data: {id: string, capabilities: string[]}[]}>("GET", `${server.baseURL}/models`);
        assert.deepEqual(listed.data.map((model) => [model.id, model.capabilities]), [["gemma4-vision-script", ["completion", "vision", "tools", "thinking"]]]);
        const {json: conversation} = await call<Conversation>("POST", `${server.url}/api/conversations`, {model: "gemma4-vision-script", options: {temperature: 0, max_tokens: 16}});
        const base = `${server.url}/api/conversations/${conversation.id}`;
        await call("POST", `${base}/messages`, {role: "user", content: "What colour is this image?", images: [dataUri(await imageFile("red.png"))]});
        const first = await replyLines(`${base}/reply`);
        assert.equal(first.at(-1)!.message!.content, "The image is red.");
        // The model answers for the mean colour of every image in its context, so the stored red one is still there.
        await call("POST", `${base}/messages`, {role: "user", content: "And now?"});
        assert.equal((await replyLines(`${base}/reply`)).at(-1)!.message!.content, "The image is red.");
        await call("POST", `${base}/messages`, {role: "user", content: "And with this one?", images: [dataUri(await imageFile("blue.png"))]});
        assert.equal((await replyLines(`${base}/reply`)).at(-1)!.message!.content, "The image is gray.", "red and blue together");
    });
});
