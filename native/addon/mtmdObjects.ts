import {createHash} from "node:crypto";
import {existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync} from "node:fs";
import {homedir} from "node:os";
import {join} from "node:path";
import type {LlamaSource, MtmdSource} from "./llamaSource.js";
import {mtmdSources, sourceDigest} from "./llamaSource.js";
import {compileAll} from "./toolchain.js";
import type {Compile} from "./toolchain.js";

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

/**
 * The graph builders (tools/mtmd/models/*.cpp), to be compiled as one translation unit: each is small and most of
 * its compile is parsing the headers they share, so one unit compiles the 40-odd in the time of 4 (6 s of CPU
 * instead of 66 on the build machine). Only where that cannot change their meaning: no macros, and no two with a
 * file-local (static) name in common; else none (compiled one by one).
 */
function modelGroup(root: string, sources: MtmdSource[]): MtmdSource[] {
    const models = sources.filter(({file}) => file.startsWith("tools/mtmd/models/") && file.endsWith(".cpp"));
    const seen = new Set<string>();
    for (const {file} of models) {
        const text = readFileSync(join(root, file), "utf8");
        if (/^\s*#\s*(define|undef|pragma)\b/m.test(text) || /^\s*(using\s+namespace|namespace\s*\{)/m.test(text))
            return [];
        for (const match of text.matchAll(/^static\s+[^;{(=]*?\b(\w+)\s*[([={]/gm)) {
            if (seen.has(match[1]!))
                return [];
            seen.add(match[1]!);
        }
    }
    return models;
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
    const objectOf = ({file}: MtmdSource) => join(folder, `${file.replaceAll("/", "_").replace(/\.(c|cpp)$/, "")}.o`);
    const compileOf = (unit: MtmdSource): Compile => ({
        output: objectOf(unit),
        // As llama.cpp's CMake does: the vendored code without its warnings, a C file as C++ where it says so (sha1.c).
        args: [...mtmdFlags(source, unit.language === "c++"), ...unit.file.startsWith("vendor/") ? ["-w"] : [], "-x", unit.language, "-c", join(source.root, unit.file)]
    });
    const size = (unit: MtmdSource) => statSync(join(source.root, unit.file)).size;
    const grouped = modelGroup(source.root, sources);
    // Objects of the graph builders compiled one by one (after a unity build failed) are used as they are.
    const unity = grouped.length > 1 && !grouped.every((unit) => existsSync(objectOf(unit)));
    const units: {compile: Compile, size: number}[] = sources.filter((unit) => !unity || !grouped.includes(unit))
        .map((unit) => ({compile: compileOf(unit), size: size(unit)}));
    if (unity) {
        const unitySource = join(folder, "tools_mtmd_models.cpp");
        // Renamed into place: another build may be compiling it.
        writeFileSync(`${unitySource}.${process.pid}`, grouped.map(({file}) => `#include "${file.slice("tools/mtmd/".length)}"\n`).join(""));
        renameSync(`${unitySource}.${process.pid}`, unitySource);
        units.push({
            compile: {output: join(folder, "tools_mtmd_models.o"), args: [...mtmdFlags(source, true), "-x", "c++", "-c", unitySource], fallback: grouped.map(compileOf)},
            size: grouped.reduce((sum, unit) => sum + size(unit), 0)
        });
    }
    const compiles = units.sort((a, b) => b.size - a.size).map(({compile}) => compile).filter(({output}) => !existsSync(output));
    if (compiles.length > 0)
        onCompile(compiles.length);
    await compileAll(compiler, compiles, jobs);
    const objects = units.flatMap(({compile}) => existsSync(compile.output) ? [compile.output] : compile.fallback?.map(({output}) => output) ?? []);
    return {objects, folder, compiled: compiles.length};
}
