import type Database from "better-sqlite3";
import type {ModelShape} from "./modelShape.js";
import {openDatabase} from "./openDatabase.js";
import {PRESETS_MIGRATION, Presets} from "./Presets.js";
import type {GgufSummary} from "./readGgufSummary.js";

/** A file of a library model, with its path relative to the data folder. */
export type LibraryFile = {path: string, sizeBytes: number, sha256: string};

export type LibraryModel = {
    /** `hf.co/owner/repo:Q4_K_M`, or a local name. */
    name: string,
    source: "hub" | "local",
    repo?: string,
    commit?: string,
    quantization?: string,
    /** In part order for a split model. */
    files: LibraryFile[],
    sizeBytes: number,
    /** The first file's sha256. */
    sha256: string,
    /**
     * The vision projector (mmproj GGUF) the model loads with, which lets it see images: a pull brings its repo's
     * (quantizations of one repo share it). Not counted in `sizeBytes`. Undefined: a model that cannot see.
     */
    projector?: LibraryFile,
    gguf: GgufSummary,
    /** ISO time it entered the library. */
    createdAt: string
};

type Row = {
    name: string, source: "hub" | "local", repo: string | null, commit_sha: string | null, quantization: string | null,
    files_json: string, size_bytes: number, sha256: string, architecture: string | null, parameter_count: number,
    context_length: number | null, layer_count: number | null, chat_template: string | null, model_info_json: string, created_at: string,
    projector_path: string | null, projector_size_bytes: number | null, projector_sha256: string | null
};

const MIGRATIONS = [
    `CREATE TABLE models (
        name TEXT PRIMARY KEY,
        source TEXT NOT NULL CHECK (source IN ('hub', 'local')),
        repo TEXT,
        commit_sha TEXT,
        quantization TEXT,
        files_json TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        architecture TEXT,
        parameter_count INTEGER NOT NULL,
        context_length INTEGER,
        layer_count INTEGER,
        chat_template TEXT,
        model_info_json TEXT NOT NULL,
        created_at TEXT NOT NULL
    ) STRICT`,
    // Shapes of Hub files read from their headers, by the file's sha256: a file's bytes never change.
    `CREATE TABLE gguf_shapes (
        sha256 TEXT PRIMARY KEY,
        shape_json TEXT NOT NULL
    ) STRICT`,
    // A model's vision projector (mmproj), relative to the models folder as files_json's paths are.
    `ALTER TABLE models ADD COLUMN projector_path TEXT;
    ALTER TABLE models ADD COLUMN projector_size_bytes INTEGER;
    ALTER TABLE models ADD COLUMN projector_sha256 TEXT`,
    // Hub mmproj files a pull found not to be vision projectors (an audio model's), by sha256, so no pull takes them again.
    `CREATE TABLE refused_projectors (
        sha256 TEXT PRIMARY KEY,
        reason TEXT NOT NULL
    ) STRICT`,
    // Models with their settings under a name (Modelfiles).
    PRESETS_MIGRATION
];

/** The library's rows, in SQLite (WAL, so a CLI and a running server can share it). */
export class Registry {
    readonly #db: Database.Database;
    /** Prepared once: every request that names a model looks it up here (preparing costs more than the lookup). */
    readonly #byName: Database.Statement;
    readonly presets: Presets;

