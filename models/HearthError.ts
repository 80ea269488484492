/**
 * The base of Hearth's own errors, shared by the library and the engine: a message a person can act on, a stable
 * machine-readable `code`, and the request field at fault when there is one. It says nothing of HTTP: `server/`
 * maps each error class to a status and to each API's error shape.
 */
export class HearthError extends Error {
    override readonly name: string = "HearthError";
    readonly code: string;
    readonly param: string | null;

    constructor(message: string, {code, param = null}: {code: string, param?: string | null}) {
        super(message);
        this.code = code;
        this.param = param;
    }
}
