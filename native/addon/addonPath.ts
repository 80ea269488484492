import {realpathSync} from "node:fs";
import {dirname, join, sep} from "node:path";
import {fileURLToPath} from "node:url";

/** One copy of the native decode loop, linked against the libllama of one node-llama-cpp binary. */
export type BuiltAddon = {
    /** The binary's folder (see {@link bindingFolderKey}): it holds node-llama-cpp's llama-addon.node and this libllama. */
    bindingFolder: string,
    /** The copy, relative to {@link addonFolder}. */
    addon: string,
    /** The libllama file it is linked against, in `bindingFolder`. */
    libllama: string,
    /** Whether llama.cpp's multimodal library (libmtmd) is linked in: a model's projector can be used with it. */
    vision: boolean
};

/**
 * What `npm run build` built: the node-llama-cpp version whose headers it used, one copy per binary, and where the
 * copies have no libmtmd, why (`noVision`).
 */
export type AddonManifest = {nodeLlamaCpp: string, addons: BuiltAddon[], noVision?: string};

/** Where the build puts the native decode loop: next to this module in dist/. */
export function addonFolder(): string {
    return dirname(fileURLToPath(import.meta.url));
}

/** The project's root, whose node_modules the build looks in. */
export function projectRoot(): string {
    return join(addonFolder(), "..", "..", "..");
}

/**
 * A binary folder as the manifest names it: resolved, then relative to the node_modules folder that holds
 * it (`@node-llama-cpp/linux-x64-vulkan/bins/linux-x64-vulkan`), so that it still matches when the project
 * moves or a desktop package runs node-llama-cpp's binaries from an unpacked copy of node_modules.
 */
export function bindingFolderKey(folder: string): string {
    let path = folder;
    try {
        path = realpathSync(folder);
    } catch {
        // A folder that is gone keeps its name.
    }
    const parts = path.split(sep);
    const modules = parts.lastIndexOf("node_modules");
    return modules < 0 ? path : parts.slice(modules + 1).join("/");
}

/** The manifest of the copies built (addons.json). */
export function manifestPath(): string {
    return join(addonFolder(), "addons.json");
}
