import {IMAGE_PLACEHOLDER} from "../../native/types.js";
import type {PromptImage} from "../../native/types.js";

export type MessagePart = {text: string} | {image: PromptImage};

/**
 * A message's parts, text and images in the order the client sent them, as the engine takes them: the text with
 * one IMAGE_PLACEHOLDER where each image was, and the images in that order. A placeholder in the client's own text
 * is removed, so each placeholder is one image. `separator` goes between text parts (Anthropic's blocks are
 * paragraphs; OpenAI's parts run on).
 */
export function joinImageParts(parts: readonly MessagePart[], separator = ""): {content: string, images?: PromptImage[]} {
    const images: PromptImage[] = [];
    let content = "";
    let previous: "text" | "image" | undefined;
    for (const part of parts) {
        if ("image" in part) {
            images.push(part.image);
            content += IMAGE_PLACEHOLDER;
            previous = "image";
            continue;
        }
        if (previous === "text")
            content += separator;
        content += stripPlaceholders(part.text);
        previous = "text";
    }
    return images.length > 0 ? {content, images} : {content};
}

export function stripPlaceholders(text: string): string {
    return text.includes(IMAGE_PLACEHOLDER) ? text.replaceAll(IMAGE_PLACEHOLDER, "") : text;
}
