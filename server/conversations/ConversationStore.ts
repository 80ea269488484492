import {createHash, randomUUID} from "node:crypto";
import path from "node:path";
import type Database from "better-sqlite3";
import {openDatabase} from "../../models/openDatabase.js";
import type {ImageMimeType, PromptImage} from "../../native/types.js";
import type {
    Conversation, ConversationOptions, ConversationSummary, Message, MessageImage, MessageRole, MessageStatus, MessageToolCall, ReplyStats
} from "./conversationTypes.js";

export type {
    Conversation, ConversationOptions, ConversationSummary, Message, MessageImage, MessageRole, MessageStatus, MessageToolCall, ReplyStats
} from "./conversationTypes.js";

type ConversationRow = {id: string, title: string, model: string | null, system_prompt: string | null, options_json: string, created_at: string, updated_at: string};
type ImageRow = {message_id: string, sha256: string, mime_type: string, size_bytes: number};
type MessageRow = {
    id: string, role: MessageRole, content: string, reasoning: string, tool_calls_json: string, tool_call_id: string | null, name: string | null,
    status: MessageStatus, model: string | null, stats_json: string | null, error: string | null, created_at: string
};

/** A message as `addMessage` takes it; tool calls belong to assistant messages, `tool_call_id` and `name` to tool messages. */
export type NewMessage = {
    role: MessageRole, content: string, reasoning?: string, tool_calls?: readonly MessageToolCall[], tool_call_id?: string | null, name?: string | null,
    status?: MessageStatus, model?: string | null,
    /** A user message's images, in order; each is stored once by its sha256, however many messages show it. */
    images?: readonly PromptImage[]
};

const MIGRATIONS = [
    `CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        model TEXT,
        system_prompt TEXT,
        options_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    ) STRICT;
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'interrupted', 'error')),
        model TEXT,
        stats_json TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (conversation_id, position)
    ) STRICT;`,
    // A reasoning model's thinking, kept apart from its answer.
    "ALTER TABLE messages ADD COLUMN reasoning TEXT NOT NULL DEFAULT ''",
    // Tool calls and their results. SQLite cannot change a CHECK constraint in place, so the table is
    // rebuilt with the `tool` role and every row copied over; nothing refers to messages, so it may be dropped.
    `CREATE TABLE messages_new (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
        content TEXT NOT NULL,
        reasoning TEXT NOT NULL DEFAULT '',
        tool_calls_json TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tool_calls_json)),
        tool_call_id TEXT,
        name TEXT,
        status TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'interrupted', 'error')),
        model TEXT,
        stats_json TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        UNIQUE (conversation_id, position)
    ) STRICT;
    INSERT INTO messages_new (id, conversation_id, position, role, content, reasoning, status, model, stats_json, error, created_at)
        SELECT id, conversation_id, position, role, content, reasoning, status, model, stats_json, error, created_at FROM messages;
    DROP TABLE messages;
    ALTER TABLE messages_new RENAME TO messages;`,
    // Images a user showed the model. Their bytes are kept apart from the messages, once per content, so that listing
    // conversations and reading their messages never reads an image; a message refers to its images by sha256.
    `CREATE TABLE images (
        sha256 TEXT PRIMARY KEY,
        data BLOB NOT NULL,
        size_bytes INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE message_images (
        message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        sha256 TEXT NOT NULL REFERENCES images (sha256),
        mime_type TEXT NOT NULL,
        PRIMARY KEY (message_id, position)
    ) STRICT;
    CREATE INDEX message_images_by_sha256 ON message_images (sha256);`
];

/**
 * Conversations and their messages, in `conversations.db` in the data folder (SQLite, WAL). A reply is
 * written as it streams, each piece before it is sent, so a crash loses nothing a client was shown.
 */
export class ConversationStore {
    readonly #db: Database.Database;

    constructor(home: string) {
        this.#db = openDatabase(path.join(home, "conversations.db"), MIGRATIONS, "The conversations database");
        // Replies that were streaming when the last server stopped keep what they had.
        this.#db.prepare("UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'").run();
    }

