import {existsSync} from "node:fs";
import {createRequire} from "node:module";

export type DesktopAvailability = {available: true, electronPath: string} | {available: false, reason: string};

/**
 * Whether the Electron app can open here, and if not, why in words a person can act on. The electron
 * package's `index.js` gives its binary's path, and throws when its postinstall never downloaded it.
 */
export function desktopAvailability({platform = process.platform, env = process.env, resolveElectron = defaultResolveElectron}: {
    platform?: NodeJS.Platform,
    env?: NodeJS.ProcessEnv,
    resolveElectron?: () => string
} = {}): DesktopAvailability {
    if (platform === "linux" && !env.DISPLAY && !env.WAYLAND_DISPLAY)
        return {available: false, reason: "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"};
    return findElectronBinary(resolveElectron);
}

/** Electron's binary, or why it is not there. */
export function findElectronBinary(resolveElectron: () => string = defaultResolveElectron): DesktopAvailability {
    let electronPath: string;
    try {
        electronPath = resolveElectron();
    } catch (error) {
        return {available: false, reason: `Electron's binary is not installed (${firstLine((error as Error).message)}); \`npm run fetch:electron\` downloads it`};
    }
    if (!existsSync(electronPath))
        return {available: false, reason: `Electron's binary is missing at ${electronPath}; \`npm run fetch:electron\` downloads it`};
    return {available: true, electronPath};
}

function defaultResolveElectron(): string {
    return createRequire(import.meta.url)("electron") as string;
}

function firstLine(text: string): string {
    return text.split("\n")[0]!.trim();
}
