import path from "node:path";
import type Database from "better-sqlite3";
import {openDatabase} from "../../models/openDatabase.js";
import type {RouteSpec, RouteTarget} from "./routeSpec.js";

const MIGRATIONS = [
    `CREATE TABLE routes (
        name TEXT PRIMARY KEY,
        targets TEXT NOT NULL,
        shadow TEXT,
        updated_at TEXT NOT NULL
    ) STRICT;`
];

/** Routes set with `PUT /api/routes/{name}` or in the app, in `routes.db` in the data folder, served again after a restart. */
export class RouteStore {
    readonly #db: Database.Database;

    constructor(home: string) {
        this.#db = openDatabase(path.join(home, "routes.db"), MIGRATIONS, "The routes database");
    }

    list(): RouteSpec[] {
        const rows = this.#db.prepare("SELECT name, targets, shadow FROM routes ORDER BY name").all() as {name: string, targets: string, shadow: string | null}[];
        return rows.map((row) => ({name: row.name, targets: JSON.parse(row.targets) as RouteTarget[], ...row.shadow != null ? {shadow: row.shadow} : {}}));
    }

    put(route: RouteSpec): void {
        this.#db.prepare("INSERT INTO routes (name, targets, shadow, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET targets = excluded.targets, shadow = excluded.shadow, updated_at = excluded.updated_at")
            .run(route.name, JSON.stringify(route.targets), route.shadow ?? null, new Date().toISOString());
    }

    remove(name: string): boolean {
        return this.#db.prepare("DELETE FROM routes WHERE name = ?").run(name).changes > 0;
    }

    close(): void {
        this.#db.close();
    }
}