    list(): ConversationSummary[] {
        const rows = this.#db.prepare(`SELECT c.*, (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count
            FROM conversations c ORDER BY c.updated_at DESC, c.rowid DESC`).all() as (ConversationRow & {message_count: number})[];
        return rows.map((row) => ({...toConversation(row), message_count: row.message_count}));
    }

    get(id: string): (Conversation & {messages: Message[]}) | undefined {
        const row = this.#db.prepare("SELECT * FROM conversations WHERE id = ?").get(id) as ConversationRow | undefined;
        if (row == null)
            return undefined;
        const messages = this.#db.prepare("SELECT * FROM messages WHERE conversation_id = ? ORDER BY position").all(id) as MessageRow[];
        const images = new Map<string, ImageRow[]>();
        for (const image of this.#db.prepare(`SELECT mi.message_id, mi.sha256, mi.mime_type, i.size_bytes FROM message_images mi
            JOIN messages m ON m.id = mi.message_id JOIN images i ON i.sha256 = mi.sha256
            WHERE m.conversation_id = ? ORDER BY mi.message_id, mi.position`).all(id) as ImageRow[])
            images.set(image.message_id, [...images.get(image.message_id) ?? [], image]);
        return {...toConversation(row), messages: messages.map((message) => toMessage(message, images.get(message.id)))};
    }

    create(fields: {title?: string, model?: string | null, system_prompt?: string | null, options?: ConversationOptions}): Conversation {
        const now = new Date().toISOString();
        const row: ConversationRow = {
            id: randomUUID(), title: fields.title ?? "New conversation", model: fields.model ?? null,
            system_prompt: fields.system_prompt ?? null, options_json: JSON.stringify(fields.options ?? {}), created_at: now, updated_at: now
        };
        this.#db.prepare(`INSERT INTO conversations (id, title, model, system_prompt, options_json, created_at, updated_at)
            VALUES (@id, @title, @model, @system_prompt, @options_json, @created_at, @updated_at)`).run(row);
        return toConversation(row);
    }

    /** Changes the fields given; undefined when there is no such conversation. */
    update(id: string, fields: {title?: string, model?: string | null, system_prompt?: string | null, options?: ConversationOptions}): Conversation | undefined {
        const current = this.#db.prepare("SELECT * FROM conversations WHERE id = ?").get(id) as ConversationRow | undefined;
        if (current == null)
            return undefined;
        const row: ConversationRow = {
            ...current,
            title: fields.title ?? current.title,
            model: fields.model !== undefined ? fields.model : current.model,
            system_prompt: fields.system_prompt !== undefined ? fields.system_prompt : current.system_prompt,
            options_json: fields.options != null ? JSON.stringify(fields.options) : current.options_json,
            updated_at: new Date().toISOString()
        };
        this.#db.prepare(`UPDATE conversations SET title = @title, model = @model, system_prompt = @system_prompt, options_json = @options_json,
            updated_at = @updated_at WHERE id = @id`).run(row);
        return toConversation(row);
    }

    remove(id: string): boolean {
        return this.#db.transaction(() => {
            const removed = this.#db.prepare("DELETE FROM conversations WHERE id = ?").run(id).changes > 0;
            this.#dropUnusedImages();
            return removed;
        })();
    }

    addMessage(conversationId: string, fields: NewMessage): Message {
        const row: MessageRow = {
            id: randomUUID(), role: fields.role, content: fields.content, reasoning: fields.reasoning ?? "",
            tool_calls_json: JSON.stringify(fields.tool_calls ?? []), tool_call_id: fields.tool_call_id ?? null, name: fields.name ?? null,
            status: fields.status ?? "complete", model: fields.model ?? null, stats_json: null, error: null, created_at: new Date().toISOString()
        };
        const images: MessageImage[] = [];
        this.#db.transaction(() => {
            const {next} = this.#db.prepare("SELECT COALESCE(MAX(position), -1) + 1 AS next FROM messages WHERE conversation_id = ?").get(conversationId) as {next: number};
            this.#db.prepare(`INSERT INTO messages (id, conversation_id, position, role, content, reasoning, tool_calls_json, tool_call_id, name,
                status, model, stats_json, error, created_at)
                VALUES (@id, @conversation_id, @position, @role, @content, @reasoning, @tool_calls_json, @tool_call_id, @name,
                @status, @model, @stats_json, @error, @created_at)`)
                .run({...row, conversation_id: conversationId, position: next});
            for (const [position, image] of (fields.images ?? []).entries())
                images.push(this.#addImage(row.id, position, image));
            this.#touch(conversationId);
        })();
        return toMessage(row, images);
    }

    /** An image of one of the conversation's messages, by its sha256; undefined when the conversation shows no such image. */
    image(conversationId: string, sha256: string): {data: Buffer, mimeType: string} | undefined {
        const row = this.#db.prepare(`SELECT i.data, mi.mime_type FROM message_images mi JOIN messages m ON m.id = mi.message_id
            JOIN images i ON i.sha256 = mi.sha256 WHERE m.conversation_id = ? AND mi.sha256 = ? LIMIT 1`).get(conversationId, sha256) as {data: Buffer, mime_type: string} | undefined;
        return row != null ? {data: row.data, mimeType: row.mime_type} : undefined;
    }

    /** The images of each of the conversation's messages that shows any, with their bytes, as the engine takes them. */
    promptImages(conversationId: string): Map<string, PromptImage[]> {
        const rows = this.#db.prepare(`SELECT mi.message_id, mi.mime_type, i.data FROM message_images mi JOIN messages m ON m.id = mi.message_id
            JOIN images i ON i.sha256 = mi.sha256 WHERE m.conversation_id = ? ORDER BY mi.message_id, mi.position`)
            .all(conversationId) as {message_id: string, mime_type: ImageMimeType, data: Buffer}[];
        const images = new Map<string, PromptImage[]>();
        for (const row of rows)
            images.set(row.message_id, [...images.get(row.message_id) ?? [], {data: new Uint8Array(row.data), mimeType: row.mime_type}]);
        return images;
    }

    #addImage(messageId: string, position: number, image: PromptImage): MessageImage {
        const data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
        const sha256 = createHash("sha256").update(data).digest("hex");
        this.#db.prepare("INSERT INTO images (sha256, data, size_bytes) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING").run(sha256, data, data.byteLength);
        this.#db.prepare("INSERT INTO message_images (message_id, position, sha256, mime_type) VALUES (?, ?, ?, ?)").run(messageId, position, sha256, image.mimeType);
        return {sha256, mime_type: image.mimeType, size_bytes: data.byteLength};
    }

    /** Deletes the bytes of images no message shows any more. */
    #dropUnusedImages(): void {
        this.#db.prepare("DELETE FROM images WHERE NOT EXISTS (SELECT 1 FROM message_images mi WHERE mi.sha256 = images.sha256)").run();
    }

    /** Replaces a message's text and removes every message after it: the conversation goes on from the edit. */
    editMessage(conversationId: string, messageId: string, content: string): Message | undefined {
        return this.#db.transaction(() => {
            const position = this.#position(conversationId, messageId);
            if (position == null)
                return undefined;
            this.#db.prepare("DELETE FROM messages WHERE conversation_id = ? AND position > ?").run(conversationId, position);
            this.#db.prepare("UPDATE messages SET content = ?, status = 'complete', error = NULL WHERE id = ?").run(content, messageId);
            this.#dropUnusedImages();
            this.#touch(conversationId);
            return this.#message(messageId);
        })();
    }

    /** Removes a message and every message after it. */
    truncateFrom(conversationId: string, messageId: string): boolean {
        return this.#db.transaction(() => {
            const position = this.#position(conversationId, messageId);
            if (position == null)
                return false;
            this.#db.prepare("DELETE FROM messages WHERE conversation_id = ? AND position >= ?").run(conversationId, position);
            this.#dropUnusedImages();
            this.#touch(conversationId);
            return true;
        })();
    }

    /** Adds streamed text to a reply; it is on disk when this returns. */
    appendToReply(messageId: string, text: string): void {
        this.#db.prepare("UPDATE messages SET content = content || ? WHERE id = ?").run(text, messageId);
    }

    /** Adds streamed thinking to a reply; it is on disk when this returns. */
    appendReasoningToReply(messageId: string, text: string): void {
        this.#db.prepare("UPDATE messages SET reasoning = reasoning || ? WHERE id = ?").run(text, messageId);
    }

    /** Adds a call the reply started (its arguments come after, by `appendToolCallArguments`); it is on disk when this returns. */
    addToolCallToReply(messageId: string, call: {id: string, name: string, arguments?: string}): void {
        this.#db.prepare("UPDATE messages SET tool_calls_json = json_insert(tool_calls_json, '$[#]', json(?)) WHERE id = ?")
            .run(JSON.stringify({id: call.id, name: call.name, arguments: call.arguments ?? ""}), messageId);
    }

    /** Adds a streamed piece of the arguments of the reply's call at `index` (in the order the calls were added). */
    appendToolCallArguments(messageId: string, index: number, text: string): void {
        if (!Number.isInteger(index) || index < 0)
            throw new RangeError(`Tool call index ${index} is not a position`);
        const argumentsPath = `$[${index}].arguments`;
        this.#db.prepare(`UPDATE messages SET tool_calls_json = json_replace(tool_calls_json, @path, json_extract(tool_calls_json, @path) || @text)
            WHERE id = @id AND json_type(tool_calls_json, @path) = 'text'`).run({path: argumentsPath, text, id: messageId});
    }

    finishReply(messageId: string, status: Exclude<MessageStatus, "streaming">, result: {stats?: ReplyStats, error?: string} = {}): Message {
        this.#db.prepare("UPDATE messages SET status = ?, stats_json = ?, error = ? WHERE id = ?")
            .run(status, result.stats != null ? JSON.stringify(result.stats) : null, result.error ?? null, messageId);
        return this.#message(messageId);
    }

    #message(messageId: string): Message {
        const row = this.#db.prepare("SELECT * FROM messages WHERE id = ?").get(messageId) as MessageRow;
        const images = this.#db.prepare(`SELECT mi.message_id, mi.sha256, mi.mime_type, i.size_bytes FROM message_images mi JOIN images i ON i.sha256 = mi.sha256
            WHERE mi.message_id = ? ORDER BY mi.position`).all(messageId) as ImageRow[];
        return toMessage(row, images);
    }

    #position(conversationId: string, messageId: string): number | undefined {
        const row = this.#db.prepare("SELECT position FROM messages WHERE conversation_id = ? AND id = ?").get(conversationId, messageId) as {position: number} | undefined;
        return row?.position;
    }

    #touch(conversationId: string): void {
        this.#db.prepare("UPDATE conversations SET updated_at = ? WHERE id = ?").run(new Date().toISOString(), conversationId);
    }

    close(): void {
        if (this.#db.open)
            this.#db.close();
    }
}

function toConversation(row: ConversationRow): Conversation {
    return {
        id: row.id, title: row.title, model: row.model, system_prompt: row.system_prompt,
        options: JSON.parse(row.options_json) as ConversationOptions, created_at: row.created_at, updated_at: row.updated_at
    };
}

function toMessage(row: MessageRow, images: readonly (MessageImage | ImageRow)[] = []): Message {
    return {
        id: row.id, role: row.role, content: row.content, reasoning: row.reasoning,
        images: images.map(({sha256, mime_type, size_bytes}) => ({sha256, mime_type, size_bytes})),
        tool_calls: JSON.parse(row.tool_calls_json) as MessageToolCall[], tool_call_id: row.tool_call_id, name: row.name,
        status: row.status, model: row.model,
        stats: row.stats_json != null ? JSON.parse(row.stats_json) as ReplyStats : null, error: row.error, created_at: row.created_at
    };
}
