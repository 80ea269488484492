import {fileURLToPath} from "node:url";
import {defineConfig} from "vite";

// The app is served by `hearth serve` from dist/renderer, and loaded by Electron from the same server.
export default defineConfig({
    root: fileURLToPath(new URL(".", import.meta.url)),
    base: "./",
    build: {
        outDir: fileURLToPath(new URL("../dist/renderer", import.meta.url)),
        emptyOutDir: true,
        chunkSizeWarningLimit: 2048
    }
});
