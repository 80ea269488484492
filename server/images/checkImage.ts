import {InvalidImageError} from "../../native/errors.js";
import type {ImageMimeType, PromptImage} from "../../native/types.js";
import {IMAGE_LIMITS} from "./imageLimits.js";
import {readImageHeader} from "./readImageHeader.js";

const FORMAT_NAMES: Record<ImageMimeType, string> = {
    "image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "image/gif": "GIF", "image/bmp": "BMP"
};

/** Media types a client may call its image by: the five formats, and the aliases clients send for two of them. */
const DECLARED_TYPES: Record<string, ImageMimeType> = {
    "image/png": "image/png",
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/webp": "image/webp",
    "image/gif": "image/gif",
    "image/bmp": "image/bmp",
    "image/x-bmp": "image/bmp",
    "image/x-ms-bmp": "image/bmp"
};

/** Types that say nothing about the bytes (a file sent as it was read), so the bytes alone decide. */
const UNDECLARED = new Set(["", "application/octet-stream", "binary/octet-stream"]);

/**
 * An image a client sent, checked before anything is loaded or queued: a format the projector decodes (from its
 * bytes), a size read from its header that is neither zero nor over {@link IMAGE_LIMITS}, and, where the client said
 * what it is (a data URI's type, Anthropic's `media_type`), that the bytes are that. Throws InvalidImageError (a 400)
 * naming `param`, the image's place in the request.
 */
export function checkImage(data: Uint8Array, {param, declared}: {param: string, declared?: string}): PromptImage {
    checkImageSize(data.length, param);
    const declaredType = declared?.trim().toLowerCase() ?? "";
    const expected = UNDECLARED.has(declaredType) ? undefined : DECLARED_TYPES[declaredType];
    if (!UNDECLARED.has(declaredType) && expected == null)
        throw new InvalidImageError(`${param} is declared as ${JSON.stringify(declared)}, which is not an image type this server reads: ` +
            "image/png, image/jpeg, image/webp, image/gif or image/bmp", param);
    const header = readImageHeader(data);
    if ("problem" in header)
        throw new InvalidImageError(`${param} cannot be read as an image: ${header.problem}`, param);
    if (expected != null && expected !== header.mimeType)
        throw new InvalidImageError(`${param} is declared as ${declaredType}, but its bytes are a ${FORMAT_NAMES[header.mimeType]} image (${header.mimeType})`, param);
    const {width, height} = header;
    const format = FORMAT_NAMES[header.mimeType];
    if (width === 0 || height === 0)
        throw new InvalidImageError(`${param} is a ${format} image of ${width}×${height} pixels, which has nothing to see`, param);
    if (width * height > IMAGE_LIMITS.maxPixels)
        throw new InvalidImageError(`${param} is a ${format} image of ${width}×${height} pixels (${megapixels(width * height)} megapixels); ` +
            `an image may have at most ${megapixels(IMAGE_LIMITS.maxPixels)} megapixels`, param);
    if (Math.max(width, height) / Math.min(width, height) > IMAGE_LIMITS.maxAspectRatio)
        throw new InvalidImageError(`${param} is a ${format} image of ${width}×${height} pixels; ` +
            `its long side may be at most ${IMAGE_LIMITS.maxAspectRatio} times its short side`, param);
    return {data, mimeType: header.mimeType};
}

/**
 * The byte-size part of {@link checkImage}, for a caller that knows an image's size before it holds its bytes (a file
 * on disk), so that an enormous file is refused without being read.
 */
export function checkImageSize(sizeBytes: number, param: string): void {
    if (sizeBytes === 0)
        throw new InvalidImageError(`${param} is an empty image (0 bytes)`, param);
    if (sizeBytes > IMAGE_LIMITS.maxBytes)
        throw new InvalidImageError(`${param} is ${mebibytes(sizeBytes)} MiB; an image may be at most ${mebibytes(IMAGE_LIMITS.maxBytes)} MiB`, param);
}

const mebibytes = (bytes: number) => Number((bytes / 1024 / 1024).toFixed(1));
const megapixels = (pixels: number) => Number((pixels / 1e6).toFixed(1));
