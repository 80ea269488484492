import type {GenerationContext} from "./GenerationRun.js";

/** What ended a run early: the server's request timeout, or the server starting to shut down. */
export type DeadlineKind = "timeout" | "shutdown";

/**
 * Calls `end` when the request timeout (`0`: none) passes or the server starts to shut down (at once, if it already
 * has); a run that ends early, local or upstream, decides what that means for it. Returns what stops watching.
 */
export function watchDeadline({shutdown, requestTimeoutMs}: Pick<GenerationContext, "shutdown" | "requestTimeoutMs">, end: (kind: DeadlineKind) => void): () => void {
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
