import {spawnSync} from "node:child_process";
import {createRequire} from "node:module";
import path from "node:path";
import {findElectronBinary} from "./desktopAvailability.js";

/**
 * Downloads Electron's binary for the desktop app, which its own postinstall would do from GitHub.
 * Run by `npm ci` (through `prepare`) and `npm run fetch:electron`; where it cannot be downloaded (no
 * internet, or ELECTRON_SKIP_BINARY_DOWNLOAD set) installing still succeeds, and `npm start` serves the
 * same app headless in a browser instead.
 */
function main(): void {
    const installed = findElectronBinary();
    if (installed.available)
        return;
    if (process.env.ELECTRON_SKIP_BINARY_DOWNLOAD) {
        console.log("hearth: ELECTRON_SKIP_BINARY_DOWNLOAD is set, so the desktop app's Electron binary was not downloaded; `npm start` serves the app in a browser instead.");
        return;
    }
    let installScript: string;
    try {
        installScript = path.join(path.dirname(createRequire(import.meta.url).resolve("electron/package.json")), "install.js");
    } catch {
        console.log("hearth: the electron package is not installed (a production install); the desktop app is not available here.");
        return;
    }
    const result = spawnSync(process.execPath, [installScript], {stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 10 * 60_000});
    if (result.status !== 0) {
        const reason = (result.stderr ?? "").split("\n").find((line) => line.trim() !== "")?.trim() ?? `exit code ${result.status}`;
        console.log(`hearth: could not download Electron's binary (${reason}); \`npm start\` will serve the app in a browser instead. Retry with \`npm run fetch:electron\`.`);
        return;
    }
    console.log("hearth: downloaded Electron's binary for the desktop app.");
}

main();
