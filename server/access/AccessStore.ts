import {createHash, randomBytes, timingSafeEqual} from "node:crypto";
import path from "node:path";
import type Database from "better-sqlite3";
import {openDatabase} from "../../models/openDatabase.js";
import type {AccessSettings, ApiKeyInfo, CreatedApiKey} from "./accessTypes.js";

export type {AccessSettings, ApiKeyInfo, CreatedApiKey} from "./accessTypes.js";

const DEFAULT_SETTINGS: AccessSettings = {lan_access: false, allowed_origins: []};

const MIGRATIONS = [
    `CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        sha256 TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked_at TEXT
    ) STRICT;
    CREATE TABLE settings (
        name TEXT PRIMARY KEY,
        value_json TEXT NOT NULL
    ) STRICT;`
];

type KeyRow = {id: string, name: string, prefix: string, created_at: string, last_used_at: string | null};

function sha256(text: string): Buffer {
    return createHash("sha256").update(text, "utf8").digest();
}

/** Only a prefix of a key is ever shown or logged. */
function prefixOf(key: string): string {
    return `${key.slice(0, 7)}…`;
}

/**
 * API keys and access settings, in `access.db` in the data folder. Keys are stored as SHA-256 digests
 * (they are long random strings, so a slow hash adds nothing) and looked up on every request, so a key
 * revoked from the CLI stops working at once in a running server. Keys given at start live in memory only.
 */
export class AccessStore {
    readonly #db: Database.Database;
    readonly #startupKeys: {info: ApiKeyInfo, digest: Buffer}[];
    readonly #sessionKeys: {id: string, digest: Buffer}[];
    readonly #lastUsedWrites = new Map<string, number>();
    /** The two reads every API request makes, prepared once (preparing costs more than the read). */
    readonly #anyKey: Database.Statement;
    readonly #keyByDigest: Database.Statement;
    #settings: AccessSettings | undefined;

    /**
     * `startupKeys` are accepted and make keys required, like stored ones. `sessionKeys` (the desktop app's
     * own, made fresh at each launch) are accepted but do not make keys required of other clients.
     */
    constructor(home: string, {startupKeys = [], sessionKeys = []}: {startupKeys?: readonly string[], sessionKeys?: readonly string[]} = {}) {
        this.#db = openDatabase(path.join(home, "access.db"), MIGRATIONS, "The access database");
        this.#startupKeys = startupKeys.map((key, index) => ({
            info: {id: `startup-${index + 1}`, name: "given at start (--api-key)", prefix: prefixOf(key), source: "startup", created_at: null, last_used_at: null},
            digest: sha256(key)
        }));
        this.#sessionKeys = sessionKeys.map((key, index) => ({id: `session-${index + 1}`, digest: sha256(key)}));
        this.#anyKey = this.#db.prepare("SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1");
        this.#keyByDigest = this.#db.prepare("SELECT id FROM api_keys WHERE sha256 = ? AND revoked_at IS NULL");
    }

    /** Whether any key can be used: while one can, every API request must carry one. */
    hasKeys(): boolean {
        return this.#startupKeys.length > 0 || this.#anyKey.get() != null;
    }

    /** The id of the key `key` is, or undefined when it is no valid key. */
    verify(key: string): string | undefined {
        const digest = sha256(key);
        for (const startup of this.#startupKeys)
            if (timingSafeEqual(startup.digest, digest))
                return startup.info.id;
        for (const session of this.#sessionKeys)
            if (timingSafeEqual(session.digest, digest))
                return session.id;
        const row = this.#keyByDigest.get(digest.toString("hex")) as {id: string} | undefined;
        if (row != null)
            this.#touch(row.id);
        return row?.id;
    }

    /** Notes when a key was last used, at most once a minute per key. */
    #touch(id: string): void {
        const now = Date.now();
        if (now - (this.#lastUsedWrites.get(id) ?? 0) < 60_000)
            return;
        this.#lastUsedWrites.set(id, now);
        this.#db.prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?").run(new Date(now).toISOString(), id);
    }

    list(): ApiKeyInfo[] {
        const stored = this.#db.prepare("SELECT id, name, prefix, created_at, last_used_at FROM api_keys WHERE revoked_at IS NULL ORDER BY created_at, rowid")
            .all() as KeyRow[];
        return [...this.#startupKeys.map((startup) => startup.info), ...stored.map((row) => ({...row, source: "stored" as const}))];
    }

    /** Makes a new random key; the returned `key` is the only time it is available. */
    create(name: string): CreatedApiKey {
        const key = `hk-${randomBytes(24).toString("base64url")}`;
        const row: KeyRow = {
            id: `key_${randomBytes(6).toString("hex")}`,
            name: name.trim() || "API key",
            prefix: prefixOf(key),
            created_at: new Date().toISOString(),
            last_used_at: null
        };
        this.#db.prepare("INSERT INTO api_keys (id, name, sha256, prefix, created_at) VALUES (@id, @name, @sha256, @prefix, @created_at)")
            .run({...row, sha256: sha256(key).toString("hex")});
        return {...row, source: "stored", key};
    }

    /** Revokes a stored key; false when there is no such key (or it is already revoked). */
    revoke(id: string): boolean {
        return this.#db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(new Date().toISOString(), id).changes > 0;
    }

    isStartupKey(id: string): boolean {
        return this.#startupKeys.some((startup) => startup.info.id === id);
    }

    settings(): AccessSettings {
        if (this.#settings != null)
            return this.#settings;
        const rows = this.#db.prepare("SELECT name, value_json FROM settings").all() as {name: string, value_json: string}[];
        const settings: AccessSettings = {...DEFAULT_SETTINGS};
        for (const row of rows)
            if (row.name in settings)
                (settings as Record<string, unknown>)[row.name] = JSON.parse(row.value_json);
        this.#settings = settings;
        return settings;
    }

    updateSettings(changes: Partial<AccessSettings>): AccessSettings {
        const write = this.#db.prepare("INSERT INTO settings (name, value_json) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value_json = excluded.value_json");
        this.#db.transaction(() => {
            for (const [name, value] of Object.entries(changes))
                if (value !== undefined)
                    write.run(name, JSON.stringify(value));
        })();
        this.#settings = undefined;
        return this.settings();
    }

    close(): void {
        this.#db.close();
    }
}
