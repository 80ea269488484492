import {spawn} from "node:child_process";
import {existsSync} from "node:fs";
import {mkdir, mkdtemp, rename, rm, writeFile} from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/**
 * The coding-agent CLIs people point at Hearth, pinned, installed from npm into a cache folder the first time a test
 * needs them (they are not Hearth's dependencies: each brings its own binary in its npm packages), and run
 * non-interactively as a user would, with nothing of this machine's own configuration.
 */
export type AgentCli = {packageName: string, version: string, bin: string};

export const claudeCode: AgentCli = {packageName: "@anthropic-ai/claude-code", version: "2.1.332", bin: "claude"};
export const codex: AgentCli = {packageName: "@openai/codex", version: "0.171.0", bin: "codex"};
export const qwenCode: AgentCli = {packageName: "@qwen-code/qwen-code", version: "0.24.4", bin: "qwen"};

/** `HEARTH_AGENT_CLIS`, else `~/.cache/hearth/agent-clis`. */
function cacheDir(): string {
    return process.env.HEARTH_AGENT_CLIS ?? path.join(os.homedir(), ".cache", "hearth", "agent-clis");
}

export type ProcessResult = {code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string};

/** Runs a command to its end (or its timeout, then SIGKILL), stdin closed, collecting its output. */
export function runProcess(command: string, args: readonly string[], {cwd, env, timeoutMs}: {cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number}): Promise<ProcessResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(command, args, {cwd, env, stdio: ["ignore", "pipe", "pipe"]});
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (data: Buffer) => stdout += data);
        child.stderr.on("data", (data: Buffer) => stderr += data);
        const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
        child.once("error", (error) => {
            clearTimeout(timer);
            reject(error);
        });
        child.once("close", (code, signal) => {
            clearTimeout(timer);
            resolve({code, signal, stdout, stderr});
        });
    });
}

/** The environment without what an outer `npm test` sets for its own scripts (`npm_config_*` would steer the install). */
function cleanEnv(): NodeJS.ProcessEnv {
    return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith("npm_")));
}

const installs = new Map<string, Promise<string>>();

/** The path of the CLI's binary, installed first when the cache lacks this version. */
export function installAgentCli(cli: AgentCli): Promise<string> {
    const key = `${cli.packageName}@${cli.version}`;
    let install = installs.get(key);
    if (install == null) {
        install = install0(cli);
        installs.set(key, install);
    }
    return install;
}

async function install0(cli: AgentCli): Promise<string> {
    const folder = path.join(cacheDir(), `${cli.packageName.replace("/", "+")}@${cli.version}`);
    const binary = path.join(folder, "node_modules", ".bin", cli.bin);
    if (existsSync(binary))
        return binary;
    // Installed beside the cache and renamed when whole, so a run cut short leaves no half-installed CLI behind.
    await mkdir(cacheDir(), {recursive: true});
    const partial = await mkdtemp(`${folder}.partial-`);
    try {
        await writeFile(path.join(partial, "package.json"), JSON.stringify({name: "hearth-agent-cli", private: true}));
        const result = await runProcess("npm", ["install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error", `${cli.packageName}@${cli.version}`],
            {cwd: partial, env: cleanEnv(), timeoutMs: 10 * 60 * 1000});
        if (result.code !== 0)
            throw new Error(`npm install ${cli.packageName}@${cli.version} failed (${result.code ?? result.signal}): ${result.stderr.slice(-2000)}`);
        await rm(folder, {recursive: true, force: true});
        await rename(partial, folder);
    } finally {
        await rm(partial, {recursive: true, force: true});
    }
    return binary;
}

/** A home folder and a working folder for agent runs; runs given the same one continue each other's sessions. */
export type AgentWorkspace = {home: string, work: string, dispose(): Promise<void>};

export async function agentWorkspace(name: string): Promise<AgentWorkspace> {
    const root = await mkdtemp(path.join(os.tmpdir(), `hearth-${name}-`));
    const home = path.join(root, "home");
    const work = path.join(root, "work");
    await mkdir(home);
    await mkdir(work);
    return {home, work, dispose: () => rm(root, {recursive: true, force: true})};
}

/**
 * Runs an agent CLI in an empty working folder with an empty home folder (so no configuration of this machine or of an
 * earlier test is read), with only `PATH` and the variables given; in a new workspace unless one is given.
 */
export async function runAgentCli(cli: AgentCli, args: readonly string[], {env = {}, files = {}, workspace, timeoutMs = 5 * 60 * 1000}: {
    env?: Record<string, string>,
    /** Files to write first, relative to the home folder (e.g. Codex's `config.toml`). */
    files?: Record<string, string>,
    workspace?: AgentWorkspace,
    timeoutMs?: number
} = {}): Promise<ProcessResult> {
    const binary = await installAgentCli(cli);
    const place = workspace ?? await agentWorkspace(cli.bin);
    try {
        for (const [name, text] of Object.entries(files)) {
            await mkdir(path.dirname(path.join(place.home, name)), {recursive: true});
            await writeFile(path.join(place.home, name), text);
        }
        return await runProcess(binary, args, {
            cwd: place.work,
            env: {PATH: process.env.PATH, HOME: place.home, TMPDIR: place.home, LANG: "C.UTF-8", ...env},
            timeoutMs
        });
    } finally {
        if (workspace == null)
            await place.dispose();
    }
}

/** The lines of a JSON Lines output that parse as JSON objects (CLIs print a warning line or two between them). */
export function jsonLines(text: string): Record<string, unknown>[] {
    return text.split("\n").flatMap((line) => {
        if (!line.trimStart().startsWith("{"))
            return [];
        try {
            return [JSON.parse(line) as Record<string, unknown>];
        } catch {
            return [];
        }
    });
}
