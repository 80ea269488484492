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
    /** The request body, kept only when the server runs with `--audit-prompts`. */
    request_body: string | null
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
    ) STRICT;`
];

/** The newest entries kept; older ones are deleted as new ones come. */
const KEPT_ENTRIES = 200_000;
/** Bodies longer than this are cut, so one huge prompt cannot fill the disk. */
const MAX_BODY_CHARS = 64 * 1024;

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
        this.#insert = this.#db.prepare(`INSERT INTO audit (at, request_id, key_id, client, method, path, model, status, prompt_tokens, completion_tokens, duration_ms, request_body)
            VALUES (@at, @request_id, @key_id, @client, @method, @path, @model, @status, @prompt_tokens, @completion_tokens, @duration_ms, @request_body)`);
    }

    record(entry: Omit<AuditEntry, "id" | "at" | "request_body">, body: unknown): void {
        const request_body = this.keepsBodies && body !== undefined ? JSON.stringify(body).slice(0, MAX_BODY_CHARS) : null;
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
