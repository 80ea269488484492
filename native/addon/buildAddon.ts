import {execFileSync} from "node:child_process";
import {createHash} from "node:crypto";
import {existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {dirname, join} from "node:path";
import {fileURLToPath} from "node:url";
import {addonPath} from "./addonPath.js";

/**
 * Builds Hearth's native decode loop (native/addon/decodeLoop.cpp) into dist/, against the libllama
 * that node-llama-cpp ships and the llama.cpp headers of the source it bundles. It runs offline in a few
 * seconds; when something it needs is missing (no C++ compiler, no Node.js headers, a platform other
 * than Linux) it says why and Hearth uses its JavaScript decode loop instead. Nothing here fails an install.
 *
 * Usage: node dist/native/addon/buildAddon.js [--quiet]
 */

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..", "..");
const source = join(root, "native", "addon", "decodeLoop.cpp");
const nodeLlamaCpp = join(root, "node_modules", "node-llama-cpp");

class MissingPrerequisite extends Error {}

/** The folder of a libllama that node-llama-cpp can load here: a local source build first, else the prebuilt one. */
function findLibllama(): {folder: string, file: string} {
    const candidates: string[] = [];
    const localBuilds = join(nodeLlamaCpp, "llama", "localBuilds");
    if (existsSync(localBuilds))
        for (const build of readdirSync(localBuilds))
            candidates.push(join(localBuilds, build, "Release"));
    const prebuilt = join(root, "node_modules", "@node-llama-cpp", `${process.platform}-${process.arch}`, "bins");
    if (existsSync(prebuilt))
        for (const build of readdirSync(prebuilt))
            candidates.push(join(prebuilt, build));
    for (const folder of candidates) {
        const file = existsSync(folder) ? readdirSync(folder).find((name) => /^libllama(\.v[\d.]+)?\.so$/.test(name)) : undefined;
        if (file != null)
            return {folder, file};
    }
    throw new MissingPrerequisite(`no libllama for ${process.platform}-${process.arch} in node-llama-cpp`);
}

/** llama.h and ggml's headers: from a downloaded llama.cpp source, else taken out of node-llama-cpp's git bundle. */
function llamaHeaders(buildFolder: string): string[] {
    const sourceFolder = join(nodeLlamaCpp, "llama", "llama.cpp");
    if (existsSync(join(sourceFolder, "include", "llama.h")))
        return [join(sourceFolder, "include"), join(sourceFolder, "ggml", "include")];
    const bundle = join(nodeLlamaCpp, "llama", "gitRelease.bundle");
    if (!existsSync(bundle))
        throw new MissingPrerequisite("node-llama-cpp's llama.cpp source bundle is missing");
    const headers = join(buildFolder, "llama-headers");
    if (!existsSync(join(headers, "include", "llama.h"))) {
        const clone = mkdtempSync(join(tmpdir(), "hearth-llama-headers-"));
        try {
            execFileSync("git", ["clone", "--quiet", "--no-checkout", bundle, clone], {stdio: "pipe"});
            const archive = execFileSync("git", ["-C", clone, "archive", "--format=tar", "HEAD", "include", "ggml/include"], {maxBuffer: 64 * 1024 * 1024});
            mkdirSync(headers, {recursive: true});
            execFileSync("tar", ["-x", "-C", headers], {input: archive});
        } catch (error) {
            throw new MissingPrerequisite(`could not read llama.cpp's headers from node-llama-cpp's bundle (${(error as Error).message.split("\n")[0]})`);
        } finally {
            rmSync(clone, {recursive: true, force: true});
        }
    }
    return [join(headers, "include"), join(headers, "ggml", "include")];
}

function nodeHeaders(): string {
    const folder = join(dirname(process.execPath), "..", "include", "node");
    if (!existsSync(join(folder, "node_api.h")))
        throw new MissingPrerequisite(`Node.js's headers are not at ${folder}`);
    return folder;
}

export function buildAddon(log: (line: string) => void): boolean {
    const output = addonPath();
    try {
        if (process.platform !== "linux")
            throw new MissingPrerequisite(`building it on ${process.platform} is not supported yet`);
        const buildFolder = dirname(output);
        mkdirSync(buildFolder, {recursive: true});
        const libllama = findLibllama();
        const includes = [...llamaHeaders(buildFolder), nodeHeaders(), join(root, "node_modules", "node-addon-api"),
            join(nodeLlamaCpp, "llama", "addon")];
        const compiler = process.env.CXX ?? "c++";
        const args = ["-std=c++17", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-DNAPI_VERSION=7", "-DNAPI_CPP_EXCEPTIONS",
            ...includes.map((folder) => `-I${folder}`), source, "-o", output,
            `-L${libllama.folder}`, `-l:${libllama.file}`, "-Wl,--as-needed"];

        const stamp = createHash("sha256").update(JSON.stringify([compiler, args])).update(readFileSync(source))
            .update(readFileSync(join(includes[0]!, "llama.h"))).update(readFileSync(join(nodeLlamaCpp, "llama", "addon", "AddonContext.h")))
            .digest("hex");
        const stampFile = `${output}.stamp`;
        if (existsSync(output) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp)
            return true;
        rmSync(output, {force: true});
        try {
            execFileSync(compiler, args, {stdio: ["ignore", "pipe", "pipe"]});
        } catch (error) {
            const {stderr, message} = error as {stderr?: Buffer, message: string};
            if ((error as NodeJS.ErrnoException).code === "ENOENT")
                throw new MissingPrerequisite(`no C++ compiler (${compiler})`);
            throw new Error(`${compiler} failed: ${stderr?.toString().trim().split("\n").slice(0, 20).join("\n") ?? message}`);
        }
        writeFileSync(stampFile, stamp);
        log(`Built the native decode loop: ${output}`);
        return true;
    } catch (error) {
        rmSync(output, {force: true});
        const reason = error instanceof MissingPrerequisite ? error.message : (error as Error).message;
        log(`The native decode loop was not built (${reason}); Hearth will decode with its JavaScript loop.`);
        return false;
    }
}

if (process.argv[1] != null && fileURLToPath(import.meta.url) === process.argv[1]) {
    const quiet = process.argv.includes("--quiet");
    buildAddon((line) => {
        if (!quiet || line.includes("not built"))
            console.log(line);
    });
}
