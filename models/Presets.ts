import type Database from "better-sqlite3";

/**
 * A preset's settings, Ollama's Modelfile `PARAMETER`s by their Ollama names: defaults a request overrides field by
 * field. `num_ctx` is kept and shown; the context a model loads with is the server's (see the README).
 */
export type PresetParameters = {
    temperature?: number,
    top_p?: number,
    top_k?: number,
    min_p?: number,
    repeat_penalty?: number,
    seed?: number,
    num_ctx?: number,
    num_predict?: number,
    stop?: string[]
};

/** A few-shot turn a preset puts before a request's messages (Modelfile `MESSAGE`). */
export type PresetMessage = {role: "system" | "user" | "assistant", content: string};

/**
 * A model with its settings under a name (Ollama's Modelfile, LM Studio's presets). `base` is a model's name or
 * another preset's, resolved to a model when the preset is used, so a preset follows its base when that changes.
 */
export type Preset = {
    name: string,
    base: string,
    system?: string,
    /** Kept and shown as given; the model's own chat template renders the chat. */
    template?: string,
    parameters: PresetParameters,
    messages: PresetMessage[],
    /** Names of MCP servers (in `mcp.json`) whose tools the preset offers; kept for when Hearth hosts them. */
    mcpServers: string[],
    /** ISO time it was created or last replaced. */
    createdAt: string
};

type Row = {
    name: string, base: string, system: string | null, template: string | null, parameters_json: string, messages_json: string,
    mcp_servers_json: string, created_at: string
};

/** The registry's migration that adds presets; names compare without case, as model names do. */
export const PRESETS_MIGRATION = `CREATE TABLE presets (
    name TEXT PRIMARY KEY COLLATE NOCASE,
    base TEXT NOT NULL,
    system TEXT,
    template TEXT,
    parameters_json TEXT NOT NULL,
    messages_json TEXT NOT NULL,
    mcp_servers_json TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL
) STRICT`;

/** The presets table of the library's registry. */
export class Presets {
    readonly #db: Database.Database;
    readonly #byName: Database.Statement;

    constructor(db: Database.Database) {
        this.#db = db;
        this.#byName = db.prepare("SELECT * FROM presets WHERE name = ? COLLATE NOCASE");
    }

    list(): Preset[] {
        return (this.#db.prepare("SELECT * FROM presets ORDER BY name").all() as Row[]).map(fromRow);
    }

    get(name: string): Preset | undefined {
        const row = this.#byName.get(name) as Row | undefined;
        return row != null ? fromRow(row) : undefined;
    }

    /** Inserts a preset, or replaces the one of the same name (Ollama's `create` overwrites). */
    put(preset: Preset): void {
        this.#db.prepare(`INSERT OR REPLACE INTO presets (name, base, system, template, parameters_json, messages_json, mcp_servers_json, created_at)
            VALUES (@name, @base, @system, @template, @parameters_json, @messages_json, @mcp_servers_json, @created_at)`).run({
            name: preset.name, base: preset.base, system: preset.system ?? null, template: preset.template ?? null,
            parameters_json: JSON.stringify(preset.parameters), messages_json: JSON.stringify(preset.messages),
            mcp_servers_json: JSON.stringify(preset.mcpServers), created_at: preset.createdAt
        });
    }

    remove(name: string): boolean {
        return this.#db.prepare("DELETE FROM presets WHERE name = ? COLLATE NOCASE").run(name).changes > 0;
    }
}

function fromRow(row: Row): Preset {
    return {
        name: row.name,
        base: row.base,
        ...row.system != null ? {system: row.system} : {},
        ...row.template != null ? {template: row.template} : {},
        parameters: JSON.parse(row.parameters_json) as PresetParameters,
        messages: JSON.parse(row.messages_json) as PresetMessage[],
        mcpServers: JSON.parse(row.mcp_servers_json) as string[],
        createdAt: row.created_at
    };
}
