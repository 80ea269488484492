/**
 * Runs an async generator ahead of its reader: items are pulled as soon as they are ready and
 * queued until read, up to `maxAhead` of them. For generation this means writing a token to a slow
 * socket never holds up the generation, which has already asked for the next token; a reader that
 * stops reading holds it back once it is `maxAhead` items ahead (and the decode loop behind it).
 * When the reader stops early, the source is stopped after the item in flight and `onEnd` runs.
 */
export function prefetch<T>(source: AsyncGenerator<T>, onEnd: () => void, maxAhead = 32): AsyncGenerator<T> {
    const queue: IteratorResult<T>[] = [];
    let failure: {error: unknown} | undefined;
    let wake: (() => void) | undefined;
    let room: (() => void) | undefined;
    let stopped = false;

    const pump = (async () => {
        try {
            while (!stopped) {
                if (queue.length >= maxAhead) {
                    await new Promise<void>((resolve) => room = resolve);
                    room = undefined;
                    continue;
                }
                const result = await source.next();
                queue.push(result);
                wake?.();
                if (result.done)
                    return;
            }
            await source.return(undefined);
        } catch (error) {
            failure = {error};
            wake?.();
        } finally {
            onEnd();
        }
    })();

    async function* read(): AsyncGenerator<T> {
        try {
            for (;;) {
                const next = queue.shift();
                room?.();
                if (next != null) {
                    if (next.done)
                        return;
                    yield next.value;
                    continue;
                }
                if (failure != null)
                    throw failure.error;
                await new Promise<void>((resolve) => wake = resolve);
                wake = undefined;
            }
        } finally {
            stopped = true;
            room?.();
            await pump;
        }
    }
    return read();
}
