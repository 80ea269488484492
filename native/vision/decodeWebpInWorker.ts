import {Worker} from "node:worker_threads";
import {InvalidImageError} from "../errors.js";
import type {DecodedImage} from "./decodeWebp.js";
import type {WebpAnswer, WebpRequest} from "./webpWorker.js";

type Pending = {resolve: (image: DecodedImage) => void, reject: (error: Error) => void};

/** The one decoding thread, started on the first WebP image and kept for the next; images wait their turn on it. */
let worker: Worker | undefined;
const pending = new Map<number, Pending>();
let nextId = 0;

/** Fails what the thread was decoding when it dies (a crash, not a bad image: those are answered), and starts afresh next time. */
function stopped(thread: Worker, error: Error): void {
    if (worker !== thread)
        return;
    worker = undefined;
    for (const {reject} of pending.values())
        reject(error);
    pending.clear();
}

function thread(): Worker {
    if (worker != null)
        return worker;
    const started = new Worker(new URL("./webpWorker.js", import.meta.url));
    started.on("message", ({id, ...answer}: WebpAnswer) => {
        const waiting = pending.get(id);
        pending.delete(id);
        // An idle thread must not keep the process alive.
        if (pending.size === 0)
            started.unref();
        if ("image" in answer)
            waiting?.resolve(answer.image);
        else
            waiting?.reject(answer.invalidImage ? new InvalidImageError(answer.error) : new Error(answer.error));
    });
    started.on("error", (error) => stopped(started, error));
    started.on("exit", (code) => stopped(started, new Error(`The WebP decoding thread stopped (exit code ${code})`)));
    started.unref();
    worker = started;
    return started;
}

/**
 * {@link decodeWebp} on a thread of its own, so that the event loop serves other requests while a large image is
 * decoded: the same pixels, and the same InvalidImageError for a file that is not a WebP image, truncated, corrupt
 * or too large. The bytes are copied to the thread; the caller's stay as they were.
 */
export function decodeWebpInWorker(data: Uint8Array): Promise<DecodedImage> {
    const decoding = thread();
    const id = nextId++;
    return new Promise<DecodedImage>((resolve, reject) => {
        pending.set(id, {resolve, reject});
        decoding.ref();
        decoding.postMessage({id, data} satisfies WebpRequest);
    });
}
