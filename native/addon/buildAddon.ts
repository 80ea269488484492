import {execFileSync} from "node:child_process";
import {createHash} from "node:crypto";
import {existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, writeFileSync} from "node:fs";
import {basename, dirname, join, relative} from "node:path";
import {fileURLToPath} from "node:url";
import {addonFolder, bindingFolderKey, manifestPath, projectRoot} from "./addonPath.js";
import type {AddonManifest, BuiltAddon} from "./addonPath.js";
import {llamaSource, sourceDigest} from "./llamaSource.js";
import type {LlamaSource} from "./llamaSource.js";
import {mtmdCacheFolder, mtmdObjects} from "./mtmdObjects.js";
import type {MtmdObjects} from "./mtmdObjects.js";
import {buildJobs, compileAll, compilerIdentity, fileStamp, MissingPrerequisite, run, unlessUpToDate, upToDate, writeStamp} from "./toolchain.js";

/**
 * Builds Hearth's native addon (the decode loop, native/addon/decodeLoop.cpp, and every other
 * native/addon/*.cpp) into dist/native/addon/: compiled once, with the llama.cpp headers of the source
 * node-llama-cpp bundles and node-llama-cpp's own addon headers, then linked once against each libllama
 * node-llama-cpp can load here (its prebuilt CPU, Vulkan and CUDA binaries, and any source build made with
 * `npm run build:engine`), as `<build>/hearth-decode-loop.node`, with a manifest (addons.json) that maps each
 * binary's folder to its copy. At run time Hearth loads the copy made for the binary node-llama-cpp loaded (see
 * decode/NativeDecodeLoop.ts).
 *
 * Each copy also holds llama.cpp's multimodal library (tools/mtmd, libmtmd), compiled from the same bundled
 * source (see mtmdObjects.ts), so a model's projector runs on the libllama and ggml backend its model runs on.
 *
 * A libllama is linked by its soname and without a search path, so at run time the dynamic linker takes the
 * libllama node-llama-cpp already loaded; libraries that a GPU build needs but this machine lacks (a CUDA
 * runtime) are allowed to be missing when linking. It runs offline; when something it needs is missing (no C++
 * compiler, no Node.js headers, a platform other than Linux) it says why and Hearth uses its JavaScript decode
 * loop instead, and where only libmtmd cannot be built, the addon is built without it (manifest: noVision).
 * Nothing here fails an install.
 *
 * Usage: node dist/native/addon/buildAddon.js [--quiet]
 */

const root = projectRoot();
const sourceFolder = join(root, "native", "addon");
const nodeLlamaCpp = join(root, "node_modules", "node-llama-cpp");

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

/** Hearth's own native sources: every native/addon/*.cpp, and the headers beside them that they share. */
function hearthSources(): {sources: string[], headers: string[]} {
    const files = readdirSync(sourceFolder).sort();
    return {sources: files.filter((file) => file.endsWith(".cpp")).map((file) => join(sourceFolder, file)),
        headers: files.filter((file) => /\.(h|hpp)$/.test(file)).map((file) => join(sourceFolder, file))};
}

function definedSymbols(file: string): string[] {
    return execFileSync("nm", ["-D", "--defined-only", file], {stdio: ["ignore", "pipe", "ignore"], maxBuffer: 64 * 1024 * 1024}).toString().split("\n")
        .map((line) => line.trim().split(/\s+/).at(-1)!.replace(/@.*$/, "")).filter(Boolean);
}

/**
 * Symbols a copy needs that neither its libllama and libggml nor Node.js (Node-API) define, less the versioned
 * ones of the C and C++ runtimes: such a copy would load, then end the process at its first call to one (a
 * libmtmd source left out, a C file compiled as C++).
 */
