import {InvalidImageError} from "../errors.js";

/** A decoded image: RGB pixels, row by row, three bytes each. */
export type DecodedImage = {width: number, height: number, pixels: Uint8Array};

/**
 * Decodes a WebP file to RGB pixels (libmtmd's own reader, stb_image, has no WebP).
 * Not implemented yet: WebP images are refused with a clear error.
 */
export function decodeWebp(data: Uint8Array): DecodedImage {
    void data;
    throw new InvalidImageError("WebP images cannot be decoded yet; send PNG, JPEG, GIF or BMP");
}
