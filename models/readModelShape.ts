import {stat} from "node:fs/promises";
import {HubError} from "./errors.js";
import {getFollowingRedirects} from "./getFollowingRedirects.js";
import {modelShapeOf} from "./modelShape.js";
import type {ModelShape} from "./modelShape.js";
import {parseSplitPart, splitPartPath} from "./quantization.js";
import {GGUF_HEADER_FIRST_READ_BYTES, parseGgufHeader, readGgufHeader} from "./readGgufHeader.js";
import type {GgufHeader} from "./readGgufHeader.js";

/** The header and size of a local GGUF file and, for the first part of a split model, of every other part, in order. */
export async function readGgufParts(path: string): Promise<{header: GgufHeader, fileSizeBytes: number}[]> {
    const read = async (file: string) => ({header: await readGgufHeader(file), fileSizeBytes: (await stat(file)).size});
    const first = await read(path);
    const parts = [first];
    const partCount = Number(first.header.metadata.get("split.count") ?? 1);
    if (partCount > 1 && parseSplitPart(path) != null) {
        for (let part = 2; part <= partCount; part++)
            parts.push(await read(splitPartPath(path, part, partCount)));
    }
    return parts;
}

/** The shape of a local model file, reading the header of every part of a split model. */
export async function readModelShape(path: string): Promise<ModelShape> {
    return modelShapeOf(await readGgufParts(path));
}

export type RemoteFile = {url: string, sizeBytes: number};

/**
 * The shape of a model on the Hub, before anything is downloaded: the header of each file (every part of a
 * split model) is read with `Range` requests, the first for 2 MB and more only when the header is longer.
 */
export async function readRemoteModelShape(files: readonly RemoteFile[], headersFor: (url: string) => Record<string, string>, signal?: AbortSignal): Promise<ModelShape> {
    const parts: {header: GgufHeader, fileSizeBytes: number}[] = [];
    for (const file of files)
        parts.push({header: await readRemoteGgufHeader(file, headersFor, signal), fileSizeBytes: file.sizeBytes});
    return modelShapeOf(parts);
}

async function readRemoteGgufHeader(file: RemoteFile, headersFor: (url: string) => Record<string, string>, signal?: AbortSignal): Promise<GgufHeader> {
    for (let length = Math.min(GGUF_HEADER_FIRST_READ_BYTES, file.sizeBytes); ; length = Math.min(length * 4, file.sizeBytes)) {
        const bytes = await readFirstBytes(file.url, length, headersFor, signal);
        const header = parseGgufHeader(bytes, bytes.length >= file.sizeBytes);
        if (header != null)
            return header;
        if (bytes.length < length)
            throw new HubError(`Reading the header of ${file.url} failed: the file ended after ${bytes.length} bytes`);
    }
}

/** The first `length` bytes of a file; a server that ignores `Range` is cut off once they have arrived. */
async function readFirstBytes(url: string, length: number, headersFor: (url: string) => Record<string, string>, signal?: AbortSignal): Promise<Buffer> {
    const answer = await getFollowingRedirects(url, (at) => ({...headersFor(at), range: `bytes=0-${length - 1}`}), signal);
    if (answer.status !== 200 && answer.status !== 206) {
        answer.body.resume();
        throw new HubError(`Reading the header of ${url} failed: HTTP ${answer.status}`, answer.status === 404 ? "file_not_found" : "hub_error");
    }
    const chunks: Buffer[] = [];
    let received = 0;
    try {
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
            chunks.push(chunk);
            received += chunk.byteLength;
            if (received >= length)
                break;
        }
    } finally {
        answer.body.destroy();
    }
    return Buffer.concat(chunks).subarray(0, length);
}
