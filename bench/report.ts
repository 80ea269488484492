import {mkdir, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

/** What every benchmark prints and keeps: an aligned table, and its figures as JSON in `bench/results/`. */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export function printTable(rows: readonly (readonly string[])[]): void {
    const width = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
    for (const row of rows)
        console.log(row.map((cell, column) => cell.padEnd(width[column]!)).join("  |  "));
}

/** The machine a figure came from. */
export function describeMachine() {
    return {cpu: os.cpus()[0]?.model, cores: os.cpus().length, memoryBytes: os.totalmem(), platform: `${os.platform()} ${os.arch()}`, node: process.version};
}

/** Writes `bench/results/{kind}-{date}.json` and says where. */
export async function writeResult(kind: string, result: {date: string} & Record<string, unknown>): Promise<void> {
    const outDir = path.join(repoRoot, "bench", "results");
    await mkdir(outDir, {recursive: true});
    const file = path.join(outDir, `${kind}-${result.date.replace(/[:.]/g, "-")}.json`);
    await writeFile(file, JSON.stringify(result, null, 2) + "\n");
    console.log(`wrote ${path.relative(repoRoot, file)}`);
}
