import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

/** Where the build puts the native decode loop: next to this module in dist/. */
export function addonPath(): string {
    return join(dirname(fileURLToPath(import.meta.url)), "hearth-decode-loop.node");
}
