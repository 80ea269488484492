import Database from "better-sqlite3";

/**
 * Opens a SQLite file in the data folder as Hearth keeps them (WAL, so a CLI and a running server can
 * share it) and brings its schema up to date: `migrations[i]` takes schema version i to i + 1, all in one
 * transaction. A file written by a newer Hearth is refused, naming `what` it holds.
 */
export function openDatabase(file: string, migrations: readonly string[], what: string): Database.Database {
    const db = new Database(file);
    db.pragma("journal_mode = WAL");
    db.pragma("busy_timeout = 5000");
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    const version = db.pragma("user_version", {simple: true}) as number;
    if (version > migrations.length) {
        db.close();
        throw new Error(`${what} in ${file} was written by a newer Hearth (schema ${version}); update Hearth to open it.`);
    }
    db.transaction(() => {
        for (const migration of migrations.slice(version))
            db.exec(migration);
        db.pragma(`user_version = ${migrations.length}`);
    })();
    return db;
}
