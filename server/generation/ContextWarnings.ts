import type {FastifyBaseLogger} from "fastify";
import type {ContextOverflowError} from "../../native/errors.js";
import {agentContextsText} from "../agentContexts.js";

/**
 * Tells the person running the server, once per model and slot size, that a client's prompt did not fit a slot and
 * how to give it more: the client only sees its 400, and an agent that retries after compacting may never say why.
 */
export class ContextWarnings {
    readonly #warned = new Set<string>();

    /** Logs the warning for a refused prompt, the first time its model's slots refuse one. */
    promptTooLong(error: ContextOverflowError, log: FastifyBaseLogger): void {
        if (error.model == null)
            return;
        const key = `${error.model}\n${error.contextTokens}`;
        if (this.#warned.has(key))
            return;
        this.#warned.add(key);
        log.warn({model: error.model, promptTokens: error.promptTokens, contextTokens: error.contextTokens},
            `A ${error.promptTokens.toLocaleString("en-US")}-token prompt does not fit the slots of ${error.model}, which hold ` +
            `${error.contextTokens.toLocaleString("en-US")} tokens each; it was refused. Give each slot more context: a larger ` +
            "--ctx-size, fewer --parallel slots (with --ctx-size auto, the memory is shared among fewer slots), or " +
            `--kv-cache-type q8_0 (about 1.9x the context in the same memory). Coding agents need ${agentContextsText()}. (Logged once per model.)`);
    }
}