function unresolvedSymbols(addon: string, binary: Binary): string[] {
    let needed: string[];
    const defined = new Set<string>();
    try {
        needed = execFileSync("nm", ["-D", "--undefined-only", addon], {stdio: ["ignore", "pipe", "ignore"]}).toString().split("\n")
            .map((line) => line.trim().split(/\s+/)).filter((fields) => fields[0] === "U" && !fields[1]!.includes("@")).map((fields) => fields[1]!)
            .filter((symbol) => !/^(napi_|node_api_)/.test(symbol));
        for (const library of binary.libraries)
            for (const symbol of definedSymbols(join(binary.folder, library)))
                defined.add(symbol);
    } catch {
        // Without binutils' nm the check is left to the loader.
        return [];
    }
    return needed.filter((symbol) => !defined.has(symbol));
}

type Log = (line: string, always?: boolean) => void;

/** libmtmd's objects, or why Hearth's addon is built without them. */
async function buildMtmd(source: LlamaSource, compiler: string, compilerId: string, folder: string, jobs: number, log: Log): Promise<MtmdObjects | {reason: string}> {
    if (source.noMtmd != null)
        return {reason: source.noMtmd};
    const started = performance.now();
    try {
        const built = await mtmdObjects(source, compiler, compilerId, folder, jobs, (count) => log(
            `Compiling llama.cpp's multimodal library (libmtmd, ${count} files, ${jobs} at a time); it is kept in ${mtmdCacheFolder()} for later builds`, true));
        if (built.compiled > 0)
            log(`Compiled libmtmd in ${((performance.now() - started) / 1000).toFixed(0)} s: ${built.folder}`, true);
        return built;
    } catch (error) {
        const {message} = error as Error;
        if (message.includes("\n"))
            log(message, true);
        return {reason: message.split("\n")[0]!};
    }
}

/**
 * Builds the addon for every binary of node-llama-cpp found here, and its manifest; says whether any copy was
 * built. `log` gets what it did; lines with `always` are worth showing in a quiet build (slow steps, and what is
 * not built).
 */
