import {randomBytes} from "node:crypto";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {BrowserWindow, Menu, Tray, app, clipboard, dialog, ipcMain, nativeImage, shell} from "electron";
import type {IpcMainInvokeEvent} from "electron";
import {parseServeArgs} from "../server/config.js";
import {startServer} from "../server/startServer.js";
import type {RunningServer} from "../server/startServer.js";
import {appEntryUrl, isAppUrl, isExternalWebUrl, isPlausibleModelName, secureWebPreferences, trayMenuTemplate, trayTooltip} from "./desktopPolicy.js";
import type {TrayState} from "./desktopPolicy.js";
import {startOnPreferredPort} from "./startOnPreferredPort.js";

/**
 * The desktop app: the server in this process, one window on the app it serves, a tray icon. The window
 * is a sandboxed web page that talks to the server over HTTP like any browser; the preload adds only
 * what a browser cannot do (pick a local file to import, show a file in its folder).
 */

const here = path.dirname(fileURLToPath(import.meta.url));
const ASSETS = path.resolve(here, "..", "..", "electron", "assets");
/** The main process's own arguments come before the app path; what follows is `hearth serve`'s. */
const serveArgs = process.argv.slice(app.isPackaged ? 1 : 2);

/** The window's own API key, made fresh at each launch and never stored: the app keeps working when keys are required. */
const sessionKey = randomBytes(32).toString("base64url");
let server: RunningServer | undefined;
let window: BrowserWindow | undefined;
let tray: Tray | undefined;
const trayState: TrayState = {status: "starting", baseUrl: undefined, windowVisible: false};

if (!app.requestSingleInstanceLock()) {
    // Another Hearth owns the server and the window; it is shown by its second-instance handler.
    app.quit();
} else {
    app.on("second-instance", () => showWindow());
    app.whenReady().then(start, (error: unknown) => fatal(error));
}

async function start(): Promise<void> {
    app.setAppUserModelId("dev.hearth.app");
    createTray();
    registerBridge();
    const {config} = parseServeArgs(serveArgs);
    try {
        const started = await startOnPreferredPort((port) => startServer({...config, port}, {logger: {level: process.env.HEARTH_LOG_LEVEL ?? "warn"}, sessionKeys: [sessionKey]}), config.port);
        server = started.server;
        if (started.usedFallback)
            console.log(`hearth: port ${config.port} is in use; serving on ${server.url} instead`);
    } catch (error) {
        fatal(error);
        return;
    }
    server.ready.catch((error: unknown) => console.error(`hearth: ${(error as Error).message}`));
    trayState.status = "running";
    trayState.baseUrl = `${server.url}/v1`;
    updateTray();
    createWindow(server.url);
}

function createWindow(url: string): void {
    window = new BrowserWindow({
        width: 1280,
        height: 860,
        minWidth: 720,
        minHeight: 480,
        title: "Hearth",
        icon: path.join(ASSETS, "icon.png"),
        show: false,
        webPreferences: secureWebPreferences(path.join(here, "preload.cjs"))
    });
    const contents = window.webContents;
    // No new windows; web links open in the user's browser instead.
    contents.setWindowOpenHandler(({url: target}) => {
        if (isExternalWebUrl(target) && !isAppUrl(target, url))
            void shell.openExternal(target);
        return {action: "deny"};
    });
    contents.on("will-navigate", (event, target) => {
        if (!isAppUrl(target, url)) {
            event.preventDefault();
            if (isExternalWebUrl(target))
                void shell.openExternal(target);
        }
    });
    window.once("ready-to-show", () => showWindow());
    window.on("show", () => setVisible(true));
    window.on("hide", () => setVisible(false));
    // Closing the window keeps the server running in the tray; Quit stops it.
    window.on("close", (event) => {
        if (!quitting) {
            event.preventDefault();
            window?.hide();
        }
    });
    void window.loadURL(appEntryUrl(url, sessionKey));
}

function showWindow(): void {
    if (window == null)
        return;
    if (window.isMinimized())
        window.restore();
    window.show();
    window.focus();
}

function setVisible(visible: boolean): void {
    trayState.windowVisible = visible;
    updateTray();
}

function createTray(): void {
    tray = new Tray(nativeImage.createFromPath(path.join(ASSETS, "tray.png")));
    tray.on("click", () => showWindow());
    updateTray();
}

function updateTray(): void {
    if (tray == null)
        return;
    tray.setToolTip(trayTooltip(trayState));
    tray.setContextMenu(Menu.buildFromTemplate(trayMenuTemplate(trayState, {
        toggleWindow: () => window?.isVisible() ? window.hide() : showWindow(),
        copyBaseUrl: () => trayState.baseUrl != null && clipboard.writeText(trayState.baseUrl),
        quit: () => app.quit()
    })));
}

/** Only the app's own page may use the bridge. */
function fromApp(event: IpcMainInvokeEvent): boolean {
    return server != null && event.senderFrame != null && isAppUrl(event.senderFrame.url, server.url);
}

function registerBridge(): void {
    ipcMain.handle("hearth:app-version", (event) => fromApp(event) ? app.getVersion() : undefined);
    ipcMain.handle("hearth:import-model-file", async (event) => {
        if (!fromApp(event) || server == null || window == null)
            return undefined;
        const picked = await dialog.showOpenDialog(window, {
            title: "Import a GGUF model",
            properties: ["openFile"],
            filters: [{name: "GGUF models", extensions: ["gguf"]}]
        });
        const file = picked.filePaths[0];
        if (picked.canceled || file == null)
            return undefined;
        const model = await server.library.import(file);
        return {name: model.name};
    });
    ipcMain.handle("hearth:reveal-model", (event, name: unknown) => {
        if (!fromApp(event) || server == null || !isPlausibleModelName(name))
            return;
        const model = server.library.find(name);
        if (model != null)
            shell.showItemInFolder(server.library.filePaths(model)[0]!);
    });
}

let quitting = false;
let closed = false;
app.on("before-quit", (event) => {
    quitting = true;
    if (closed || server == null)
        return;
    // Stop generations and downloads, close the databases, then quit for real.
    event.preventDefault();
    void server.close().catch((error: unknown) => console.error(error)).finally(() => {
        closed = true;
        app.quit();
    });
});
// The server lives in the tray when the window closes; quitting is explicit.
app.on("window-all-closed", () => undefined);

function fatal(error: unknown): void {
    const message = (error as Error).message ?? String(error);
    trayState.status = "failed";
    trayState.error = message;
    updateTray();
    dialog.showErrorBox("Hearth could not start", message);
    quitting = true;
    app.quit();
}
