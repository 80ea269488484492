import type {Token} from "node-llama-cpp";
import type {KvSequence} from "./SlotDecoder.js";
import {QueueFullError, RequestAbortedError} from "../errors.js";

export type Slot = {
    readonly index: number,
    readonly sequence: KvSequence,
    busy: boolean,
    /** Monotonic counter of the last admission, for least-recently-used tie breaks. */
    lastUsed: number
};

export type SlotLease = {
    readonly slot: Slot,
    /** Prompt tokens already in the slot's KV cache when it was handed out. */
    readonly cachedPrefixTokens: number,
    /** Returns the slot; idempotent. */
    release(): void
};

type Waiter = {
    promptTokens: readonly Token[],
    resolve(lease: SlotLease): void,
    reject(error: Error): void,
    cleanup(): void
};

/** The fewest cached tokens worth keeping a slot's cache for, or worth copying from elsewhere. */
export const minReusedPrefixTokens = 32;

export function commonPrefixLength(a: readonly Token[], b: readonly Token[]): number {
    const max = Math.min(a.length, b.length);
    let index = 0;
    while (index < max && a[index] === b[index])
        index++;
    return index;
}

/**
 * Hands the slots (context sequences) of one loaded model to requests.
 * A request gets the free slot whose cached tokens share the longest prefix with its prompt, so a
 * repeated system prompt or a growing chat is not evaluated again; when none is free it waits in a
 * bounded FIFO queue, and a full queue refuses at once with {@link QueueFullError}.
 */
export class SlotScheduler {
    readonly slots: readonly Slot[];
    readonly maxQueue: number;
    readonly #queue: Waiter[] = [];
    #clock = 0;

    constructor(sequences: readonly KvSequence[], maxQueue: number) {
        this.slots = sequences.map((sequence, index) => ({index, sequence, busy: false, lastUsed: 0}));
        this.maxQueue = maxQueue;
    }

    get busySlots(): number {
        return this.slots.filter((slot) => slot.busy).length;
    }

    get queuedRequests(): number {
        return this.#queue.length;
    }

    /**
     * A slot for a prompt, at once or after waiting. `signal` (the client left) rejects a waiting request
     * with {@link RequestAbortedError}; `deadline` rejects it with the deadline's reason.
     */
    acquire(promptTokens: readonly Token[], signal?: AbortSignal, deadline?: AbortSignal): Promise<SlotLease> {
        if (signal?.aborted)
            return Promise.reject(new RequestAbortedError());
        if (deadline?.aborted)
            return Promise.reject(deadline.reason as Error);

        const free = this.#bestFreeSlot(promptTokens);
        if (free != null)
            return Promise.resolve(this.#lease(free.slot, free.prefixLength));

        if (this.#queue.length >= this.maxQueue)
            return Promise.reject(new QueueFullError(this.#queue.length));

        return new Promise<SlotLease>((resolve, reject) => {
            const leaveQueue = (error: Error) => {
                const index = this.#queue.indexOf(waiter);
                if (index >= 0)
                    this.#queue.splice(index, 1);
                waiter.cleanup();
                reject(error);
            };
            const onAbort = () => leaveQueue(new RequestAbortedError());
            const onDeadline = () => leaveQueue(deadline!.reason as Error);
            const waiter: Waiter = {
                promptTokens,
                resolve,
                reject,
                cleanup: () => {
                    signal?.removeEventListener("abort", onAbort);
                    deadline?.removeEventListener("abort", onDeadline);
                }
            };
            signal?.addEventListener("abort", onAbort, {once: true});
            deadline?.addEventListener("abort", onDeadline, {once: true});
            this.#queue.push(waiter);
        });
    }

    /** Rejects every waiting request, for shutdown. */
    rejectWaiting(error: Error): void {
        for (const waiter of this.#queue.splice(0)) {
            waiter.cleanup();
            waiter.reject(error);
        }
    }

    /**
     * The free slot with the longest cached prefix of the prompt, when that prefix is worth keeping
     * (32 tokens or half the prompt); otherwise the least recently used free slot (an empty one
     * first among equals), so a shared BOS token or a few common words never evict a cache that a
     * later request could reuse.
     */
    #bestFreeSlot(promptTokens: readonly Token[]): {slot: Slot, prefixLength: number} | undefined {
        let longest: {slot: Slot, prefixLength: number} | undefined;
        let leastRecent: {slot: Slot, prefixLength: number, cachedTokens: number} | undefined;
        for (const slot of this.slots) {
            if (slot.busy)
                continue;
            const cached = slot.sequence.contextTokens;
            const prefixLength = commonPrefixLength(cached, promptTokens);
            if (longest == null || prefixLength > longest.prefixLength ||
                (prefixLength === longest.prefixLength && slot.lastUsed < longest.slot.lastUsed))
                longest = {slot, prefixLength};
            if (leastRecent == null || slot.lastUsed < leastRecent.slot.lastUsed ||
                (slot.lastUsed === leastRecent.slot.lastUsed && cached.length < leastRecent.cachedTokens))
                leastRecent = {slot, prefixLength, cachedTokens: cached.length};
        }
        const worthKeeping = Math.min(minReusedPrefixTokens, Math.ceil(promptTokens.length / 2));
        return longest != null && longest.prefixLength >= worthKeeping ? longest : leastRecent;
    }

    #lease(slot: Slot, prefixLength: number): SlotLease {
        slot.busy = true;
        slot.lastUsed = ++this.#clock;
        let released = false;
        return {
            slot,
            cachedPrefixTokens: prefixLength,
            release: () => {
                if (released)
                    return;
                released = true;
                slot.busy = false;
                this.#dispatch();
            }
        };
    }

    #dispatch(): void {
        const waiter = this.#queue.shift();
        if (waiter == null)
            return;
        const free = this.#bestFreeSlot(waiter.promptTokens);
        if (free == null) {
            this.#queue.unshift(waiter);
            return;
        }
        waiter.cleanup();
        waiter.resolve(this.#lease(free.slot, free.prefixLength));
    }
}
