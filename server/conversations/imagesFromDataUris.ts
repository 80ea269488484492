import {InvalidImageError} from "../../native/errors.js";
import type {ImageMimeType, PromptImage} from "../../native/types.js";
import {checkImage} from "../images/index.js";

const MIME_TYPES: readonly ImageMimeType[] = ["image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp"];
const DATA_URI = /^data:([^;,]+);base64,([A-Za-z0-9+/]*={0,2})$/;

/**
 * A message's images as the app sends them: `data:image/…;base64,…` URIs, each of a type the engine decodes, whose
 * bytes then pass the same check as every API's images (format against label, size, pixels).
 */
export function imagesFromDataUris(uris: readonly string[], param = "images"): PromptImage[] {
    return uris.map((uri, index) => {
        const match = DATA_URI.exec(uri);
        if (match == null)
            throw new InvalidImageError(`Image ${index + 1} is not a base64 data: URI (data:image/png;base64,…)`, param);
        const mimeType = match[1]!.toLowerCase() as ImageMimeType;
        if (!MIME_TYPES.includes(mimeType))
            throw new InvalidImageError(`Image ${index + 1} is ${match[1]}; send PNG, JPEG, WebP, GIF or BMP (${MIME_TYPES.join(", ")})`, param);
        const data = Buffer.from(match[2]!, "base64");
        if (data.byteLength === 0)
            throw new InvalidImageError(`Image ${index + 1} is empty`, param);
        return checkImage(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), {param: `${param}[${index}]`, declared: mimeType});
    });
}
