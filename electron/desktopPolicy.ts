import type {MenuItemConstructorOptions, WebPreferences} from "electron";

/**
 * The desktop shell's rules, kept free of Electron's runtime so they are unit-tested without its binary:
 * how the window is locked down, which pages it may show, and what the tray offers.
 */

/** The renderer is a web page with no Node.js and a narrow bridge: it uses the HTTP API like any client. */
export function secureWebPreferences(preloadPath: string): WebPreferences {
    return {
        preload: preloadPath,
        contextIsolation: true,
        sandbox: true,
        nodeIntegration: false,
        nodeIntegrationInWorker: false,
        nodeIntegrationInSubFrames: false,
        webSecurity: true,
        allowRunningInsecureContent: false,
        webviewTag: false,
        spellcheck: true
    };
}

/**
 * The address the window opens: the app, with the window's own API key in the fragment, which the page
 * keeps and the browser never sends to the server. With it the app works when keys are required.
 */
export function appEntryUrl(serverUrl: string, sessionKey: string): string {
    return `${serverUrl}/#key=${encodeURIComponent(sessionKey)}`;
}

/** Whether `url` belongs to the app's own server; the window never navigates anywhere else. */
export function isAppUrl(url: string, appOrigin: string): boolean {
    try {
        return new URL(url).origin === new URL(appOrigin).origin;
    } catch {
        return false;
    }
}

/** Links to the web (model cards, docs) open in the user's browser; nothing else leaves the app. */
export function isExternalWebUrl(url: string): boolean {
    try {
        const {protocol} = new URL(url);
        return protocol === "https:" || protocol === "http:";
    } catch {
        return false;
    }
}

export type TrayState = {
    status: "starting" | "running" | "failed",
    /** The OpenAI base_url, once listening. */
    baseUrl: string | undefined,
    windowVisible: boolean,
    /** Why the server failed to start, when it did. */
    error?: string
};

export type TrayActions = {toggleWindow(): void, copyBaseUrl(): void, quit(): void};

export function trayTooltip(state: TrayState): string {
    switch (state.status) {
        case "starting":
            return "Hearth: starting the server…";
        case "running":
            return `Hearth: serving at ${state.baseUrl}`;
        case "failed":
            return `Hearth: the server failed to start (${state.error ?? "unknown error"})`;
    }
}

export function trayMenuTemplate(state: TrayState, actions: TrayActions): MenuItemConstructorOptions[] {
    return [
        {label: trayTooltip(state), enabled: false},
        {type: "separator"},
        {label: state.windowVisible ? "Hide Hearth" : "Show Hearth", click: actions.toggleWindow},
        {label: "Copy base_url", enabled: state.baseUrl != null, click: actions.copyBaseUrl},
        {type: "separator"},
        {label: "Quit Hearth", role: undefined, click: actions.quit}
    ];
}

/** Whether a model's name from the renderer is one the library could hold; anything else is refused before use. */
export function isPlausibleModelName(name: unknown): name is string {
    return typeof name === "string" && name.length > 0 && name.length <= 500 && !name.includes("\0");
}
