import {InvalidImageError} from "../../native/errors.js";
import type {PromptImage} from "../../native/types.js";
import {checkImage} from "./checkImage.js";
import {decodeBase64} from "./decodeBase64.js";

/**
 * An image sent as a `data:` URI (`data:image/png;base64,…`), checked: its type, if it gives one, must be what its
 * bytes are. Only base64 URIs are read, as OpenAI reads them (an image's bytes are not text).
 */
export function imageFromDataUri(uri: string, param: string): PromptImage {
    const comma = uri.indexOf(",");
    if (!/^data:/i.test(uri) || comma < 0)
        throw new InvalidImageError(`${param} is not a data URI; send an image as data:image/png;base64,…`, param);
    const [mimeType = "", ...parameters] = uri.slice(5, comma).split(";").map((part) => part.trim());
    if (!parameters.some((part) => part.toLowerCase() === "base64"))
        throw new InvalidImageError(`${param} is a data URI without ;base64; send an image as data:${mimeType || "image/png"};base64,…`, param);
    return checkImage(decodeBase64(uri.slice(comma + 1), param), {param, declared: mimeType});
}