    constructor(path: string) {
        this.#db = openDatabase(path, MIGRATIONS, "The library");
        this.#byName = this.#db.prepare("SELECT * FROM models WHERE name = ? COLLATE NOCASE");
        this.presets = new Presets(this.#db);
    }

    list(): LibraryModel[] {
        return (this.#db.prepare("SELECT * FROM models ORDER BY name").all() as Row[]).map(fromRow);
    }

    get(name: string): LibraryModel | undefined {
        const row = this.#byName.get(name) as Row | undefined;
        return row != null ? fromRow(row) : undefined;
    }

    /** Inserts a model, or replaces the row of the same name (a pull of a newer commit). */
    put(model: LibraryModel): void {
        this.#db.prepare(`INSERT OR REPLACE INTO models (name, source, repo, commit_sha, quantization, files_json, size_bytes, sha256,
            architecture, parameter_count, context_length, layer_count, chat_template, model_info_json, created_at,
            projector_path, projector_size_bytes, projector_sha256)
            VALUES (@name, @source, @repo, @commit_sha, @quantization, @files_json, @size_bytes, @sha256,
            @architecture, @parameter_count, @context_length, @layer_count, @chat_template, @model_info_json, @created_at,
            @projector_path, @projector_size_bytes, @projector_sha256)`).run(toRow(model));
    }

    remove(name: string): boolean {
        return this.#db.prepare("DELETE FROM models WHERE name = ? COLLATE NOCASE").run(name).changes > 0;
    }

    shape(sha256: string): ModelShape | undefined {
        const row = this.#db.prepare("SELECT shape_json FROM gguf_shapes WHERE sha256 = ?").get(sha256) as {shape_json: string} | undefined;
        return row != null ? JSON.parse(row.shape_json) as ModelShape : undefined;
    }

    putShape(sha256: string, shape: ModelShape): void {
        this.#db.prepare("INSERT OR REPLACE INTO gguf_shapes (sha256, shape_json) VALUES (?, ?)").run(sha256, JSON.stringify(shape));
    }

    /** Why a projector file (by its sha256) was found not to be a vision projector, or undefined when it was not. */
    refusedProjector(sha256: string): string | undefined {
        return (this.#db.prepare("SELECT reason FROM refused_projectors WHERE sha256 = ?").get(sha256) as {reason: string} | undefined)?.reason;
    }

    refuseProjector(sha256: string, reason: string): void {
        this.#db.prepare("INSERT OR REPLACE INTO refused_projectors (sha256, reason) VALUES (?, ?)").run(sha256, reason);
    }

    close(): void {
        if (this.#db.open)
            this.#db.close();
    }
}

function toRow(model: LibraryModel): Row {
    return {
        name: model.name,
        source: model.source,
        repo: model.repo ?? null,
        commit_sha: model.commit ?? null,
        quantization: model.quantization ?? null,
        files_json: JSON.stringify(model.files),
        size_bytes: model.sizeBytes,
        sha256: model.sha256,
        architecture: model.gguf.architecture ?? null,
        parameter_count: model.gguf.parameterCount,
        context_length: model.gguf.contextLength ?? null,
        layer_count: model.gguf.layerCount ?? null,
        chat_template: model.gguf.chatTemplate ?? null,
        model_info_json: JSON.stringify(model.gguf.modelInfo),
        created_at: model.createdAt,
        projector_path: model.projector?.path ?? null,
        projector_size_bytes: model.projector?.sizeBytes ?? null,
        projector_sha256: model.projector?.sha256 ?? null
    };
}

function fromRow(row: Row): LibraryModel {
    return {
        name: row.name,
        source: row.source,
        repo: row.repo ?? undefined,
        commit: row.commit_sha ?? undefined,
        quantization: row.quantization ?? undefined,
        files: JSON.parse(row.files_json) as LibraryFile[],
        sizeBytes: row.size_bytes,
        sha256: row.sha256,
        ...row.projector_path != null && row.projector_size_bytes != null && row.projector_sha256 != null
            ? {projector: {path: row.projector_path, sizeBytes: row.projector_size_bytes, sha256: row.projector_sha256}} : {},
        gguf: {
            architecture: row.architecture ?? undefined,
            parameterCount: row.parameter_count,
            contextLength: row.context_length ?? undefined,
            layerCount: row.layer_count ?? undefined,
            chatTemplate: row.chat_template ?? undefined,
            modelInfo: JSON.parse(row.model_info_json) as GgufSummary["modelInfo"]
        },
        createdAt: row.created_at
    };
}
