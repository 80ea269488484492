import net from "node:net";

export type UploadOptions = {
    /** The `Content-Length` sent; undefined sends the body chunked. */
    declaredBytes?: number,
    /** Bytes of body written, in 64 KiB chunks of one reused buffer (so the client holds no body), each after the socket drained. */
    sendBytes: number,
    /** Sends `Expect: 100-continue` and writes the body only after the server's `100 Continue`. */
    expectContinue?: boolean,
    /** Writes the body only once the answer's head has come, which shows the answer did not wait for the body. */
    bodyAfterAnswer?: boolean,
    /** A connection an earlier upload left open, to send this request on. */
    socket?: net.Socket
};

export type UploadOutcome = {
    status?: number,
    body?: string,
    /** Whether the server sent `100 Continue`. */
    continued: boolean,
    /** Body bytes handed to the socket before the upload ended or failed. */
    sentBytes: number,
    /** Body bytes already handed to the socket when the response's head came. */
    sentBytesAtResponse?: number,
    /** The socket's error (`EPIPE`, `ECONNRESET`) if the connection failed, `closed` if the server closed it mid-upload. */
    errorCode?: string,
    socket: net.Socket
};

const CHUNK = Buffer.alloc(64 * 1024, "x");

/**
 * POSTs a body over a plain socket and goes on writing all of it whatever the server answers meanwhile, as a client
 * that does not watch for an early answer would (fetch stops; Node's own client stalls): it shows how much of a body
 * the server reads and whether the connection survives. Resolves once the response has been read and the upload has
 * ended, either way.
 */
export function rawUpload(url: string, {declaredBytes, sendBytes, expectContinue = false, bodyAfterAnswer = false, socket: given}: UploadOptions): Promise<UploadOutcome> {
    const {hostname, port, pathname, host} = new URL(url);
    const socket = given ?? net.connect(Number(port), hostname);
    return new Promise((resolve) => {
        const outcome: UploadOutcome = {continued: false, sentBytes: 0, socket};
        let responded = false;
        let uploaded = false;
        let received = Buffer.alloc(0);
        let bodyBytes: number | undefined;
        const finish = () => {
            if (!responded || !uploaded)
                return;
            socket.off("data", onData);
            socket.off("error", onError);
            socket.off("close", onClose);
            resolve(outcome);
        };
        const onData = (data: Buffer) => {
            received = Buffer.concat([received, data]);
            for (;;) {
                if (bodyBytes == null) {
                    const headEnd = received.indexOf("\r\n\r\n");
                    if (headEnd < 0)
                        return;
                    const head = received.subarray(0, headEnd).toString("latin1");
                    received = received.subarray(headEnd + 4);
                    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
                    if (status === 100) {
                        outcome.continued = true;
                        writeBody();
                        continue;
                    }
                    outcome.status = status;
                    outcome.sentBytesAtResponse = outcome.sentBytes;
                    bodyBytes = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
                    // Answered before the body was asked for: the client never sends it.
                    if (expectContinue && !outcome.continued)
                        uploaded = true;
                    else if (bodyAfterAnswer)
                        writeBody();
                }
                if (received.length < bodyBytes)
                    return;
                outcome.body = received.subarray(0, bodyBytes).toString("utf8");
                responded = true;
                finish();
                return;
            }
        };
        const onError = (error: NodeJS.ErrnoException) => {
            outcome.errorCode ??= error.code ?? error.message;
        };
        const onClose = () => {
            if (!uploaded)
                outcome.errorCode ??= "closed";
            responded = true;
            uploaded = true;
            finish();
        };
        socket.on("data", onData);
        socket.on("error", onError);
        socket.on("close", onClose);

        const chunked = declaredBytes == null;
        const uploadDone = () => {
            uploaded = true;
            finish();
        };
        const writeBody = () => {
            while (!socket.destroyed) {
                const chunk = CHUNK.subarray(0, Math.min(CHUNK.length, sendBytes - outcome.sentBytes));
                outcome.sentBytes += chunk.length;
                const last = outcome.sentBytes >= sendBytes;
                const framed = chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from(last ? "\r\n0\r\n\r\n" : "\r\n")]) : chunk;
                if (last) {
                    socket.write(framed, uploadDone);
                    return;
                }
                if (!socket.write(framed)) {
                    socket.once("drain", writeBody);
                    return;
                }
            }
        };
        const headers = [`POST ${pathname} HTTP/1.1`, `host: ${host}`, "content-type: application/json",
            chunked ? "transfer-encoding: chunked" : `content-length: ${declaredBytes}`, ...expectContinue ? ["expect: 100-continue"] : []];
        socket.write(`${headers.join("\r\n")}\r\n\r\n`);
        if (!expectContinue && !bodyAfterAnswer)
            writeBody();
    });
}
