import assert from "node:assert/strict";
import {spawn} from "node:child_process";
import {once} from "node:events";
import {readFile} from "node:fs/promises";
import {mkdtemp} from "node:fs/promises";
import {createServer} from "node:net";
import type {AddressInfo, Server} from "node:net";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {describe, it} from "node:test";
import {desktopAvailability, findElectronBinary} from "../electron/desktopAvailability.js";
import {appEntryUrl, isAppUrl, isExternalWebUrl, isPlausibleModelName, secureWebPreferences, trayMenuTemplate} from "../electron/desktopPolicy.js";
import {startOnPreferredPort} from "../electron/startOnPreferredPort.js";

/** The desktop shell's logic, tested without Electron's binary, and `npm start` where no window can open. */

const electronDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "electron");

describe("the desktop shell", () => {
    it("locks the window down: isolated, sandboxed, no Node.js in the page", () => {
        const preferences = secureWebPreferences("/app/preload.cjs");
        assert.equal(preferences.contextIsolation, true);
        assert.equal(preferences.sandbox, true);
        assert.equal(preferences.nodeIntegration, false);
        assert.equal(preferences.webviewTag, false);
        assert.equal(preferences.preload, "/app/preload.cjs");
    });

    it("keeps the window on the app's own server", () => {
        const app = "http://127.0.0.1:4327";
        assert.ok(isAppUrl("http://127.0.0.1:4327/#/chat", app));
        // The window's key rides in the fragment, which never reaches the network, and the entry stays on the app.
        const entry = appEntryUrl(app, "k/+=");
        assert.equal(new URL(entry).hash, "#key=k%2F%2B%3D");
        assert.ok(isAppUrl(entry, app));
        assert.ok(!isAppUrl("http://127.0.0.1:4328/", app), "another port is another origin");
        assert.ok(!isAppUrl("http://localhost:4327/", app));
        assert.ok(!isAppUrl("https://evil.example/", app));
        assert.ok(!isAppUrl("not a url", app));
        assert.ok(isExternalWebUrl("https://huggingface.co/ggml-org"));
        assert.ok(!isExternalWebUrl("file:///etc/passwd"));
        assert.ok(!isExternalWebUrl("javascript:alert(1)"));
        assert.ok(isPlausibleModelName("hf.co/ggml-org/stories260K-GGUF:Q8_0"));
        assert.ok(!isPlausibleModelName(42));
        assert.ok(!isPlausibleModelName("a\0b"));
    });

    it("offers show/hide, copy base_url and quit in the tray, with the server's status", () => {
        const calls: string[] = [];
        const actions = {toggleWindow: () => calls.push("toggle"), copyBaseUrl: () => calls.push("copy"), quit: () => calls.push("quit")};
        const starting = trayMenuTemplate({status: "starting", baseUrl: undefined, windowVisible: false}, actions);
        assert.match(String(starting[0]!.label), /starting/);
        assert.equal(starting.find((item) => item.label === "Copy base_url")!.enabled, false);
        const running = trayMenuTemplate({status: "running", baseUrl: "http://127.0.0.1:4327/v1", windowVisible: true}, actions);
        assert.equal(running[0]!.label, "Hearth: serving at http://127.0.0.1:4327/v1");
        for (const label of ["Hide Hearth", "Copy base_url", "Quit Hearth"])
            (running.find((item) => item.label === label)!.click as () => void)();
        assert.deepEqual(calls, ["toggle", "copy", "quit"]);
        assert.equal(trayMenuTemplate({status: "running", baseUrl: "x", windowVisible: false}, actions)[2]!.label, "Show Hearth");
        assert.match(String(trayMenuTemplate({status: "failed", baseUrl: undefined, windowVisible: false, error: "disk full"}, actions)[0]!.label), /disk full/);
    });

    it("serves on the port tools know, and on a free one when another program holds it", async () => {
        const listen = async (port: number): Promise<Server> => {
            const server = createServer();
            await new Promise<void>((resolve, reject) => {
                server.once("error", reject);
                server.listen(port, "127.0.0.1", resolve);
            });
            return server;
        };
        const holder = await listen(0);
        const held = (holder.address() as AddressInfo).port;
        try {
            const {server, usedFallback} = await startOnPreferredPort(listen, held);
            assert.equal(usedFallback, true);
            assert.notEqual((server.address() as AddressInfo).port, held);
            server.close();
            holder.close();
            await once(holder, "close");
            const again = await startOnPreferredPort(listen, held);
            assert.deepEqual([again.usedFallback, (again.server.address() as AddressInfo).port], [false, held]);
            again.server.close();
        } finally {
            holder.close();
        }
        await assert.rejects(startOnPreferredPort(() => Promise.reject(Object.assign(new Error("denied"), {code: "EACCES"})), 80), /denied/);
    });

    it("says why the desktop app cannot open", () => {
        const noDisplay = desktopAvailability({platform: "linux", env: {}, resolveElectron: () => "/bin/sh"});
        assert.deepEqual(noDisplay, {available: false, reason: "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"});
        const notDownloaded = desktopAvailability({platform: "linux", env: {DISPLAY: ":0"}, resolveElectron: () => {
            throw new Error("Electron failed to install correctly, please delete node_modules/electron and try installing again");
        }});
        assert.equal(notDownloaded.available, false);
        assert.match((notDownloaded as {reason: string}).reason, /not installed.*npm run fetch:electron/);
        assert.deepEqual(desktopAvailability({platform: "darwin", env: {}, resolveElectron: () => "/bin/sh"}), {available: true, electronPath: "/bin/sh"});
        assert.equal(findElectronBinary(() => "/no/such/electron").available, false);
    });

    it("exposes the same channels in the preload as the main process handles, and nothing else", async () => {
        const channels = (text: string) => [...text.matchAll(/"(hearth:[a-z-]+)"/g)].map((match) => match[1]).sort();
        const preload = await readFile(path.join(electronDir, "preload.cjs"), "utf8");
        const main = await readFile(path.join(electronDir, "main.js"), "utf8");
        assert.deepEqual(channels(preload), ["hearth:app-version", "hearth:import-model-file", "hearth:reveal-model"]);
        assert.deepEqual(channels(main), channels(preload));
        assert.doesNotMatch(preload, /exposeInMainWorld\([^)]*ipcRenderer\s*\)/, "ipcRenderer itself is never exposed");
    });

    it("npm start says why no window can open and serves the same app headless", async () => {
        const home = await mkdtemp(path.join(os.tmpdir(), "hearth-start-"));
        const env: NodeJS.ProcessEnv = {...process.env, HEARTH_HOME: home, HEARTH_LOG_LEVEL: "warn"};
        delete env.DISPLAY;
        delete env.WAYLAND_DISPLAY;
        const child = spawn(process.execPath, [path.join(electronDir, "launch.js"), "--port", "0"], {env, stdio: ["ignore", "pipe", "pipe"]});
        let output = "";
        child.stdout.on("data", (data: Buffer) => output += data);
        child.stderr.on("data", (data: Buffer) => output += data);
        try {
            let url: string | undefined;
            for (let attempt = 0; attempt < 300 && url == null; attempt++) {
                url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
                await new Promise((resolve) => setTimeout(resolve, 50));
            }
            assert.ok(url != null, `no URL printed: ${output}`);
            assert.match(output, /the desktop app cannot open here: there is no display/);
            const page = await fetch(`${url}/`);
            assert.equal(page.status, 200);
            assert.match(await page.text(), /<div id="root">/);
        } finally {
            child.kill("SIGTERM");
        }
        const [code] = await once(child, "exit");
        assert.equal(code, 0, output);
    });
});
