import {randomUUID} from "node:crypto";
import path from "node:path";
import type Database from "better-sqlite3";
import {openDatabase} from "../../models/openDatabase.js";
import type {ModelBenchResult, ModelBenchSettings} from "../../native/benchmark/benchmarkModel.js";

/** A model's row in a saved run: its figures and the sha256 of the file measured. */
export type SavedModelResult = ModelBenchResult & {sha256: string};

export type BenchRun = {
    id: string,
    status: "running" | "complete" | "failed" | "interrupted",
    /** Models as they were asked for: file paths or library names. */
    models: string[],
    settings: Omit<ModelBenchSettings, "threads"> & {threads: "auto" | number, gpu: string},
    /** `/api/system` at the time of the run. */
    machine: unknown,
    results: SavedModelResult[],
    /** While running: how many models are done, of how many, and which one is being measured. */
    progress: {done: number, total: number, model: string | null},
    error: string | null,
    created_at: string,
    finished_at: string | null
};

type Row = {
    id: string, status: BenchRun["status"], models_json: string, settings_json: string, machine_json: string, results_json: string,
    progress_json: string, error: string | null, created_at: string, finished_at: string | null
};

const MIGRATIONS = [
    `CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL CHECK (status IN ('running', 'complete', 'failed', 'interrupted')),
        models_json TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        machine_json TEXT NOT NULL,
        results_json TEXT NOT NULL,
        progress_json TEXT NOT NULL,
        error TEXT,
        created_at TEXT NOT NULL,
        finished_at TEXT
    ) STRICT;`
];

/** Every benchmark run, from the CLI or the app, in `benchmarks.db` in the data folder (SQLite, WAL). */
export class BenchStore {
    readonly #db: Database.Database;

    constructor(home: string) {
        this.#db = openDatabase(path.join(home, "benchmarks.db"), MIGRATIONS, "The benchmarks database");
        // A run that was going when the last server stopped keeps the models it finished.
        this.#db.prepare("UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'").run(new Date().toISOString());
    }

    start(models: readonly string[], settings: BenchRun["settings"], machine: unknown): BenchRun {
        const id = randomUUID();
        this.#db.prepare(`INSERT INTO runs (id, status, models_json, settings_json, machine_json, results_json, progress_json, created_at)
            VALUES (?, 'running', ?, ?, ?, '[]', ?, ?)`).run(id, JSON.stringify(models), JSON.stringify(settings), JSON.stringify(machine ?? null),
            JSON.stringify({done: 0, total: models.length, model: null}), new Date().toISOString());
        return this.get(id)!;
    }

    progress(id: string, progress: BenchRun["progress"], results: readonly SavedModelResult[]): void {
        this.#db.prepare("UPDATE runs SET progress_json = ?, results_json = ? WHERE id = ?").run(JSON.stringify(progress), JSON.stringify(results), id);
    }

    finish(id: string, outcome: {results: readonly SavedModelResult[]} | {error: string}): void {
        const finishedAt = new Date().toISOString();
        if ("error" in outcome)
            this.#db.prepare("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE id = ?").run(outcome.error, finishedAt, id);
        else
            this.#db.prepare("UPDATE runs SET status = 'complete', results_json = ?, finished_at = ? WHERE id = ?").run(JSON.stringify(outcome.results), finishedAt, id);
    }

    get(id: string): BenchRun | undefined {
        const row = this.#db.prepare("SELECT * FROM runs WHERE id = ?").get(id) as Row | undefined;
        return row != null ? toRun(row) : undefined;
    }

    /** Newest first. */
    list(limit = 100): BenchRun[] {
        return (this.#db.prepare("SELECT * FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?").all(limit) as Row[]).map(toRun);
    }

    close(): void {
        this.#db.close();
    }
}

function toRun(row: Row): BenchRun {
    return {
        id: row.id,
        status: row.status,
        models: JSON.parse(row.models_json) as string[],
        settings: JSON.parse(row.settings_json) as BenchRun["settings"],
        machine: JSON.parse(row.machine_json) as unknown,
        results: JSON.parse(row.results_json) as SavedModelResult[],
        progress: JSON.parse(row.progress_json) as BenchRun["progress"],
        error: row.error,
        created_at: row.created_at,
        finished_at: row.finished_at
    };
}
