import {execFileSync} from "node:child_process";
import {createHash} from "node:crypto";
import {existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync} from "node:fs";
import {tmpdir} from "node:os";
import {join, relative} from "node:path";
import {fileStamp, MissingPrerequisite} from "./toolchain.js";

/**
 * The llama.cpp source node-llama-cpp bundles, as far as Hearth builds against it: llama.h and ggml's headers
 * (always), and llama.cpp's multimodal library (tools/mtmd) with the vendored code it compiles in, where present.
 */
export type LlamaSource = {
    root: string,
    /** -I folders for llama.h and ggml's headers. */
    headers: string[],
    /** Why libmtmd cannot be built from this source; undefined when it can. */
    noMtmd?: string
};

const headerPaths = ["include", "ggml/include"];
/** What libmtmd compiles: its folder (less its sample media), the header-only libraries it vendors, and llama's staging header. */
const mtmdPaths = ["tools/mtmd", "vendor/hash", "vendor/stb", "vendor/miniaudio", "src/llama-ext.h"];
const mtmdExcluded = [":(exclude)tools/mtmd/*.mp3", ":(exclude)tools/mtmd/*.mp4", ":(exclude)tools/mtmd/*.jpeg", ":(exclude)tools/mtmd/tests"];

function mtmdPresence(root: string): string | undefined {
    const missing = mtmdPaths.filter((path) => !existsSync(join(root, path)));
    return missing.length === 0 ? undefined : `llama.cpp's source has no ${missing.join(", ")}`;
}

function extract(bundle: string, folder: string): void {
    const clone = mkdtempSync(join(tmpdir(), "hearth-llama-source-"));
    try {
        execFileSync("git", ["clone", "--quiet", "--no-checkout", bundle, clone], {stdio: "pipe"});
        // Paths an older llama.cpp lacks are left out here, and libmtmd is then reported missing.
        const present = execFileSync("git", ["-C", clone, "ls-tree", "--name-only", "HEAD", ...headerPaths, ...mtmdPaths]).toString().split("\n").filter(Boolean);
        const archive = execFileSync("git", ["-C", clone, "archive", "--format=tar", "HEAD", "--", ...present, ...mtmdExcluded], {maxBuffer: 256 * 1024 * 1024});
        rmSync(folder, {recursive: true, force: true});
        mkdirSync(folder, {recursive: true});
        execFileSync("tar", ["-x", "-C", folder], {input: archive});
    } catch (error) {
        rmSync(folder, {recursive: true, force: true});
        throw new MissingPrerequisite(`could not read llama.cpp's source from node-llama-cpp's bundle (${(error as Error).message.split("\n")[0]})`);
    } finally {
        rmSync(clone, {recursive: true, force: true});
    }
}

/** The source of a llama.cpp downloaded by `npm run build:engine`, else the part Hearth needs taken out of node-llama-cpp's git bundle. */
export function llamaSource(nodeLlamaCpp: string, buildFolder: string): LlamaSource {
    const downloaded = join(nodeLlamaCpp, "llama", "llama.cpp");
    let root = downloaded;
    if (!existsSync(join(downloaded, "include", "llama.h"))) {
        const bundle = join(nodeLlamaCpp, "llama", "gitRelease.bundle");
        if (!existsSync(bundle))
            throw new MissingPrerequisite("node-llama-cpp's llama.cpp source bundle is missing");
        root = join(buildFolder, "llama-source");
        const stamp = JSON.stringify([fileStamp(bundle), headerPaths, mtmdPaths, mtmdExcluded]);
        const stampFile = join(buildFolder, "llama-source.stamp");
        if (!existsSync(join(root, "include", "llama.h")) || !existsSync(stampFile) || readFileSync(stampFile, "utf8") !== stamp) {
            extract(bundle, root);
            writeFileSync(stampFile, stamp);
        }
        // The headers-only copy earlier versions extracted.
        rmSync(join(buildFolder, "llama-headers"), {recursive: true, force: true});
    }
    return {root, headers: headerPaths.map((path) => join(root, path)), noMtmd: mtmdPresence(root)};
}

