import {InvalidImageError} from "../../native/errors.js";
import type {PromptImage} from "../../native/types.js";
import {checkImage} from "./checkImage.js";
import {REMOTE_IMAGE_LIMITS} from "./imageLimits.js";

export type RemoteImageLimits = {maxBytes: number, timeoutMs: number, maxRedirects: number};

/**
 * An `http(s)` image URL fetched (only with `--allow-remote-images`): at most `maxBytes`, within `timeoutMs` for the
 * whole fetch, following at most `maxRedirects` redirects and only to http(s). Every failure is a 400 naming the
 * URL; the bytes are checked as any other image's, against the type the server said it sent.
 */
export async function fetchRemoteImage(url: string, param: string, {signal, limits = REMOTE_IMAGE_LIMITS}: {signal?: AbortSignal, limits?: RemoteImageLimits} = {}): Promise<PromptImage> {
    const fail = (why: string) => new InvalidImageError(`${param}: the image at ${url} could not be fetched: ${why}`, param);
    const timeout = AbortSignal.timeout(limits.timeoutMs);
    const aborted = signal != null ? AbortSignal.any([signal, timeout]) : timeout;
    let location = url;
    try {
        for (let redirects = 0; ; redirects++) {
            const target = new URL(location);
            if (target.protocol !== "http:" && target.protocol !== "https:")
                throw fail(`only http and https URLs are fetched, not ${target.protocol}`);
            const response = await fetch(target, {redirect: "manual", signal: aborted, headers: {accept: "image/*"}});
            if (response.status >= 300 && response.status < 400 && response.headers.has("location")) {
                await response.body?.cancel();
                if (redirects >= limits.maxRedirects)
                    throw fail(`more than ${limits.maxRedirects} redirects`);
                location = new URL(response.headers.get("location")!, target).href;
                continue;
            }
            if (!response.ok) {
                await response.body?.cancel();
                throw fail(`HTTP ${response.status}`);
            }
            const data = await readLimited(response, limits.maxBytes, fail);
            const declared = response.headers.get("content-type")?.split(";")[0] ?? "";
            // A server's type is only a hint when it is not an image type at all (text/plain for a file it does not know).
            return checkImage(data, {param, declared: declared.startsWith("image/") ? declared : undefined});
        }
    } catch (error) {
        if (error instanceof InvalidImageError)
            throw error;
        if (timeout.aborted)
            throw fail(`no complete answer within ${limits.timeoutMs / 1000} s`);
        if (signal?.aborted === true)
            throw error;
        const cause = error instanceof Error && error.cause instanceof Error ? error.cause.message : error instanceof Error ? error.message : String(error);
        throw fail(cause);
    }
}

/** The body, stopped as soon as it is larger than an image may be (a length header that says so stops it before). */
async function readLimited(response: Response, maxBytes: number, fail: (why: string) => Error): Promise<Uint8Array> {
    const tooLarge = () => fail(`it is larger than ${maxBytes >= 1024 * 1024 ? `${maxBytes / 1024 / 1024} MiB` : `${maxBytes} bytes`}, the most an image may be`);
    const length = Number(response.headers.get("content-length") ?? NaN);
    if (Number.isFinite(length) && length > maxBytes) {
        await response.body?.cancel();
        throw tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    if (response.body == null)
        return new Uint8Array();
    const reader = response.body.getReader();
    for (;;) {
        const {done, value} = await reader.read();
        if (done)
            break;
        total += value.length;
        if (total > maxBytes) {
            await reader.cancel();
            throw tooLarge();
        }
        chunks.push(value);
    }
    return new Uint8Array(Buffer.concat(chunks));
}
