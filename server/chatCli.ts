import {createInterface} from "node:readline/promises";
import type {Library} from "../models/index.js";
import {Engine} from "../native/Engine.js";
import type {ChatMessage} from "../native/types.js";
import {libraryCatalog} from "./startServer.js";

/**
 * `hearth run NAME [PROMPT]`: chat with a library model in the terminal, without a server. With a prompt it
 * answers once; without one it reads messages line by line, keeping the conversation, until an empty line or EOF.
 */
export async function runChat(library: Library, name: string, prompt: string | undefined, options: {threads?: number} = {}): Promise<void> {
    const engine = new Engine({
        gpu: "auto", gpuLayers: "auto", threads: options.threads ?? "auto", parallel: 1, ctxSize: 4096, maxQueue: 1,
        catalog: libraryCatalog(library)
    }, []);
    try {
        library.get(name);
        await engine.start();
        const lease = await engine.acquire(name, {keepAliveMs: -1});
        const model = lease.model;
        const messages: ChatMessage[] = [];
        const answer = async (text: string) => {
            messages.push({role: "user", content: text});
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
