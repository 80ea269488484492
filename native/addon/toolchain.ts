import {execFile, execFileSync} from "node:child_process";
import {existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync} from "node:fs";
import {availableParallelism} from "node:os";

/** Something the build needs is not on this machine: it says what, and the build goes on without that part. */
export class MissingPrerequisite extends Error {}

function compilerFailure(compiler: string, error: unknown): Error {
    const {stderr, message} = error as {stderr?: Buffer | string, message: string};
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
        return new MissingPrerequisite(`no C++ compiler (${compiler})`);
    const output = stderr?.toString().trim();
    return new Error(`${compiler} failed: ${output != null && output !== "" ? output.split("\n").slice(0, 20).join("\n") : message}`);
}

export function run(compiler: string, args: string[]): void {
    try {
        execFileSync(compiler, args, {stdio: ["ignore", "pipe", "pipe"]});
    } catch (error) {
        throw compilerFailure(compiler, error);
    }
}

/** What identifies the compiler in a stamp: an upgraded compiler builds every object again. */
export function compilerIdentity(compiler: string): string {
    try {
        return execFileSync(compiler, ["--version"], {stdio: ["ignore", "pipe", "pipe"]}).toString().trim();
    } catch (error) {
        throw compilerFailure(compiler, error);
    }
}

/** `HEARTH_BUILD_JOBS`, else one compiler per core. */
export function buildJobs(): number {
    const jobs = Number.parseInt(process.env.HEARTH_BUILD_JOBS ?? "", 10);
    return Number.isInteger(jobs) && jobs > 0 ? jobs : availableParallelism();
}

/**
 * One compiler run that writes `output`: written under another name and renamed, so an object that exists is whole.
 * Where it fails, the compiles of `fallback` run instead (and only their failure fails the build).
 */
export type Compile = {output: string, args: string[], fallback?: Compile[]};

function compileOne(compiler: string, {output, args}: Compile): Promise<void> {
    const partial = `${output}.${process.pid}.partial`;
    return new Promise((resolve, reject) => {
        execFile(compiler, [...args, "-o", partial], {maxBuffer: 16 * 1024 * 1024}, (error, _stdout, stderr) => {
            if (error != null) {
                rmSync(partial, {force: true});
                const failure = compilerFailure(compiler, Object.assign(error, {stderr}));
                reject(failure instanceof MissingPrerequisite ? failure : new Error(`${args.at(-1)} did not compile: ${failure.message}`));
                return;
            }
            renameSync(partial, output);
            resolve();
        });
    });
}

/**
 * Runs the compiles `jobs` at a time, in their order (longest first keeps every core busy to the end). After a
 * failure it starts no more, lets the running ones end (so no compiler outlives the build), and throws the first
 * failure.
 */
export async function compileAll(compiler: string, compiles: Compile[], jobs: number): Promise<void> {
    const queue = [...compiles];
    let failure: Error | undefined;
    const worker = async () => {
        for (let compile = queue.shift(); compile != null && failure == null; compile = queue.shift()) {
            try {
                await compileOne(compiler, compile);
            } catch (error) {
                if (compile.fallback != null)
                    queue.unshift(...compile.fallback);
                else
                    failure ??= error as Error;
            }
        }
    };
    await Promise.all(Array.from({length: Math.min(jobs, compiles.length)}, worker));
    if (failure != null)
        throw failure;
}

/** Whether `output` exists and was made from the same inputs (`stamp`, kept beside it). */
export function upToDate(output: string, stamp: string): boolean {
    const stampFile = `${output}.stamp`;
    return existsSync(output) && existsSync(stampFile) && readFileSync(stampFile, "utf8") === stamp;
}

export function writeStamp(output: string, stamp: string): void {
    writeFileSync(`${output}.stamp`, stamp);
}

/** Runs `make` unless `output` is up to date with `stamp`; says whether it ran. */
export function unlessUpToDate(output: string, stamp: string, make: () => void): boolean {
    if (upToDate(output, stamp))
        return false;
    rmSync(output, {force: true});
    make();
    writeStamp(output, stamp);
    return true;
}

export function fileStamp(path: string): string {
    const stat = statSync(path);
    return `${path}:${stat.size}:${stat.mtimeMs}`;
}
