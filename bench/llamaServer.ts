import {spawn} from "node:child_process";
import type {ChildProcess} from "node:child_process";
import {createHash} from "node:crypto";
import {createReadStream, existsSync, openSync, readFileSync} from "node:fs";
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

/**
 * The path of a `llama-server` binary built from node-llama-cpp's bundled llama.cpp, building it first
 * when the cache has none for this bundle (git, CMake and a C++ compiler; several minutes on 2 cores).
 */
export async function ensureLlamaServer(say: (line: string) => void = console.log): Promise<string> {
    const bundle = path.join(llamaDir, "gitRelease.bundle");
    if (!existsSync(bundle))
        throw new Error(`node-llama-cpp's llama.cpp source (${bundle}) is missing: run npm ci`);
    const {tag} = JSON.parse(readFileSync(path.join(llamaDir, "llama.cpp.info.json"), "utf8")) as {tag: string};
    const dir = path.join(cacheRoot(), `${tag}-${(await sha256(bundle)).slice(0, 12)}`);
    const binary = path.join(dir, "build", "bin", "llama-server");
    if (existsSync(binary))
        return binary;

    const logFile = path.join(dir, "build.log");
    await rm(dir, {recursive: true, force: true});
    await mkdir(dir, {recursive: true});
    say(`building llama-server from node-llama-cpp's llama.cpp (${tag}) into ${dir}; this takes a while (log: ${logFile})`);
    await run("git", ["clone", "--quiet", bundle, path.join(dir, "src")], logFile);
    await run("cmake", ["-S", path.join(dir, "src"), "-B", path.join(dir, "build"), "-DCMAKE_BUILD_TYPE=Release",
        "-DGGML_NATIVE=ON", "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON"], logFile);
    await run("cmake", ["--build", path.join(dir, "build"), "--target", "llama-server", "--parallel", String(os.availableParallelism())], logFile);
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
        const status = await fetch(`${url}/health`).then((response) => response.status, () => 0);
        if (status === 200)
            break;
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return {url, child, stop: async () => {
        child.kill("SIGTERM");
        await exited;
    }};
}
