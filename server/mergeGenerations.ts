import type {Generation} from "../native/LoadedModel.js";
import type {GenerationEvent} from "../native/types.js";

/**
 * Runs several generations at once (the `n` choices, or several prompts) and yields their events
 * as they come, tagged with the generation's index. Returning early stops and releases them all.
 */
export async function* mergeGenerations(generations: readonly Generation[]): AsyncGenerator<{index: number, event: GenerationEvent}> {
    const pending = new Map<number, Promise<{index: number, result: IteratorResult<GenerationEvent>}>>();
    const pull = (index: number) => {
        pending.set(index, generations[index]!.events.next().then((result) => ({index, result})));
    };
    generations.forEach((_, index) => pull(index));
    try {
        while (pending.size > 0) {
            const {index, result} = await Promise.race(pending.values());
            if (result.done) {
                pending.delete(index);
                continue;
            }
            pull(index);
            yield {index, event: result.value};
        }
    } finally {
        // A next() still in flight may yet fail (the client went away); nobody reads it now.
        for (const promise of pending.values())
            promise.catch(() => undefined);
        for (const generation of generations) {
            generation.release();
            // Finish each generator so its slot cleanup runs even if a next() is still in flight.
            void generation.events.return(undefined).catch(() => undefined);
        }
    }
}

/** Starts `count` generations, all or none: if one cannot start, those already started are released. */
export async function startAll(count: number, start: (index: number) => Promise<Generation>): Promise<Generation[]> {
    const results = await Promise.allSettled(Array.from({length: count}, (_, index) => start(index)));
    const failed = results.find((result) => result.status === "rejected");
    if (failed != null) {
        for (const result of results)
            if (result.status === "fulfilled")
                result.value.release();
        throw failed.reason;
    }
    return results.map((result) => (result as PromiseFulfilledResult<Generation>).value);
}
