import {execFileSync} from "node:child_process";
import {createHash} from "node:crypto";
import {existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {dirname, join, relative} from "node:path";
import {fileURLToPath} from "node:url";
import {addonFolder, bindingFolderKey, manifestPath, projectRoot} from "./addonPath.js";
import type {AddonManifest, BuiltAddon} from "./addonPath.js";

/**
 * Builds Hearth's native decode loop (native/addon/decodeLoop.cpp) into dist/native/addon/: compiled once,
 * with the llama.cpp headers of the source node-llama-cpp bundles and node-llama-cpp's own addon headers,
 * then linked once against each libllama node-llama-cpp can load here (its prebuilt CPU, Vulkan and CUDA
 * binaries, and any source build made with `npm run build:engine`), as `<build>/hearth-decode-loop.node`,
 * with a manifest (addons.json) that maps each binary's folder to its copy. At run time Hearth loads the copy
 * made for the binary node-llama-cpp loaded (see NativeDecodeLoop.ts).
 *
 * A libllama is linked by its soname and without a search path, so at run time the dynamic linker takes the
 * libllama node-llama-cpp already loaded; libraries that a GPU build needs but this machine lacks (a CUDA
 * runtime) are allowed to be missing when linking. It runs offline in seconds; when something it needs is
 * missing (no C++ compiler, no Node.js headers, a platform other than Linux) it says why and Hearth uses its
 * JavaScript decode loop instead. Nothing here fails an install.
 *
 * Usage: node dist/native/addon/buildAddon.js [--quiet]
 */

const root = projectRoot();
const source = join(root, "native", "addon", "decodeLoop.cpp");
const nodeLlamaCpp = join(root, "node_modules", "node-llama-cpp");

class MissingPrerequisite extends Error {}

/** One binary of node-llama-cpp: its folder holds llama-addon.node and the libllama it loads. */
type Binary = {name: string, folder: string, resolvedFolder: string, libraries: string[]};

const libllamaPattern = /^libllama(\.[a-z0-9_]+)*\.so$/;
/** ggml's backend registry (ggml_backend_dev_count and _get), whose soname carries the build's GPU like libllama's. */
const libggmlPattern = /^libggml(\.[a-z0-9_]+)*\.so$/;

function readBuildMetadata(folder: string): {platform?: string, arch?: string} | undefined {
    try {
        const metadata = JSON.parse(readFileSync(join(folder, "_nlcBuildMetadata.json"), "utf8")) as {buildOptions?: {platform?: string, arch?: string}};
        return metadata.buildOptions;
    } catch {
        return undefined;
    }
}

function binaryIn(name: string, folder: string): Binary | undefined {
    if (!existsSync(join(folder, "llama-addon.node")))
        return undefined;
    const files = readdirSync(folder);
    const libllama = files.find((file) => libllamaPattern.test(file));
    if (libllama == null)
        return undefined;
    const metadata = readBuildMetadata(folder);
    // Binaries for another architecture (node-llama-cpp installs the arm ones too) cannot be linked here.
    if (metadata != null && (metadata.platform !== "linux" || metadata.arch !== process.arch))
        return undefined;
    const libraries = [libllama, ...files.filter((file) => libggmlPattern.test(file)), ...files.filter((file) => file === "libggml-base.so")];
    return {name, folder, resolvedFolder: realpathSync(folder), libraries};
}

/**
 * Every binary node-llama-cpp can load here: its prebuilt packages (@node-llama-cpp/<platform>-<arch>[-gpu]),
 * prebuilt binaries copied into node-llama-cpp/bins, and source builds in node-llama-cpp/llama/localBuilds.
 */
export function findBinaries(): Binary[] {
    const found: Binary[] = [];
    const scope = join(root, "node_modules", "@node-llama-cpp");
    if (existsSync(scope))
        for (const pkg of readdirSync(scope)) {
            const bins = join(scope, pkg, "bins");
            if (existsSync(bins))
                for (const build of readdirSync(bins)) {
                    const binary = binaryIn(build, join(bins, build));
                    if (binary != null)
                        found.push(binary);
                }
        }
    const copied = join(nodeLlamaCpp, "bins");
    if (existsSync(copied))
        for (const build of readdirSync(copied)) {
            const binary = binaryIn(`bins-${build}`, join(copied, build));
            if (binary != null)
                found.push(binary);
        }
    const localBuilds = join(nodeLlamaCpp, "llama", "localBuilds");
    if (existsSync(localBuilds))
        for (const build of readdirSync(localBuilds)) {
            const binary = binaryIn(`local-${build}`, join(localBuilds, build, "Release"));
            if (binary != null)
                found.push(binary);
        }
    // The same folder reached twice (through a link) is linked once.
    return [...new Map(found.map((binary) => [binary.resolvedFolder, binary])).values()];
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

/** The installed node-llama-cpp's version, whose addon headers the loop reads node-llama-cpp's context with. */
export function nodeLlamaCppVersion(): string {
    return (JSON.parse(readFileSync(join(nodeLlamaCpp, "package.json"), "utf8")) as {version: string}).version;
}

function run(compiler: string, args: string[]): void {
    try {
        execFileSync(compiler, args, {stdio: ["ignore", "pipe", "pipe"]});
    } catch (error) {
        const {stderr, message} = error as {stderr?: Buffer, message: string};
        if ((error as NodeJS.ErrnoException).code === "ENOENT")
            throw new MissingPrerequisite(`no C++ compiler (${compiler})`);
        throw new Error(`${compiler} failed: ${stderr?.toString().trim().split("\n").slice(0, 20).join("\n") ?? message}`);
    }
}

/** Runs `make` unless `output` exists and was made from the same inputs (`stamp`). */
function unlessUpToDate(output: string, stamp: string, make: () => void): boolean {
    const stampFile = `${output}.stamp`;
    if (existsSync(output) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp)
        return false;
    rmSync(output, {force: true});
    make();
    writeFileSync(stampFile, stamp);
    return true;
}

function fileStamp(path: string): string {
    const stat = statSync(path);
    return `${path}:${stat.size}:${stat.mtimeMs}`;
}

export function buildAddon(log: (line: string) => void): boolean {
    const folder = addonFolder();
    const manifestFile = manifestPath();
    try {
        if (process.platform !== "linux")
            throw new MissingPrerequisite(`building it on ${process.platform} is not supported yet (see "Decode loop" in the README)`);
        mkdirSync(folder, {recursive: true});
        const binaries = findBinaries();
        if (binaries.length === 0)
            throw new MissingPrerequisite(`no libllama for ${process.platform}-${process.arch} in node-llama-cpp`);
        const version = nodeLlamaCppVersion();
        const includes = [...llamaHeaders(folder), nodeHeaders(), join(root, "node_modules", "node-addon-api"), join(nodeLlamaCpp, "llama", "addon")];
        const compiler = process.env.CXX ?? "c++";

        // Compiled once: the object does not depend on which libllama it is linked to.
        const object = join(folder, "decodeLoop.o");
        const compileArgs = ["-std=c++17", "-O2", "-fPIC", "-c", "-fvisibility=hidden", "-DNAPI_VERSION=7", "-DNAPI_CPP_EXCEPTIONS",
            `-DHEARTH_NODE_LLAMA_CPP_VERSION="${version}"`, ...includes.map((include) => `-I${include}`), source, "-o", object];
        const objectStamp = createHash("sha256").update(JSON.stringify([compiler, compileArgs])).update(readFileSync(source))
            .update(readFileSync(join(includes[0]!, "llama.h")))
            .update(readFileSync(join(nodeLlamaCpp, "llama", "addon", "AddonContext.h")))
            .update(readFileSync(join(nodeLlamaCpp, "llama", "addon", "AddonModel.h")))
            .digest("hex");
        unlessUpToDate(object, objectStamp, () => run(compiler, compileArgs));

        const built: BuiltAddon[] = [];
        for (const binary of binaries) {
            const output = join(folder, binary.name, "hearth-decode-loop.node");
            mkdirSync(dirname(output), {recursive: true});
            // By soname, with no run-time search path: at run time only the libllama already loaded will do.
            const linkArgs = ["-shared", object, "-o", output, `-L${binary.folder}`, ...binary.libraries.map((file) => `-l:${file}`),
                "-Wl,--allow-shlib-undefined", `-Wl,-rpath-link,${binary.folder}`];
            const linkStamp = createHash("sha256").update(JSON.stringify([compiler, linkArgs, objectStamp]))
                .update(binary.libraries.map((file) => fileStamp(join(binary.folder, file))).join("\n")).digest("hex");
            try {
                if (unlessUpToDate(output, linkStamp, () => run(compiler, linkArgs)))
                    log(`Built the native decode loop for ${binary.name}: ${output}`);
                built.push({bindingFolder: bindingFolderKey(binary.folder), addon: relative(folder, output), libllama: binary.libraries[0]!});
            } catch (error) {
                log(`The native decode loop was not built for ${binary.name} (${(error as Error).message}); with that binary Hearth will decode with its JavaScript loop.`);
            }
        }
        const manifest: AddonManifest = {nodeLlamaCpp: version, addons: built};
        writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
        // The single copy earlier versions built, linked to the CPU binary only.
        rmSync(join(folder, "hearth-decode-loop.node"), {force: true});
        rmSync(join(folder, "hearth-decode-loop.node.stamp"), {force: true});
        return built.length > 0;
    } catch (error) {
        rmSync(manifestFile, {force: true});
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
