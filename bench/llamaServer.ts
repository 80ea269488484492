import {spawn, spawnSync} from "node:child_process";
import type {ChildProcess} from "node:child_process";
import {createHash} from "node:crypto";
import {createReadStream, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync} from "node:fs";
import {mkdir, rm} from "node:fs/promises";
import {once} from "node:events";
import os from "node:os";
import path from "node:path";
import {pipeline} from "node:stream/promises";
import {fileURLToPath} from "node:url";
import {freePort} from "../test/helpers/freePort.js";

/**
 * llama.cpp's own `llama-server`, built from the llama.cpp source that node-llama-cpp bundles (so both
 * servers run the same engine code), for side-by-side benchmarks. Built once into a cache folder outside
 * the repository, with the compiler's native CPU flags, as anyone building llama.cpp on their machine gets.
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const llamaDir = path.join(repoRoot, "node_modules", "node-llama-cpp", "llama");

function cacheRoot(): string {
    return path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "hearth", "llama-server");
}

async function sha256(file: string): Promise<string> {
    const hash = createHash("sha256");
    await pipeline(createReadStream(file), hash);
    return hash.digest("hex");
}

/** Runs a command with its output appended to `logFile`; rejects with the log's last lines when it fails. */
async function run(command: string, args: readonly string[], logFile: string): Promise<void> {
    const log = openSync(logFile, "a");
    const child = spawn(command, args, {stdio: ["ignore", log, log]});
    const code = await new Promise<number | null>((resolve, reject) => {
        child.on("error", (error) => reject(new Error(`${command} could not start: ${error.message}`)));
        child.on("exit", resolve);
    });
    if (code !== 0) {
        const tail = readFileSync(logFile, "utf8").trimEnd().split("\n").slice(-15).join("\n");
        throw new Error(`${command} ${args.join(" ")} failed (exit ${code}); the end of ${logFile}:\n${tail}`);
    }
}

/** The backends llama-server is built for here: the CPU, or a GPU backend (with the CPU for what stays off the GPU). */
export type PeerBackend = "cpu" | "vulkan" | "cuda";

/** llama-server cannot be built for a backend on this machine; the message says what is missing and how to get it. */
export class PeerBuildUnavailableError extends Error {
    override readonly name = "PeerBuildUnavailableError";
}

function onPath(command: string): boolean {
    return (process.env.PATH ?? "").split(path.delimiter).some((dir) => dir !== "" && existsSync(path.join(dir, command)));
}

/**
 * What a Vulkan build of llama.cpp needs besides CMake and a compiler: the Vulkan headers and loader, the
 * SPIR-V headers, and glslc for its shaders (the Vulkan SDK has all three).
 */
function missingForVulkan(): string[] {
    const missing: string[] = [];
    const includeDirs = ["/usr/include", "/usr/local/include", ...process.env.VULKAN_SDK != null ? [path.join(process.env.VULKAN_SDK, "include")] : []];
    const hasHeader = (file: string) => includeDirs.some((dir) => existsSync(path.join(dir, file)));
    if (!hasHeader("vulkan/vulkan.h"))
        missing.push("the Vulkan headers (Debian and Ubuntu: apt-get install libvulkan-dev; elsewhere the Vulkan SDK with VULKAN_SDK set)");
    if (!hasHeader("spirv/unified1/spirv.hpp"))
        missing.push("the SPIR-V headers (Debian and Ubuntu: apt-get install spirv-headers)");
    const glslc = process.env.VULKAN_SDK != null && existsSync(path.join(process.env.VULKAN_SDK, "bin", "glslc")) ? path.join(process.env.VULKAN_SDK, "bin", "glslc") : onPath("glslc") ? "glslc" : undefined;
    if (glslc == null)
        missing.push("the glslc shader compiler (Debian and Ubuntu: apt-get install glslc)");
    else if (!compilesCooperativeMatrix(glslc))
        missing.push(`a glslc that knows GL_KHR_cooperative_matrix: this llama.cpp's Vulkan shaders use it even for devices without it, and ${glslcVersion(glslc)} does not (Debian 12's is too old; a recent LunarG Vulkan SDK's glslc, with VULKAN_SDK set, or a newer distribution's has it)`);
    return missing;
}

/** Whether glslc compiles a compute shader that declares a cooperative matrix, as llama.cpp's flash-attention shaders do. */
function compilesCooperativeMatrix(glslc: string): boolean {
    const dir = mkdtempSync(path.join(os.tmpdir(), "hearth-glslc-"));
    try {
        const shader = path.join(dir, "coopmat.comp");
        writeFileSync(shader, [
            "#version 460",
            "#extension GL_KHR_cooperative_matrix : require",
            "#extension GL_KHR_memory_scope_semantics : require",
            "#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require",
            "layout(local_size_x = 32) in;",
            "void main() { coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA> tile; }",
            ""
        ].join("\n"));
        return spawnSync(glslc, ["-fshader-stage=compute", "--target-env=vulkan1.3", shader, "-o", path.join(dir, "coopmat.spv")], {stdio: "ignore"}).status === 0;
    } finally {
        rmSync(dir, {recursive: true, force: true});
    }
}

