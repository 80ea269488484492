import {InvalidImageError} from "../../native/errors.js";
import type {PromptImage} from "../../native/types.js";
import {checkImage} from "./checkImage.js";
import {decodeBase64} from "./decodeBase64.js";
import {fetchRemoteImage} from "./fetchRemoteImage.js";
import type {RemoteImageLimits} from "./fetchRemoteImage.js";
import {imageFromDataUri} from "./imageFromDataUri.js";
import {REMOTE_IMAGE_LIMITS} from "./imageLimits.js";

export type ImageReaderOptions = {
    /** Fetch `http(s)` image URLs (`--allow-remote-images`); otherwise they are refused. Defaults to `false`. */
    allowRemote?: boolean,
    /** Defaults to {@link REMOTE_IMAGE_LIMITS}. */
    remoteLimits?: RemoteImageLimits
};

/**
 * Turns the images a request sends, in whichever form its API has, into checked {@link PromptImage}s: base64 (Ollama,
 * Anthropic), `data:` URIs, and `http(s)` URLs, which are fetched only when the server was started to allow it, since
 * a request should not make a private, offline server reach the network.
 */
export class ImageReader {
    readonly allowRemote: boolean;
    readonly #remoteLimits: RemoteImageLimits;

    constructor({allowRemote = false, remoteLimits = REMOTE_IMAGE_LIMITS}: ImageReaderOptions = {}) {
        this.allowRemote = allowRemote;
        this.#remoteLimits = remoteLimits;
    }

    /** Base64 as Ollama and Anthropic send it; `declared` is the media type the client gave, if any. */
    fromBase64(data: string, param: string, declared?: string): PromptImage {
        return checkImage(decodeBase64(data, param), {param, declared});
    }

    /** An image URL (OpenAI's `image_url`, the Responses API's `input_image`, Anthropic's `url` source). */
    async fromUrl(url: string, param: string, signal?: AbortSignal): Promise<PromptImage> {
        const trimmed = url.trim();
        if (/^data:/i.test(trimmed))
            return imageFromDataUri(trimmed, param);
        if (!/^https?:\/\//i.test(trimmed))
            throw new InvalidImageError(`${param} is neither a data URI nor an http(s) URL; send the image as data:image/png;base64,…`, param);
        if (!this.allowRemote)
            throw new InvalidImageError(`${param}: remote image URLs are not fetched (${shortened(trimmed)}): Hearth does not reach the network for a request; ` +
                "send the image as a data URI or base64, or start the server with --allow-remote-images", param);
        return fetchRemoteImage(trimmed, param, {signal, limits: this.#remoteLimits});
    }
}

const shortened = (url: string) => url.length > 200 ? `${url.slice(0, 200)}…` : url;
