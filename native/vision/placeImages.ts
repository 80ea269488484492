import type {Token} from "node-llama-cpp";
import type {MarkedTokens} from "../chat/ChatFormat.js";
import type {ProjectedImage} from "./ImageProjector.js";

/** An image in a sequence's tokens: its placeholders run from `start` for `image.positions` tokens. */
export type PlacedImage = {start: number, image: ProjectedImage};

/** A prompt's tokens with its images in place: each image's own text around `positions` placeholder tokens. */
export function placeImages(marked: MarkedTokens, images: readonly ProjectedImage[]): {tokens: Token[], images: PlacedImage[]} {
    const tokens: Token[] = [];
    const placed: PlacedImage[] = [];
    let from = 0;
    marked.imageMarks.forEach((mark, index) => {
        const image = images[index]!;
        tokens.push(...marked.tokens.slice(from, mark), ...image.before);
        placed.push({start: tokens.length, image});
        for (let position = 0; position < image.positions; position++)
            tokens.push(image.placeholder);
        tokens.push(...image.after);
        from = mark;
    });
    tokens.push(...marked.tokens.slice(from));
    return {tokens, images: placed};
}

/** The longest prefix of `length` tokens that ends outside every image: a cache never keeps part of an image. */
export function prefixOutsideImages(length: number, images: readonly PlacedImage[]): number {
    for (const {start, image} of images)
        if (start < length && length < start + image.positions)
            return start;
    return length;
}

/** A prompt's length as llama.cpp counts it: its positions, plus what its images have in tokens beyond their positions (M-RoPE). */
export function promptTokenCount(tokens: readonly unknown[], images: readonly PlacedImage[]): number {
    return tokens.length + images.reduce((extra, {image}) => extra + image.tokens - image.positions, 0);
}
