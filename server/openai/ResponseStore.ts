import path from "node:path";
import type Database from "better-sqlite3";
import {openDatabase} from "../../models/openDatabase.js";
import {ReasoningSeal} from "./ReasoningSeal.js";

/** A stored response: the response object as it was answered, and the conversation that led to it. */
export type StoredResponse = {
    id: string,
    /** The `response` object, as `GET /v1/responses/{id}` returns it. */
    response: ResponseObject,
    /** Every input item of the conversation up to this response: a previous response's input and output, then this request's input. */
    input: readonly object[]
};

/** The fields of a response object the store reads; the rest is kept as it is. */
export type ResponseObject = {id: string, created_at: number, output: readonly object[]} & Record<string, unknown>;

const MIGRATIONS = [
    `CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        response_json TEXT NOT NULL CHECK (json_valid(response_json)),
        input_json TEXT NOT NULL CHECK (json_valid(input_json)),
        created_at INTEGER NOT NULL
    ) STRICT;`
];

type ResponseRow = {id: string, response_json: string, input_json: string, created_at: number};

/**
 * Responses of `/v1/responses` kept with `store` (OpenAI's default), in `responses.db` in the data folder
 * (SQLite, WAL): `previous_response_id` continues their conversation, and they can be read back and deleted.
 * Responses kept by the client instead carry their reasoning sealed by {@link reasoning}.
 */
export class ResponseStore {
    readonly #db: Database.Database;
    readonly reasoning: ReasoningSeal;

    constructor(home: string) {
        this.#db = openDatabase(path.join(home, "responses.db"), MIGRATIONS, "The responses database");
        this.reasoning = new ReasoningSeal(home);
    }

    save(stored: StoredResponse): void {
        this.#db.prepare(`INSERT OR REPLACE INTO responses (id, response_json, input_json, created_at)
            VALUES (@id, @response_json, @input_json, @created_at)`).run({
            id: stored.id,
            response_json: JSON.stringify(stored.response),
            input_json: JSON.stringify(stored.input),
            created_at: stored.response.created_at
        });
    }

    get(id: string): StoredResponse | undefined {
        const row = this.#db.prepare("SELECT * FROM responses WHERE id = ?").get(id) as ResponseRow | undefined;
        if (row == null)
            return undefined;
        return {id: row.id, response: JSON.parse(row.response_json) as ResponseObject, input: JSON.parse(row.input_json) as object[]};
    }

    /** Whether there was such a response. */
    remove(id: string): boolean {
        return this.#db.prepare("DELETE FROM responses WHERE id = ?").run(id).changes > 0;
    }

    close(): void {
        if (this.#db.open)
            this.#db.close();
    }
}