/** The files a CMake `set(NAME ...)` or `add_library(NAME ...)` call names, with `${VAR}` taken from the file's own `set` calls. */
function cmakeSources(cmake: string, call: RegExp): string[] {
    const variables = new Map<string, string[]>();
    for (const match of cmake.matchAll(/\bset\s*\(\s*([A-Za-z_]+)\s+([^)]*)\)/g))
        variables.set(match[1]!, match[2]!.split(/\s+/).filter(Boolean));
    const body = call.exec(cmake)?.[1];
    if (body == null)
        return [];
    return body.replace(/#.*$/gm, "").split(/\s+/).filter(Boolean)
        .flatMap((word) => /^\$\{(\w+)\}$/.test(word) ? variables.get(word.slice(2, -1)) ?? [] : [word])
        .filter((word) => /\.(c|cpp)$/.test(word));
}

/** One translation unit of libmtmd, relative to the source's root, and the language CMake compiles it as. */
export type MtmdSource = {file: string, language: "c" | "c++"};

/** Files a CMake file compiles as C++ whatever their extension (`set_source_files_properties(... LANGUAGE CXX)`). */
function cxxOverrides(cmake: string): Set<string> {
    return new Set([...cmake.matchAll(/\bset_source_files_properties\s*\(([^)]*?)\s+PROPERTIES\s+LANGUAGE\s+CXX\s*\)/g)]
        .flatMap((match) => match[1]!.split(/\s+/).filter(Boolean)));
}

/**
 * libmtmd's translation units, as llama.cpp's CMake lists them (the mtmd library and the vendored hashes it links
 * statically); MTMD_VIDEO (frames through an ffmpeg process) stays off, as in a build without LLAMA_SUBPROCESS.
 */
export function mtmdSources(root: string): MtmdSource[] {
    const listed = (folder: string, call: RegExp): MtmdSource[] => {
        const cmake = readFileSync(join(root, folder, "CMakeLists.txt"), "utf8");
        const cxx = cxxOverrides(cmake);
        return cmakeSources(cmake, call).map((file) => ({file: `${folder}/${file}`, language: file.endsWith(".c") && !cxx.has(file) ? "c" : "c++"}));
    };
    const mtmd = listed("tools/mtmd", /\badd_library\s*\(\s*mtmd\s+([^)]*)\)/);
    const hash = listed("vendor/hash", /\badd_library\s*\(\s*\$\{TARGET\}\s+STATIC\s+([^)]*)\)/);
    if (mtmd.length === 0 || hash.length === 0)
        throw new MissingPrerequisite("llama.cpp's CMake files for libmtmd list no sources Hearth can read");
    const missing = [...mtmd, ...hash].filter(({file}) => !existsSync(join(root, file)));
    if (missing.length > 0)
        throw new MissingPrerequisite(`llama.cpp's source lacks ${missing.map(({file}) => file).join(", ")}, which its CMake files list`);
    return [...mtmd, ...hash];
}

function filesUnder(folder: string): string[] {
    if (!existsSync(folder))
        return [];
    if (!statSync(folder).isDirectory())
        return [folder];
    return readdirSync(folder, {withFileTypes: true}).flatMap((entry) => {
        const path = join(folder, entry.name);
        return entry.isDirectory() ? filesUnder(path) : /\.(c|cpp|h|hpp)$/.test(entry.name) ? [path] : [];
    });
}

/** A digest of the source files a build reads (headers, and libmtmd's source where `withMtmd`): what its objects depend on. */
export function sourceDigest(root: string, withMtmd: boolean): string {
    const hash = createHash("sha256");
    for (const file of [...headerPaths, ...withMtmd ? mtmdPaths : []].flatMap((path) => filesUnder(join(root, path))).sort())
        hash.update(`${relative(root, file)}\0`).update(readFileSync(file)).update("\0");
    return hash.digest("hex");
}
