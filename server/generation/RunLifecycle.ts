import type {FastifyReply} from "fastify";
import type {GenerationContext} from "./GenerationRun.js";

/** What ended a run early: the server's request timeout, or the server starting to shut down. */
export type DeadlineKind = "timeout" | "shutdown";

/** What a run does at each turn of its life; the lifecycle decides when. */
export type RunHooks = {
    /** The request timeout passed, or the server started to shut down (at once, if it already has). */
    onDeadline(kind: DeadlineKind): void,
    /** The client went away before its reply was written whole. */
    onClientGone(): void,
    /** Frees what the run holds; called once. */
    free(): void
};

/**
 * What every run, local or upstream, does the same around its work: it watches the request timeout and the
 * shutdown, and the reply's connection closing, and it is released once, in {@link release}, whoever calls it
 * first: its reader at the end of the events, the connection closing, or a failed start. What each of those means
 * (ending generations early, cancelling a request upstream) is the run's own, in its {@link RunHooks}.
 */
export class RunLifecycle {
    readonly #reply: FastifyReply;
    readonly #free: () => void;
    readonly #onClose: () => void;
    readonly #stopDeadline: () => void;
    #released = false;

    constructor(context: Pick<GenerationContext, "shutdown" | "requestTimeoutMs">, reply: FastifyReply, {onDeadline, onClientGone, free}: RunHooks) {
        this.#reply = reply;
        this.#free = free;
        this.#stopDeadline = watchDeadline(context, onDeadline);
        this.#onClose = () => {
            if (!reply.raw.writableFinished)
                onClientGone();
            this.release();
        };
        reply.raw.once("close", this.#onClose);
    }

    get released(): boolean {
        return this.#released;
    }

    /** Stops watching and frees what the run holds. Idempotent. */
    release(): void {
        if (this.#released)
            return;
        this.#released = true;
        this.#stopDeadline();
        this.#reply.raw.off("close", this.#onClose);
        this.#free();
    }
}

/**
 * Calls `end` when the request timeout (`0`: none) passes or the server starts to shut down (at once, if it already
 * has). Returns what stops watching.
 */
function watchDeadline({shutdown, requestTimeoutMs}: Pick<GenerationContext, "shutdown" | "requestTimeoutMs">, end: (kind: DeadlineKind) => void): () => void {
    const onShutdown = () => end("shutdown");
    const timer = requestTimeoutMs > 0 ? setTimeout(() => end("timeout"), requestTimeoutMs) : undefined;
    timer?.unref();
    if (shutdown.aborted)
        onShutdown();
    else
        shutdown.addEventListener("abort", onShutdown, {once: true});
    return () => {
        clearTimeout(timer);
        shutdown.removeEventListener("abort", onShutdown);
    };
}