export async function buildAddon(log: Log): Promise<boolean> {
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
        const compiler = process.env.CXX ?? "c++";
        const compilerId = compilerIdentity(compiler);
        const source = llamaSource(nodeLlamaCpp, folder);
        const jobs = buildJobs();

        const mtmd = await buildMtmd(source, compiler, compilerId, folder, jobs, log);
        const vision = !("reason" in mtmd);
        const noVision = "reason" in mtmd ? mtmd.reason : undefined;
        if (noVision != null)
            log(`The native addon is built without llama.cpp's libmtmd (${noVision}); models will not see images.`, true);

        // Compiled once: the objects do not depend on which libllama they are linked to. HEARTH_VISION says whether
        // libmtmd is linked in, for the code that calls it.
        const includes = [...source.headers, ...vision ? [join(source.root, "tools", "mtmd"), join(source.root, "vendor")] : [],
            nodeHeaders(), join(root, "node_modules", "node-addon-api"), join(nodeLlamaCpp, "llama", "addon")];
        const {sources, headers} = hearthSources();
        const shared = createHash("sha256").update(JSON.stringify([compilerId, includes]))
            .update(sourceDigest(source.root, vision))
            .update(readFileSync(join(nodeLlamaCpp, "llama", "addon", "AddonContext.h")))
            .update(readFileSync(join(nodeLlamaCpp, "llama", "addon", "AddonModel.h")));
        for (const header of headers)
            shared.update(readFileSync(header));
        const sharedStamp = shared.digest("hex");
        const hearth = sources.map((file) => {
            const output = join(folder, `${basename(file, ".cpp")}.o`);
            const args = ["-std=c++17", "-O2", "-fPIC", "-pthread", "-fvisibility=hidden", "-DNAPI_VERSION=7", "-DNAPI_CPP_EXCEPTIONS",
                `-DHEARTH_NODE_LLAMA_CPP_VERSION="${version}"`, `-DHEARTH_VISION=${vision ? 1 : 0}`, ...includes.map((include) => `-I${include}`), "-c", file];
            const stamp = createHash("sha256").update(JSON.stringify([compiler, args, sharedStamp])).update(readFileSync(file)).digest("hex");
            return {output, args, stamp};
        });
        const stale = hearth.filter(({output, stamp}) => !upToDate(output, stamp));
        for (const {output} of stale)
            rmSync(output, {force: true});
        await compileAll(compiler, stale, jobs);
        for (const {output, stamp} of stale)
            writeStamp(output, stamp);
        const objects = [...hearth.map(({output}) => output), ...vision ? mtmd.objects : []];
        const objectsStamp = JSON.stringify([hearth.map(({stamp}) => stamp), vision ? mtmd.folder : null]);
        // The addon's one export is Node-API's entry point: libmtmd's symbols stay inside it, so another copy of
        // libmtmd in the process (one node-llama-cpp may load some day) is never bound to this one's, or it to that.
        const exportsFile = join(folder, "exports.ver");
        writeFileSync(exportsFile, "{\n  global: napi_register_module_v1; node_api_module_get_api_version_v1;\n  local: *;\n};\n");

        const built: BuiltAddon[] = [];
        for (const binary of binaries) {
            const output = join(folder, binary.name, "hearth-decode-loop.node");
            mkdirSync(dirname(output), {recursive: true});
            // By soname, with no run-time search path: at run time only the libllama already loaded will do.
            const linkArgs = ["-shared", "-pthread", ...objects, "-o", output, `-L${binary.folder}`, ...binary.libraries.map((file) => `-l:${file}`),
                "-Wl,--allow-shlib-undefined", `-Wl,-rpath-link,${binary.folder}`, `-Wl,--version-script=${exportsFile}`];
            const linkStamp = createHash("sha256").update(JSON.stringify([compiler, linkArgs, objectsStamp]))
                .update(binary.libraries.map((file) => fileStamp(join(binary.folder, file))).join("\n")).digest("hex");
            try {
                if (unlessUpToDate(output, linkStamp, () => run(compiler, linkArgs)))
                    log(`Built the native decode loop${vision ? " with libmtmd" : ""} for ${binary.name}: ${output}`);
                const unresolved = unresolvedSymbols(output, binary);
                if (unresolved.length > 0) {
                    rmSync(output, {force: true});
                    throw new Error(`it needs ${unresolved.slice(0, 5).join(", ")}, which nothing it links to defines${
                        unresolved.some((symbol) => /^(mtmd|clip)_/.test(symbol)) ? " (code that calls libmtmd must be guarded by #if HEARTH_VISION)" : ""}`);
                }
                built.push({bindingFolder: bindingFolderKey(binary.folder), addon: relative(folder, output), libllama: binary.libraries[0]!, vision});
            } catch (error) {
                log(`The native decode loop was not built for ${binary.name} (${(error as Error).message}); with that binary Hearth will decode with its JavaScript loop.`, true);
            }
        }
        const manifest: AddonManifest = {nodeLlamaCpp: version, addons: built, ...noVision != null ? {noVision} : {}};
        writeFileSync(manifestFile, `${JSON.stringify(manifest, null, 2)}\n`);
        // The single copy earlier versions built, linked to the CPU binary only.
        rmSync(join(folder, "hearth-decode-loop.node"), {force: true});
        rmSync(join(folder, "hearth-decode-loop.node.stamp"), {force: true});
        return built.length > 0;
    } catch (error) {
        rmSync(manifestFile, {force: true});
        log(`The native decode loop was not built (${(error as Error).message}); Hearth will decode with its JavaScript loop.`, true);
        return false;
    }
}

if (process.argv[1] != null && fileURLToPath(import.meta.url) === process.argv[1]) {
    const quiet = process.argv.includes("--quiet");
    await buildAddon((line, always) => {
        if (!quiet || always === true)
            console.log(line);
    });
}
