import {readFile, stat} from "node:fs/promises";
import path from "node:path";
import {createInterface} from "node:readline/promises";
import type {Library} from "../models/index.js";
import {Engine} from "../native/Engine.js";
import {ImagesNotSupportedError, InvalidImageError} from "../native/errors.js";
import {IMAGE_PLACEHOLDER} from "../native/types.js";
import type {ChatMessage, ImageMimeType, PromptImage} from "../native/types.js";
import {ConfigError} from "./config.js";
import {checkImage, checkImageSize, stripPlaceholders} from "./images/index.js";
import {libraryCatalog} from "./startServer.js";

const MIME_TYPES_BY_EXTENSION: Record<string, ImageMimeType> = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif", ".bmp": "image/bmp"
};

/**
 * `--image` files as the engine takes them, read before a model is loaded so that a typo fails at once, and checked as
 * every API checks an image (its name stands for the type a client declares), so a file the server would refuse with
 * a 400 is a usage error here rather than a failure inside the engine.
 */
async function readImages(files: readonly string[]): Promise<PromptImage[]> {
    return await Promise.all(files.map(async (file) => {
        const mimeType = MIME_TYPES_BY_EXTENSION[path.extname(file).toLowerCase()];
        if (mimeType == null)
            throw new ConfigError(`--image ${file}: not a PNG, JPEG, WebP, GIF or BMP file (by its name)`);
        const param = `--image ${file}`;
        let data: Uint8Array;
        try {
            const {size} = await stat(file);
            // Refused by its size before it is read: a multi-gigabyte file by mistake must not be loaded into memory.
            checkImageSize(size, param);
            data = new Uint8Array(await readFile(file));
        } catch (error) {
            if (error instanceof InvalidImageError)
                throw error;
            const code = (error as NodeJS.ErrnoException).code;
            throw new ConfigError(code === "ENOENT" ? `${param}: no such file` : `${param}: ${(error as Error).message}`);
        }
        return checkImage(data, {param, declared: mimeType});
    }));
}

/**
 * `hearth run NAME [PROMPT]`: chat with a library model in the terminal, without a server. With a prompt it
 * answers once; without one it reads messages line by line, keeping the conversation, until an empty line or EOF.
 * `imageFiles` go with the first message, before its text, for a model that can see.
 */
export async function runChat(library: Library, name: string, prompt: string | undefined, options: {threads?: number, imageFiles?: readonly string[]} = {}): Promise<void> {
    const engine = new Engine({
        gpu: "auto", gpuLayers: "auto", threads: options.threads ?? "auto", parallel: 1, ctxSize: 4096, maxQueue: 1,
        catalog: libraryCatalog(library)
    }, []);
    try {
        library.get(name);
        let images = await readImages(options.imageFiles ?? []);
        if (images.length > 0 && engine.projectorOf(name) == null)
            throw new ImagesNotSupportedError(name, "--image");
        await engine.start();
        const lease = await engine.acquire(name, {keepAliveMs: -1});
        const model = lease.model;
        const messages: ChatMessage[] = [];
        const answer = async (line: string) => {
            const text = stripPlaceholders(line);
            messages.push(images.length > 0 ? {role: "user", content: IMAGE_PLACEHOLDER.repeat(images.length) + text, images} : {role: "user", content: text});
            images = [];
            const generation = await model.start(model.chatPrompt(messages), {sampling: {}, stop: []});
            let reply = "";
            let reasoning = "";
            // Thinking is shown apart, dimmed on a terminal, as `ollama run` shows it.
            const dim = process.stdout.isTTY ? ["\x1b[2m", "\x1b[0m"] : ["", ""];
            for await (const event of generation.events) {
                if (event.type === "reasoning") {
                    if (reasoning === "")
                        process.stdout.write(`${dim[0]}Thinking...\n`);
                    reasoning += event.text;
                    process.stdout.write(event.text);
                } else if (event.type === "text") {
                    if (reasoning !== "" && reply === "")
                        process.stdout.write(`\n...done thinking.${dim[1]}\n\n`);
                    reply += event.text;
                    process.stdout.write(event.text);
                }
            }
            process.stdout.write("\n");
            messages.push({role: "assistant", content: reply, reasoning});
        };
        if (prompt != null) {
            await answer(prompt);
        } else {
            const lines = createInterface({input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY});
            for (;;) {
                const line = await lines.question(process.stdin.isTTY ? ">>> " : "").catch(() => "");
                if (line.trim() === "")
                    break;
                await answer(line);
            }
            lines.close();
        }
        lease.release();
    } finally {
        await engine.dispose();
    }
}
