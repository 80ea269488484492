import {spawn} from "node:child_process";
import {once} from "node:events";
import {mkdtempSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {after} from "node:test";

export const hearthBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "bin", "hearth");

/**
 * Runs `./bin/hearth` as a user would, collecting its output. Its data folder is a new temporary
 * one unless `env` names one, so tests never touch the user's library.
 */
/**
 * Processes still running: a test that fails before stopping its server must not leave the file's run hanging on
 * it. Only under the test runner (the benchmarks spawn Hearth too, and stop it themselves).
 */
const running = new Set<ReturnType<typeof spawn>>();
if (process.env.NODE_TEST_CONTEXT != null) {
    after(() => {
        for (const child of running)
            child.kill("SIGKILL");
    });
}

export function spawnHearth(args: readonly string[], env: Record<string, string> = {}) {
    const home = env.HEARTH_HOME ?? mkdtempSync(path.join(os.tmpdir(), "hearth-cli-home-"));
    const child = spawn(hearthBin, args, {env: {...process.env, HEARTH_LOG_LEVEL: "warn", ...env, HEARTH_HOME: home}, stdio: ["ignore", "pipe", "pipe"]});
    running.add(child);
    child.once("exit", () => running.delete(child));
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (data: Buffer) => stdout += data);
    child.stderr.on("data", (data: Buffer) => stderr += data);
    const exited = once(child, "exit").then(([code]) => ({code: code as number | null, stdout, stderr}));
    /** Resolves with the match once stdout matches; rejects if hearth exits first. */
    const waitForOutput = async (pattern: RegExp): Promise<RegExpExecArray> => {
        for (;;) {
            const match = pattern.exec(stdout);
            if (match != null)
                return match;
            const outcome = await Promise.race([once(child.stdout, "data").then(() => "data" as const), exited]);
            if (outcome !== "data")
                throw new Error(`hearth exited with code ${outcome.code}: ${stderr}`);
        }
    };
    return {child, waitForOutput, exited};
}
