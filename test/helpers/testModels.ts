import {createHash} from "node:crypto";
import {createWriteStream, existsSync} from "node:fs";
import {mkdir, rename, rm} from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import {Readable} from "node:stream";
import {pipeline} from "node:stream/promises";
import type {ReadableStream} from "node:stream/web";
import {fileURLToPath} from "node:url";

/**
 * The one place tests find model files: `HEARTH_TEST_MODELS`, else `../shared/models` beside the
 * checkout. Where neither has the file (a fresh clone elsewhere), `stories260K.gguf` is downloaded
 * once from where llama.cpp's own tests get it, into a cache, and its sha256 is checked.
 */
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

const downloadable: Record<string, {url: string, sha256: string}> = {
    "stories260K.gguf": {
        url: "https://huggingface.co/ggml-org/models/resolve/main/tinyllamas/stories260K.gguf",
        sha256: "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
    }
};

export function testModelsDir(): string {
    return process.env.HEARTH_TEST_MODELS ?? path.resolve(repoRoot, "..", "shared", "models");
}

async function download(name: string, target: string): Promise<void> {
    const source = downloadable[name]!;
    await mkdir(path.dirname(target), {recursive: true});
    const partial = `${target}.partial`;
    const response = await fetch(source.url);
    if (!response.ok || response.body == null)
        throw new Error(`downloading ${source.url} failed: HTTP ${response.status}`);
    const hash = createHash("sha256");
    await pipeline(Readable.fromWeb(response.body as ReadableStream), async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
            hash.update(chunk);
            yield chunk;
        }
    }, createWriteStream(partial));
    const digest = hash.digest("hex");
    if (digest !== source.sha256) {
        await rm(partial, {force: true});
        throw new Error(`${source.url} has sha256 ${digest}, expected ${source.sha256}`);
    }
    await rename(partial, target);
}

/** The absolute path of a test model, e.g. `testModel("derived/stories260K-chatml.gguf")`. */
export async function testModel(relativePath: string): Promise<string> {
    const inShared = path.join(testModelsDir(), relativePath);
    if (existsSync(inShared))
        return inShared;
    if (relativePath in downloadable) {
        const cached = path.join(os.homedir(), ".cache", "hearth", "test-models", relativePath);
        if (!existsSync(cached))
            await download(relativePath, cached);
        return cached;
    }
    throw new Error(`The test model ${relativePath} is not in ${testModelsDir()}; set HEARTH_TEST_MODELS to the folder that has it`);
}
