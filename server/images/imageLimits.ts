import {maxWebpPixels} from "../../native/vision/decodeWebp.js";

/**
 * What one image in a request may be. The bytes bound what a request makes the server hold (the body limit fits
 * several images of this size); the pixels bound what decoding one makes it allocate: llama.cpp decodes an image to
 * 8-bit RGB before its projector resizes it, so 50 megapixels (an 8K photo is 33) is at most 150 MB at once. An image
 * more than 200 times longer than wide is refused as Qwen-VL's own preprocessor refuses it: resized to the projector's
 * token budget, its short side would shrink below one patch.
 */
export const IMAGE_LIMITS = {
    maxBytes: 20 * 1024 * 1024,
    // The engine's own bound on the images it decodes itself (WebP), so the edge never admits one the engine refuses.
    maxPixels: maxWebpPixels,
    maxAspectRatio: 200
} as const;

/** How a remote image (`--allow-remote-images`) is fetched: at most this many bytes, this long, and this many redirects. */
export const REMOTE_IMAGE_LIMITS = {
    maxBytes: IMAGE_LIMITS.maxBytes,
    timeoutMs: 10_000,
    maxRedirects: 3
} as const;
