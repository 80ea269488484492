import type {IncomingMessage} from "node:http";
import type {FastifyError, FastifyInstance} from "fastify";

/** How much of a refused body is still read, so that its client gets to read the 413, before its connection is cut. */
export type LingerLimits = {
    /** Bytes of the body read and thrown away after the refusal. Defaults to 256 MiB. */
    bytes: number,
    /** How long after the refusal the rest of the body may take. Defaults to 30 seconds. */
    ms: number
};

export const DEFAULT_LINGER: LingerLimits = {bytes: 256 * 1024 * 1024, ms: 30_000};

export function isBodyTooLarge(error: unknown): boolean {
    return (error as Partial<FastifyError> | null)?.code === "FST_ERR_CTP_BODY_TOO_LARGE";
}

/**
 * Refuses bodies over Fastify's `bodyLimit` so that the client reads the 413. Fastify answers as soon as it knows
 * (a `Content-Length` over the limit, before any of the body is read) and marks the connection to be closed; closing
 * it while the client is still uploading resets it, and the client's next write fails (`EPIPE`) before it has read
 * the answer. So, as nginx's lingering close does, the rest of the body is read and thrown away, up to `linger`'s
 * bounds, and the connection stays open for the client to close or reuse. A client that sends
 * `Expect: 100-continue` is answered before it sends the body at all.
 */
export function limitRequestBodies(app: FastifyInstance, {limitBytes, linger = DEFAULT_LINGER}: {limitBytes: number, linger?: LingerLimits}): void {
    app.server.on("checkContinue", (request: IncomingMessage, response) => {
        // What Node does without this listener, except for a body the limit refuses: no "100 Continue", so the client
        // waits for the 413 instead of uploading (Node then closes the connection after it, as the body never came).
        if (!(Number(request.headers["content-length"]) > limitBytes))
            response.writeContinue();
        app.server.emit("request", request, response);
    });
    // onError runs only for replies that are errors, before the error handler words the 413: no cost to other requests.
    app.addHook("onError", (request, reply, error, done) => {
        if (isBodyTooLarge(error) && !request.raw.complete) {
            reply.removeHeader("connection");
            discardRest(request.raw, linger);
        }
        done();
    });
}

/**
 * Reads the rest of a refused request's body into nothing: nothing is kept, so memory stays flat however much comes.
 * Past `bytes` or `ms` the connection is cut. Reading from here on also keeps Node from dumping the body once the
 * reply is sent, which would drop it before it could be counted.
 */
function discardRest(request: IncomingMessage, {bytes, ms}: LingerLimits): void {
    let discardedBytes = 0;
    const cut = () => request.socket.destroy();
    const timer = setTimeout(cut, ms);
    timer.unref();
    const count = (chunk: Buffer) => {
        discardedBytes += chunk.length;
        if (discardedBytes > bytes)
            cut();
    };
    const stop = () => {
        clearTimeout(timer);
        request.off("data", count);
    };
    request.on("data", count);
    request.once("end", stop);
    request.once("close", stop);
    request.resume();
}
