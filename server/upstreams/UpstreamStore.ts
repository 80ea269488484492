import {randomBytes} from "node:crypto";
import path from "node:path";
import type Database from "better-sqlite3";
import {openDatabase} from "../../models/openDatabase.js";
import type {UpstreamSpec} from "../config.js";

const MIGRATIONS = [
    `CREATE TABLE upstreams (
        id TEXT PRIMARY KEY,
        url TEXT NOT NULL UNIQUE,
        api_key TEXT,
        added_at TEXT NOT NULL
    ) STRICT;`
];

export type StoredUpstream = UpstreamSpec & {id: string};

/**
 * Upstreams added in the app or with `POST /api/upstreams`, in `upstreams.db` in the data folder, so they are
 * served again after a restart. An upstream's key must be sent as it is, so it is kept as it is (the data folder is
 * the user's own), and it never leaves this store except towards its upstream.
 */
export class UpstreamStore {
    readonly #db: Database.Database;

    constructor(home: string) {
        this.#db = openDatabase(path.join(home, "upstreams.db"), MIGRATIONS, "The upstreams database");
    }

    list(): StoredUpstream[] {
        const rows = this.#db.prepare("SELECT id, url, api_key FROM upstreams ORDER BY added_at, rowid").all() as {id: string, url: string, api_key: string | null}[];
        return rows.map((row) => ({id: row.id, url: row.url, key: row.api_key ?? undefined}));
    }

    add(spec: UpstreamSpec): StoredUpstream {
        const id = `up_${randomBytes(6).toString("hex")}`;
        this.#db.prepare("INSERT INTO upstreams (id, url, api_key, added_at) VALUES (?, ?, ?, ?)").run(id, spec.url, spec.key ?? null, new Date().toISOString());
        return {...spec, id};
    }

    remove(id: string): boolean {
        return this.#db.prepare("DELETE FROM upstreams WHERE id = ?").run(id).changes > 0;
    }

    close(): void {
        this.#db.close();
    }
}
