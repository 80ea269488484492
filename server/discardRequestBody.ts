import type {IncomingMessage} from "node:http";

/**
 * Reads and throws away what is left of a request's body, for at most `maxMs` and while it keeps coming (`idleMs`),
 * as nginx's lingering close does: a reply sent while a large upload is still running, followed by closing the
 * connection, reaches the client as a broken pipe instead of the reply (Node's fetch sees EPIPE most of the time).
 */
export function discardRequestBody(request: IncomingMessage, {maxMs = 30_000, idleMs = 5_000}: {maxMs?: number, idleMs?: number} = {}): Promise<void> {
    if (request.complete || request.destroyed)
        return Promise.resolve();
    return new Promise((resolve) => {
        let idle: NodeJS.Timeout;
        const done = () => {
            clearTimeout(total);
            clearTimeout(idle);
            request.off("data", onData);
            request.off("end", done);
            request.off("close", done);
            request.off("error", done);
            resolve();
        };
        const onData = () => {
            clearTimeout(idle);
            idle = setTimeout(done, idleMs);
        };
        const total = setTimeout(done, maxMs);
        idle = setTimeout(done, idleMs);
        request.on("data", onData);
        request.once("end", done);
        request.once("close", done);
        request.once("error", done);
        request.resume();
    });
}
