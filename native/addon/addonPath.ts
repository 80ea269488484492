import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";

/** One copy of the native decode loop, linked against the libllama of one node-llama-cpp binary. */
export type BuiltAddon = {
    /** The binary's folder, relative to the project's root: it holds node-llama-cpp's llama-addon.node and this libllama. */
    bindingFolder: string,
    /** The copy, relative to {@link addonFolder}. */
    addon: string,
    /** The libllama file it is linked against, in `bindingFolder`. */
    libllama: string
};

/** What `npm run build` built: the node-llama-cpp version whose headers it used, and one copy per binary. */
export type AddonManifest = {nodeLlamaCpp: string, addons: BuiltAddon[]};

/** Where the build puts the native decode loop: next to this module in dist/. */
export function addonFolder(): string {
    return dirname(fileURLToPath(import.meta.url));
}

/** The project's root, which the manifest's binary folders are relative to. */
export function projectRoot(): string {
    return join(addonFolder(), "..", "..", "..");
}

/** The manifest of the copies built (addons.json). */
export function manifestPath(): string {
    return join(addonFolder(), "addons.json");
}
