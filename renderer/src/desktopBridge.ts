/** What the Electron preload exposes; absent in a plain browser, where the app does everything over HTTP. */
export type DesktopBridge = {
    /** Asks for a `.gguf` file and imports it into the library; undefined when the user cancelled. */
    importModelFile(): Promise<{name: string} | undefined>,
    /** Shows a library model's file in the system's file manager. */
    revealModel(name: string): Promise<void>,
    appVersion(): Promise<string>
};

export const desktop: DesktopBridge | undefined = (window as unknown as {hearth?: DesktopBridge}).hearth;
