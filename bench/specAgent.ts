import {readFile} from "node:fs/promises";
import path from "node:path";
import {fileURLToPath} from "node:url";
import {specReply} from "./specReply.js";

/**
 * bench:spec's interleaved agent: a coding agent's conversation of about 3,800 tokens (a source file and a question)
 * comes back turn after turn, with two chats in between, on a server with one slot. Each chat takes the slot, so the
 * agent's prefix survives only in a prompt cache outside the slot (Hearth's `--cache-ram`, llama-server's `--cache-ram`).
 */

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export type AgentTurns = {
    promptTokens: number,
    /** The agent's first turn: nothing of it cached. */
    coldMs: number,
    /** The agent's later turns, each after two chats. */
    revisitedMs: number[],
    chatsMs: number[]
};

/** About `chars` characters of the repository's own source, as an agent would hold it. */
async function sourceText(files: readonly string[], chars: number): Promise<string> {
    let text = "";
    for (const file of files)
        text += `// ${file}\n${await readFile(path.join(repoRoot, file), "utf8")}\n`;
    return text.slice(0, chars);
}

export async function interleavedAgent(url: string, model: string, turns = 3): Promise<AgentTurns> {
    const file = await sourceText(["native/decode/DecodeLoop.ts", "native/decode/SlotScheduler.ts"], 13_500);
    const chats = [
        await sourceText(["server/config.ts"], 1_600),
        await sourceText(["bench/draftPair.ts"], 1_600)
    ];
    let conversation = `System: You are a coding agent. The user's file:\n${file}\nUser: What does the first class do?\nAssistant:`;
    const ask = (prompt: string) => specReply(url, {model, prompt, max_tokens: 8, temperature: 0});
    const first = await ask(conversation);
    const result: AgentTurns = {promptTokens: first.promptTokens ?? 0, coldMs: first.ttftMs, revisitedMs: [], chatsMs: []};
    conversation += `${first.text}\nUser: And the one after it?\nAssistant:`;
    for (let turn = 1; turn < turns; turn++) {
        for (const chat of chats)
            result.chatsMs.push((await ask(`${chat}\nUser: Summarize turn ${turn}.\nAssistant:`)).ttftMs);
        const reply = await ask(conversation);
        result.revisitedMs.push(reply.ttftMs);
        conversation += `${reply.text}\nUser: Go on (turn ${turn + 1}).\nAssistant:`;
    }
    return result;
}