function glslcVersion(glslc: string): string {
    const first = spawnSync(glslc, ["--version"], {encoding: "utf8"}).stdout?.split("\n")[0]?.trim();
    return first ? `this glslc (${first})` : "this glslc";
}

/**
 * The path of a `llama-server` binary built from node-llama-cpp's bundled llama.cpp for `backend`, building
 * it first when the cache has none for this bundle and backend (git, CMake and a C++ compiler; several
 * minutes on 2 cores for the CPU, much longer for Vulkan, whose shaders are compiled too). Throws
 * {@link PeerBuildUnavailableError} when what the backend's build needs is missing, naming it.
 */
export async function ensureLlamaServer(say: (line: string) => void = console.log, {backend = "cpu"}: {backend?: PeerBackend} = {}): Promise<string> {
    const bundle = path.join(llamaDir, "gitRelease.bundle");
    if (!existsSync(bundle))
        throw new Error(`node-llama-cpp's llama.cpp source (${bundle}) is missing: run npm ci`);
    const {tag} = JSON.parse(readFileSync(path.join(llamaDir, "llama.cpp.info.json"), "utf8")) as {tag: string};
    const dir = path.join(cacheRoot(), `${tag}-${(await sha256(bundle)).slice(0, 12)}${backend === "cpu" ? "" : `-${backend}`}`);
    const binary = path.join(dir, "build", "bin", "llama-server");
    if (existsSync(binary))
        return binary;
    const missing = backend === "vulkan" ? missingForVulkan()
        : backend === "cuda" && !onPath("nvcc") && !existsSync("/usr/local/cuda/bin/nvcc") ? ["the CUDA toolkit's nvcc (NVIDIA's CUDA toolkit, on PATH)"] : [];
    if (!onPath("cmake"))
        missing.push("CMake (Debian and Ubuntu: apt-get install cmake)");
    if (missing.length > 0)
        throw new PeerBuildUnavailableError(`llama-server cannot be built for ${backend} here: it needs ${missing.join(", and ")}`);

    const logFile = path.join(dir, "build.log");
    await rm(dir, {recursive: true, force: true});
    await mkdir(dir, {recursive: true});
    say(`building llama-server (${backend}) from node-llama-cpp's llama.cpp (${tag}) into ${dir}; this takes a while (log: ${logFile})`);
    try {
        await run("git", ["clone", "--quiet", bundle, path.join(dir, "src")], logFile);
        await run("cmake", ["-S", path.join(dir, "src"), "-B", path.join(dir, "build"), "-DCMAKE_BUILD_TYPE=Release",
            "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
            ...backend === "vulkan" ? ["-DGGML_VULKAN=ON"] : backend === "cuda" ? ["-DGGML_CUDA=ON"] : []], logFile);
        await run("cmake", ["--build", path.join(dir, "build"), "--target", "llama-server", "--parallel", String(os.availableParallelism())], logFile);
    } catch (error) {
        // The CPU build is expected to work wherever Hearth builds; a GPU backend's toolchain may be incomplete.
        if (backend === "cpu")
            throw error;
        throw new PeerBuildUnavailableError(`llama-server could not be built for ${backend} here: ${(error as Error).message}`);
    }
    if (!existsSync(binary))
        throw new Error(`the build finished without ${binary}; see ${logFile}`);
    return binary;
}

export type PeerServer = {url: string, child: ChildProcess, stop(): Promise<void>};

export type PeerSettings = {
    model: string, alias: string, threads: number, parallel: number, ctxSizePerSlot: number,
    /** More llama-server flags, as given. */
    extraArgs?: readonly string[]
};

/** Starts llama-server on a free loopback port with Hearth's meaning of the settings, and waits until it is ready. */
export async function startLlamaServer(binary: string, settings: PeerSettings): Promise<PeerServer> {
    const port = await freePort();
    const child = spawn(binary, [
        "--model", settings.model, "--alias", settings.alias, "--host", "127.0.0.1", "--port", String(port),
        "--threads", String(settings.threads), "--threads-batch", String(settings.threads),
        // llama-server splits --ctx-size among its slots; Hearth gives each slot its own.
        "--parallel", String(settings.parallel), "--ctx-size", String(settings.ctxSizePerSlot * settings.parallel),
        "--no-webui", ...settings.extraArgs ?? []
    ], {stdio: ["ignore", "ignore", "pipe"]});
    let stderr = "";
    child.stderr!.on("data", (data: Buffer) => stderr = (stderr + data).slice(-4000));
    const exited = once(child, "exit");
    const url = `http://127.0.0.1:${port}`;
    for (;;) {
        if (child.exitCode != null)
            throw new Error(`llama-server exited with code ${child.exitCode}: ${stderr}`);
        // A check that gets no answer is given up and made again, so a start cannot wait forever on one lost reply.
        const status = await fetch(`${url}/health`, {signal: AbortSignal.timeout(5000)}).then(async (response) => {
            await response.arrayBuffer();
            return response.status;
        }, () => 0);
        if (status === 200)
            break;
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return {url, child, stop: async () => {
        child.kill("SIGTERM");
        await exited;
    }};
}
