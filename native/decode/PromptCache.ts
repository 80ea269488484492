import os from "node:os";
import type {Token} from "node-llama-cpp";
import type {SavedSequence} from "./SlotDecoder.js";
import {commonPrefixLength} from "./SlotScheduler.js";

type Entry = {
    /** The model whose slot it was saved from: a state is only good for that model's context. */
    readonly owner: object,
    readonly tokens: readonly Token[],
    readonly state: SavedSequence,
    lastUsed: number
};

export type PromptCacheStats = {
    /** Bytes of saved states held now, and the most it holds. */
    bytes: number,
    limitBytes: number,
    entries: number,
    /** Prompts whose prefix was restored from it. */
    hits: number,
    /** Slot states saved into it (before another conversation overwrote them). */
    saves: number,
    /** Prompts whose prefix was copied from another slot instead of evaluated. */
    copies: number
};

/**
 * llama-server's default (`--cache-ram` 8192 MiB), but at most an eighth of the machine's memory: the states are
 * plain process memory, beside the model's own weights and KV cache, and a laptop must not swap for a cache.
 */
export function defaultPromptCacheBytes(totalMemory = os.totalmem()): number {
    return Math.min(8 * 1024 ** 3, Math.floor(totalMemory / 8));
}

/**
 * The RAM cache of prompt prefixes: slot states (KV cells and the tokens they hold) saved before another conversation
 * overwrote them, and restored into a slot when a prompt that starts the same way comes back, so an agent interleaved
 * with chats keeps its prefix. One cache for every loaded model, within one byte limit; the least recently used state
 * goes first. A state leaves it when it is restored (the slot holds it again, and is saved again when evicted).
 */
export class PromptCache {
    readonly limitBytes: number;
    #entries: Entry[] = [];
    #bytes = 0;
    #clock = 0;
    #hits = 0;
    #saves = 0;
    #copies = 0;

    /** `limitBytes`: 0 turns it off (prefixes are still copied between slots). */
    constructor(limitBytes: number) {
        this.limitBytes = limitBytes;
    }

    get enabled(): boolean {
        return this.limitBytes > 0;
    }

    get stats(): PromptCacheStats {
        return {bytes: this.#bytes, limitBytes: this.limitBytes, entries: this.#entries.length, hits: this.#hits, saves: this.#saves, copies: this.#copies};
    }

    /** Keeps a slot's state; an older state of a prefix of the same tokens is of no more use and goes. */
    add(owner: object, tokens: readonly Token[], state: SavedSequence): void {
        if (state.bytes > this.limitBytes) {
            state.free();
            return;
        }
        for (const entry of this.#entries.filter((entry) => entry.owner === owner && entry.tokens.length <= tokens.length &&
            commonPrefixLength(entry.tokens, tokens) === entry.tokens.length))
            this.#remove(entry);
        this.#entries.push({owner, tokens, state, lastUsed: ++this.#clock});
        this.#bytes += state.bytes;
        this.#saves++;
        while (this.#bytes > this.limitBytes)
            this.#remove(this.#entries.reduce((oldest, entry) => entry.lastUsed < oldest.lastUsed ? entry : oldest));
    }

    /** The state of this owner whose tokens share the longest prefix with the prompt, and that prefix's length. */
    best(owner: object, prompt: readonly Token[]): {entry: Entry, length: number} | undefined {
        let best: {entry: Entry, length: number} | undefined;
        for (const entry of this.#entries) {
            if (entry.owner !== owner)
                continue;
            const length = commonPrefixLength(entry.tokens, prompt);
            if (length > (best?.length ?? 0))
                best = {entry, length};
        }
        return best;
    }

    /** Takes a state out to restore it: the caller frees it once restored. */
    take(entry: Entry): Entry {
        this.#entries = this.#entries.filter((held) => held !== entry);
        this.#bytes -= entry.state.bytes;
        this.#hits++;
        return entry;
    }

    countCopy(): void {
        this.#copies++;
    }

    /** Frees every state of an owner (a model that unloads). */
    drop(owner: object): void {
        for (const entry of this.#entries.filter((held) => held.owner === owner))
            this.#remove(entry);
    }

    #remove(entry: Entry): void {
        this.#entries = this.#entries.filter((held) => held !== entry);
        this.#bytes -= entry.state.bytes;
        entry.state.free();
    }
}
