import {spawn} from "node:child_process";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {desktopAvailability} from "./desktopAvailability.js";

/**
 * `npm start`: the desktop app where Electron can open a window; otherwise it says why and serves the same
 * app headless, at the URL `hearth serve` prints. Arguments are `hearth serve`'s.
 */

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
/** An Electron that dies this soon after starting never opened its window (missing libraries, say). */
const EARLY_EXIT_MS = 5000;

function run(command: string, args: string[]): Promise<number> {
    const child = spawn(command, args, {stdio: "inherit"});
    for (const signal of ["SIGINT", "SIGTERM"] as const)
        process.on(signal, () => child.kill(signal));
    return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal != null ? 1 : 0))));
}

function serveHeadless(args: string[]): Promise<number> {
    return run(process.execPath, [path.join(root, "bin", "hearth"), "serve", ...args]);
}

async function main(args: string[]): Promise<number> {
    const desktop = desktopAvailability();
    if (!desktop.available) {
        console.log(`hearth: the desktop app cannot open here: ${desktop.reason}.`);
        console.log("hearth: serving the same app headless; open the URL below in a browser.");
        return serveHeadless(args);
    }
    const startedAt = Date.now();
    const code = await run(desktop.electronPath, [root, ...args]);
    if (code !== 0 && Date.now() - startedAt < EARLY_EXIT_MS) {
        console.log(`hearth: the desktop app exited at start (code ${code}); serving the same app headless instead.`);
        return serveHeadless(args);
    }
    return code;
}

main(process.argv.slice(2)).then((code) => process.exit(code), (error: unknown) => {
    console.error(error);
    process.exit(1);
});
