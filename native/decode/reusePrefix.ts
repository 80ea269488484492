import type {Token} from "node-llama-cpp";
import type {PromptCache} from "./PromptCache.js";
import type {SlotDecoder} from "./SlotDecoder.js";
import {commonPrefixLength, minReusedPrefixTokens} from "./SlotScheduler.js";
import type {Slot, SlotLease} from "./SlotScheduler.js";
import {prefixOutsideImages} from "../vision/placeImages.js";
import type {PlacedImage} from "../vision/placeImages.js";

/** Where else a prompt's prefix may be cached, beside the slot it was given. */
export type PrefixSources = {
    /** The model's slots, busy or free. */
    slots: readonly Slot[],
    /** The RAM cache of evicted slot states; off when its limit is 0. */
    cache: PromptCache,
    /** The model, whose entries in the cache are its own. */
    owner: object
};

/**
 * Makes a leased slot hold the longest cached prefix of a prompt it can get, and resolves with its length (the prompt's
 * cached tokens): its own cache's, or a longer one copied from another slot (busy or free) or restored from the RAM
 * cache, each by at least {@link minReusedPrefixTokens} tokens more, as copying costs a pass over the whole source. What
 * the slot held is saved to the RAM cache first when most of it is about to go, as llama-server does, so that its
 * conversation finds it there when it comes back.
 *
 * Every edit of the cache is asked for before this first waits, so none of another request's comes between them.
 */
export async function reusePrefix(loop: SlotDecoder, lease: SlotLease, prompt: readonly Token[], images: readonly PlacedImage[],
    sources: PrefixSources | undefined): Promise<number> {
    const target = lease.slot.sequence;
    // At least one prompt token is evaluated again, to get the logits of the first new token; an image is kept whole or not at all.
    const usable = (length: number) => prefixOutsideImages(Math.min(length, prompt.length - 1), images);
    const own = usable(lease.cachedPrefixTokens);
    if (sources == null || !loop.sharesState)
        return loop.truncate(target, own);

    let copy: {slot: Slot, length: number} | undefined;
    for (const slot of sources.slots) {
        const length = slot === lease.slot ? 0 : usable(commonPrefixLength(slot.sequence.contextTokens, prompt));
        if (length >= own + minReusedPrefixTokens && length > (copy?.length ?? 0))
            copy = {slot, length};
    }
    const cache = sources.cache;
    const stored = cache.enabled ? cache.best(sources.owner, prompt) : undefined;
    const storedLength = stored != null ? usable(stored.length) : 0;
    const restore = stored != null && storedLength >= own + minReusedPrefixTokens && storedLength > (copy?.length ?? 0) ? stored : undefined;

    const held = [...target.contextTokens];
    const saving = cache.enabled && held.length >= minReusedPrefixTokens && lease.cachedPrefixTokens < held.length / 2
        ? loop.save(target, cache.limitBytes)
        : undefined;
    let reused: Promise<number>;
    if (restore != null) {
        const {state, tokens} = cache.take(restore.entry);
        reused = loop.restore(target, state, tokens, storedLength).finally(() => state.free());
    } else if (copy != null) {
        cache.countCopy();
        reused = loop.copyPrefix(target, copy.slot.sequence, copy.length);
    } else
        reused = loop.truncate(target, own);
    const [saved, kept] = await Promise.allSettled([saving, reused]);
    if (saved.status === "fulfilled" && saved.value != null)
        cache.add(sources.owner, held, saved.value);
    if (kept.status === "rejected")
        throw kept.reason;
    return kept.value;
}
