import path from "node:path";
import type Database from "better-sqlite3";
import {openDatabase} from "../../models/openDatabase.js";

export type AuditEntry = {
    id: number,
    at: string,
    request_id: string,
    /** The API key's id (never the key); null when none was needed. */
    key_id: string | null,
    client: string | null,
    method: string,
    path: string,
    model: string | null,
    status: number,
    prompt_tokens: number | null,
    completion_tokens: number | null,
    duration_ms: number,
    /**
     * The request body as JSON, kept only when the server runs with `--audit-prompts`: whole up to 1 MiB, else
     * `{"truncated": true, "length": …, "start": "…"}` with its first 1 MiB as a string, so it is JSON either way.
     */
    request_body: string | null,
    /** The status and message of the error a reply ended with after its own status was sent (a stream that broke). */
    error_status: number | null,
    error: string | null
};

const MIGRATIONS = [
    `CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT,
        client TEXT,
        method TEXT NOT NULL,
        path TEXT NOT NULL,
        model TEXT,
        status INTEGER NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        duration_ms INTEGER NOT NULL,
        request_body TEXT
    ) STRICT;`,
    `ALTER TABLE audit ADD COLUMN error_status INTEGER;
    ALTER TABLE audit ADD COLUMN error TEXT;`
];

/** The newest entries kept; older ones are deleted as new ones come. */
const KEPT_ENTRIES = 200_000;
/**
 * Bodies longer than this (in characters of their JSON) are cut, so one huge prompt cannot fill the disk. Agents send
 * bodies of 75 KB and more (Claude Code's tools and system prompt) and are kept whole.
 */
const MAX_BODY_CHARS = 1024 * 1024;

/** A request body as JSON, whole when it is short enough, else its start inside a JSON object that says it was cut. */
export function auditedBody(body: unknown): string {
    const text = JSON.stringify(body);
    if (text.length <= MAX_BODY_CHARS)
        return text;
    return JSON.stringify({truncated: true, length: text.length, start: text.slice(0, MAX_BODY_CHARS)});
}

/**
 * Who called what: one row per API request in `audit.db` in the data folder — key id, client address,
 * route, model, token counts, status and time. Prompts are kept only when the operator asks for them.
 */
export class AuditLog {
    readonly keepsBodies: boolean;
    readonly #db: Database.Database;
    readonly #insert: Database.Statement;
    #insertsSincePrune = 0;

    constructor(home: string, {keepBodies = false}: {keepBodies?: boolean} = {}) {
        this.keepsBodies = keepBodies;
        this.#db = openDatabase(path.join(home, "audit.db"), MIGRATIONS, "The audit log");
        this.#insert = this.#db.prepare(`INSERT INTO audit (at, request_id, key_id, client, method, path, model, status, prompt_tokens, completion_tokens, duration_ms, request_body, error_status, error)
            VALUES (@at, @request_id, @key_id, @client, @method, @path, @model, @status, @prompt_tokens, @completion_tokens, @duration_ms, @request_body, @error_status, @error)`);
    }

    record(entry: Omit<AuditEntry, "id" | "at" | "request_body">, body: unknown): void {
        const request_body = this.keepsBodies && body !== undefined ? auditedBody(body) : null;
        this.#insert.run({...entry, at: new Date().toISOString(), request_body});
        if (++this.#insertsSincePrune >= 1000) {
            this.#insertsSincePrune = 0;
            this.#db.prepare("DELETE FROM audit WHERE id <= (SELECT MAX(id) FROM audit) - ?").run(KEPT_ENTRIES);
        }
    }

    /** The newest entries first, `limit` of them, older than `beforeId` when given. */
    list({limit = 100, beforeId}: {limit?: number, beforeId?: number} = {}): AuditEntry[] {
        return this.#db.prepare("SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?").all(beforeId ?? Number.MAX_SAFE_INTEGER, limit) as AuditEntry[];
    }

    close(): void {
        this.#db.close();
    }
}
