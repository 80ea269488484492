/**
 * The thread WebP images are decoded on (started by `decodeWebpInWorker`): libwebp in WebAssembly takes as long as
 * the image is large, and on the event loop it would hold up every other request meanwhile. Answers each
 * {@link WebpRequest} with a {@link WebpAnswer}, the pixels moved rather than copied.
 */
import {parentPort} from "node:worker_threads";
import {InvalidImageError} from "../errors.js";
import {decodeWebp} from "./decodeWebp.js";
import type {DecodedImage} from "./decodeWebp.js";

export type WebpRequest = {id: number, data: Uint8Array};
export type WebpAnswer = {id: number, image: DecodedImage} | {id: number, error: string, invalidImage: boolean};

parentPort!.on("message", ({id, data}: WebpRequest) => {
    let answer: WebpAnswer;
    try {
        answer = {id, image: decodeWebp(data)};
    } catch (error) {
        answer = {id, error: (error as Error).message, invalidImage: error instanceof InvalidImageError};
    }
    parentPort!.postMessage(answer, "image" in answer ? [answer.image.pixels.buffer as ArrayBuffer] : []);
});
