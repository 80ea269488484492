import {createHash} from "node:crypto";
import type {Token} from "node-llama-cpp";
import {InvalidImageError} from "../errors.js";
import type {AddonProjector, VisionAddon} from "../decode/NativeDecodeLoop.js";
import type {PromptImage} from "../types.js";
import {decodeWebpInWorker} from "./decodeWebpInWorker.js";

/** An image made ready for a model: its image tokens (a libmtmd chunk) and the text tokens libmtmd puts around them. */
export type ProjectedImage = {
    /** The sha256 of the image's bytes (libmtmd's id for it). */
    id: string,
    /**
     * What stands for each of its positions in a sequence's tokens: a negative number, never a real token, the same for
     * the same image, so that a slot's cache that holds the image matches a prompt that shows it again.
     */
    placeholder: Token,
    /** The model's own text around the image (its begin- and end-of-image markers), as libmtmd adds them. */
    before: readonly Token[],
    after: readonly Token[],
    /** Image tokens (embeddings), as llama.cpp counts them in a prompt's usage. */
    tokens: number,
    /** Positions they take in the sequence: the same as `tokens`, or fewer with M-RoPE (Qwen-VL). */
    positions: number,
    /** The chunk the decode loops evaluate. */
    chunk: object
};

/** Images projected lately, by sha256: a conversation shows the same image again on every turn. */
const cacheSize = 16;

/**
 * A model's multimodal projector (mmproj) loaded through llama.cpp's multimodal library: turns a prompt's images into
 * image tokens for the model, each tokenized once per image while it is in use.
 */
export class ImageProjector {
    readonly path: string;
    readonly native: AddonProjector;
    /** The largest image (in image tokens) the context's batch takes in one decode, which a non-causal image needs. */
    readonly maxImageTokens: number;
    readonly #cache = new Map<string, Promise<ProjectedImage>>();
    #closed = false;

    private constructor(path: string, native: AddonProjector, maxImageTokens: number) {
        this.path = path;
        this.native = native;
        this.maxImageTokens = maxImageTokens;
    }

    /**
     * Loads a projector for a model (node-llama-cpp's native model object). `batchSize`: the context's batch, which
     * also bounds how many tokens libmtmd makes of one image (models whose image size varies are resized to fit it).
     */
    static async load(vision: VisionAddon, nativeModel: object, path: string, options: {useGpu: boolean, threads: number, batchSize: number}): Promise<ImageProjector> {
        const native = new vision.Projector(nativeModel, path, {useGpu: options.useGpu, threads: options.threads, imageMaxTokens: options.batchSize});
        await native.load();
        return new ImageProjector(path, native, options.batchSize);
    }

    /** The image's tokens; rejects with InvalidImageError for an image the projector cannot take. */
    project(image: PromptImage, param = "messages"): Promise<ProjectedImage> {
        if (this.#closed)
            return Promise.reject(new Error("The projector was unloaded"));
        const id = createHash("sha256").update(image.data).digest("hex");
        let projected = this.#cache.get(id);
        if (projected != null) {
            // Most recently used last.
            this.#cache.delete(id);
            this.#cache.set(id, projected);
            return projected;
        }
        projected = this.#project(id, image, param);
        this.#cache.set(id, projected);
        projected.catch(() => this.#cache.delete(id));
        while (this.#cache.size > cacheSize)
            this.#cache.delete(this.#cache.keys().next().value!);
        return projected;
    }

    async #project(id: string, image: PromptImage, param: string): Promise<ProjectedImage> {
        let parts;
        try {
            // libmtmd reads PNG, JPEG, GIF and BMP itself (stb_image, as llama.cpp's tools do); WebP is decoded here,
            // on a thread of its own.
            parts = await this.native.tokenize(image.mimeType === "image/webp" ? {...await decodeWebpInWorker(image.data), id} : {data: image.data});
        } catch (error) {
            throw new InvalidImageError(`The image (${image.mimeType}) could not be read: ${(error as Error).message}`, param);
        }
        const at = parts.findIndex((part) => part.type === "image");
        const imagePart = parts[at];
        if (imagePart?.type !== "image" || parts.filter((part) => part.type === "image").length !== 1)
            throw new InvalidImageError("The projector made no image tokens of the image", param);
        if (imagePart.nonCausal && imagePart.tokens > this.maxImageTokens)
            throw new InvalidImageError(`The image is ${imagePart.tokens} image tokens, and this model decodes at most ${this.maxImageTokens} at once. ` +
                "Send a smaller image.", param);
        const textOf = (list: typeof parts) => list.flatMap((part) => part.type === "text" ? [...part.tokens] as Token[] : []);
        return {
            id,
            placeholder: this.#placeholder(id),
            before: textOf(parts.slice(0, at)),
            after: textOf(parts.slice(at + 1)),
            tokens: imagePart.tokens,
            positions: imagePart.positions,
            chunk: imagePart.chunk
        };
    }

    /** From the image's sha256, so it needs no table that grows with every image: two images share one once in 2^48. */
    #placeholder(id: string): Token {
        return -(Number.parseInt(id.slice(0, 12), 16) + 1) as Token;
    }

    /** Frees the projector; call it once no generation evaluates its images. */
    close(): void {
        if (this.#closed)
            return;
        this.#closed = true;
        this.#cache.clear();
        this.native.close();
    }
}
