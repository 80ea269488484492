import {InvalidImageError} from "../../native/errors.js";
import {IMAGE_LIMITS} from "./imageLimits.js";

/** Standard or URL-safe base64, padded or not; whitespace (line breaks of MIME-style base64) is left out first. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * The bytes of an image sent as base64. Node's own decoder skips what is not base64, so garbage would become
 * some bytes; here it is a 400 naming `param`. Text that would decode to more than an image may hold is refused
 * before it is decoded.
 */
export function decodeBase64(text: string, param: string): Uint8Array {
    const compact = /\s/.test(text) ? text.replace(/\s+/g, "") : text;
    if (compact.length === 0)
        throw new InvalidImageError(`${param} is an empty image (no base64 data)`, param);
    if (Math.floor(compact.length * 3 / 4) > IMAGE_LIMITS.maxBytes + 2)
        throw new InvalidImageError(`${param} is about ${Math.round(compact.length * 3 / 4 / 1024 / 1024)} MiB; ` +
            `an image may be at most ${IMAGE_LIMITS.maxBytes / 1024 / 1024} MiB`, param);
    if (!BASE64.test(compact) || compact.length % 4 === 1)
        throw new InvalidImageError(`${param} is not valid base64`, param);
    return new Uint8Array(Buffer.from(compact, compact.includes("-") || compact.includes("_") ? "base64url" : "base64"));
}
