import {InvalidRequestError} from "../../native/errors.js";
import type {PromptImage} from "../../native/types.js";
import type {ImageReader} from "../images/index.js";
import type {ImageSourceParam, MessageParam} from "./anthropicSchemas.js";

/** The images of a request's `image` blocks, by block: the translation finds each one where its block is, after any context edit. */
export type MessageImages = ReadonlyMap<object, PromptImage>;

/**
 * Reads every `image` block of the user turns, at the top level and inside `tool_result` blocks (a tool's
 * screenshot), checked against its `media_type`; a `url` source is fetched only where the server allows it. A
 * `file` source (Anthropic's Files API) is refused: this server keeps no files.
 */
export async function readMessageImages(messages: readonly MessageParam[], reader: ImageReader, signal?: AbortSignal): Promise<MessageImages> {
    const pending: Promise<[object, PromptImage]>[] = [];
    const read = (block: {source?: ImageSourceParam}, param: string) => {
        pending.push(imageOf(block.source, param, reader, signal).then((image) => [block, image]));
    };
    messages.forEach((message, messageIndex) => {
        if (message.role !== "user" || typeof message.content === "string" || message.content == null)
            return;
        message.content.forEach((block, index) => {
            const param = `messages[${messageIndex}].content[${index}]`;
            if (block.type === "image")
                read(block, param);
            else if (block.type === "tool_result" && Array.isArray(block.content))
                block.content.forEach((inner, innerIndex) => {
                    if (inner.type === "image")
                        read(inner, `${param}.content[${innerIndex}]`);
                });
        });
    });
    return new Map(await Promise.all(pending));
}

async function imageOf(source: ImageSourceParam | undefined, param: string, reader: ImageReader, signal?: AbortSignal): Promise<PromptImage> {
    if (source == null)
        throw new InvalidRequestError(`${param} is an image block without its source`, `${param}.source`);
    switch (source.type) {
        case "base64":
            if (source.data == null || source.media_type == null)
                throw new InvalidRequestError(`${param}.source is a base64 source without its ${source.data == null ? "data" : "media_type"}`, `${param}.source`);
            return reader.fromBase64(source.data, param, source.media_type);
        case "url":
            if (source.url == null)
                throw new InvalidRequestError(`${param}.source is a url source without its url`, `${param}.source.url`);
            return reader.fromUrl(source.url, param, signal);
        case "file":
            throw new InvalidRequestError(`${param} refers to the file ${source.file_id ?? ""}; this server keeps no files: send the image as a base64 source`, `${param}.source`);
        default:
            throw new InvalidRequestError(`${param}.source is of type "${source.type}"; this server reads base64 and url sources`, `${param}.source.type`);
    }
}
