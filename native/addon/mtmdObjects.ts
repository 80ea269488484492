import {createHash} from "node:crypto";
import {existsSync, mkdirSync, readdirSync, rmSync, statSync, utimesSync} from "node:fs";
import {homedir} from "node:os";
import {join} from "node:path";
import type {LlamaSource, MtmdSource} from "./llamaSource.js";
import {mtmdSources, sourceDigest} from "./llamaSource.js";
import {compileAll} from "./toolchain.js";

/** Builds of other llama.cpp versions or compilers kept in the cache beside the one in use. */
const keptBuilds = 3;

/** `$XDG_CACHE_HOME/hearth/mtmd`, else `~/.cache/hearth/mtmd`: shared by every checkout of Hearth on the machine. */
export function mtmdCacheFolder(): string {
    const base = process.env.XDG_CACHE_HOME != null && process.env.XDG_CACHE_HOME !== "" ? process.env.XDG_CACHE_HOME : join(homedir(), ".cache");
    return join(base, "hearth", "mtmd");
}

/** The compiler flags of libmtmd's objects, as llama.cpp's CMake builds the shared library; C++ only where `cxx`. */
export function mtmdFlags(source: LlamaSource, cxx: boolean): string[] {
    const {root} = source;
    return [...cxx ? ["-std=c++17"] : [], "-O2", "-DNDEBUG", "-fPIC", "-pthread", "-DLLAMA_SHARED", "-DLLAMA_BUILD",
        // The same objects serve every checkout: source paths in them (assertion messages) do not name this one.
        `-ffile-prefix-map=${root}=llama.cpp`,
        ...[...source.headers, join(root, "tools", "mtmd"), join(root, "vendor"), join(root, "vendor", "hash")].map((folder) => `-I${folder}`)];
}

/** Removes the folders of `cache` other than `current`, but for the `keep` used last. */
function prune(cache: string, current: string, keep: number): void {
    try {
        const others = readdirSync(cache).map((name) => join(cache, name)).filter((folder) => folder !== current)
            .map((folder) => ({folder, used: statSync(folder).mtimeMs})).sort((a, b) => b.used - a.used);
        for (const {folder} of others.slice(keep))
            rmSync(folder, {recursive: true, force: true});
    } catch {
        // Another build pruning at the same time, or a cache this user cannot write: nothing to do.
    }
}

function writableFolder(folder: string): boolean {
    try {
        mkdirSync(folder, {recursive: true});
        return true;
    } catch {
        return false;
    }
}

/** What libmtmd's objects are made from: the source's files, the compiler, the flags (less this checkout's paths). */
export function mtmdDigest(source: LlamaSource, sources: MtmdSource[], compilerId: string): string {
    const portable = (flags: string[]) => flags.map((flag) => flag.replaceAll(source.root, "<llama.cpp>"));
    return createHash("sha256")
        .update(JSON.stringify([compilerId, process.arch, portable(mtmdFlags(source, true)), portable(mtmdFlags(source, false)), sources]))
        .update(sourceDigest(source.root, true)).digest("hex").slice(0, 24);
}

export type MtmdObjects = {objects: string[], folder: string, compiled: number};

/**
 * libmtmd's objects for this source, compiler and flags: compiled once (`jobs` at a time) into a folder of the
 * cache named by a digest of all three, and taken from there by every later build, in any checkout. Each object
 * is renamed into place when whole, so an interrupted build goes on where it stopped. Where the cache cannot be
 * written the objects go in `buildFolder`. `onCompile` hears how many are compiled before that starts.
 */
export async function mtmdObjects(source: LlamaSource, compiler: string, compilerId: string, buildFolder: string, jobs: number,
    onCompile: (count: number) => void): Promise<MtmdObjects> {
    const sources = mtmdSources(source.root);
    const digest = mtmdDigest(source, sources, compilerId);
    const cache = mtmdCacheFolder();
    let folder = join(cache, digest);
    if (writableFolder(folder)) {
        utimesSync(folder, new Date(), new Date());
        prune(cache, folder, keptBuilds);
    } else {
        folder = join(buildFolder, "mtmd", digest);
        mkdirSync(folder, {recursive: true});
        prune(join(buildFolder, "mtmd"), folder, 0);
    }
    const objects = sources.map(({file}) => join(folder, `${file.replaceAll("/", "_").replace(/\.(c|cpp)$/, "")}.o`));
    const compiles = sources.map(({file, language}, index) => ({
        output: objects[index]!,
        // As llama.cpp's CMake does: the vendored code without its warnings, a C file as C++ where it says so (sha1.c).
        args: [...mtmdFlags(source, language === "c++"), ...file.startsWith("vendor/") ? ["-w"] : [], "-x", language, "-c", join(source.root, file)]
    })).filter(({output}) => !existsSync(output));
    if (compiles.length > 0)
        onCompile(compiles.length);
    await compileAll(compiler, compiles, jobs);
    return {objects, folder, compiled: compiles.length};
}
