// The one bridge between the sandboxed page and the main process. Sandboxed preloads cannot load other
// files, so the channel names are written out here and checked against the main process by a test.
import {contextBridge, ipcRenderer} from "electron";

contextBridge.exposeInMainWorld("hearth", {
    /** Asks for a .gguf file and imports it into the library; undefined when the user cancels. */
    importModelFile: (): Promise<{name: string} | undefined> => ipcRenderer.invoke("hearth:import-model-file"),
    /** Shows a library model's file in the system's file manager. */
    revealModel: (name: string): Promise<void> => ipcRenderer.invoke("hearth:reveal-model", name),
    appVersion: (): Promise<string> => ipcRenderer.invoke("hearth:app-version")
});
