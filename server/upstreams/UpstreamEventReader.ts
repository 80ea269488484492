import {StringDecoder} from "node:string_decoder";
import {newToolCallId} from "../../native/toolCalls.js";
import type {FinishReason, GenerationEvent, Timings, Usage} from "../../native/types.js";
import type {DoneEvent} from "../generation/index.js";
import {SseLines} from "../SseLines.js";
import {UpstreamStreamBrokenError} from "./errors.js";
import {MAX_EVENT_BYTES} from "./SseRelay.js";

/** The part of a `chat.completion.chunk` (or a legacy `text_completion` chunk) that is read. */
type Chunk = {
    error?: {message?: unknown},
    choices?: {
        index?: number,
        text?: string | null,
        delta?: {
            content?: string | null,
            reasoning_content?: string | null,
            reasoning?: string | null,
            tool_calls?: {index?: number, id?: string | null, function?: {name?: string | null, arguments?: string | null}}[] | null
        },
        finish_reason?: string | null,
        /** vLLM's (and Hearth's): the stop string that ended the reply, or the id of a stop token. */
        stop_reason?: string | number | null
    }[],
    usage?: {
        prompt_tokens?: number,
        completion_tokens?: number,
        prompt_tokens_details?: {cached_tokens?: number} | null,
        completion_tokens_details?: {reasoning_tokens?: number} | null
    } | null,
    /** llama-server's and Hearth's own. */
    timings?: {prompt_ms?: number, predicted_ms?: number, queue_ms?: number}
};

/**
 * Reads an upstream's stream of OpenAI chunks as the engine's events: `delta.content` (or a completion's `text`)
 * is text, `delta.reasoning_content` (or `reasoning`) is thinking, each new `delta.tool_calls` index a call whose
 * `arguments` pieces follow, and the finish reason (with the stop string that ended it, where the upstream names it
 * in `stop_reason` as vLLM and Hearth do) and the usage of the last chunk make the `done` event that {@link end} returns last. Only the first choice is read: the request asks for one.
 */
export class UpstreamEventReader {
    readonly #upstream: string;
    readonly #startedMs: number;
    readonly #decoder = new StringDecoder("utf8");
    readonly #lines = new SseLines();
    /** Each call's index upstream -> its index here, in the order they came. */
    readonly #calls = new Map<number, number>();
    #finishReason: string | undefined;
    #stopSequence: string | undefined;
    #usage: Chunk["usage"];
    #timings: Chunk["timings"];
    /** Chunks that carried a piece of the reply: its length in tokens when the upstream sends no usage (one token a chunk, as llama-server, vLLM and Hearth stream). */
    #pieces = 0;
    #firstTokenMs: number | undefined;
    #lastTokenMs: number | undefined;
    #ended = false;
    /** An error event that came after other events in the same bytes: thrown once those are passed on. */
    #failure: Error | undefined;

    /** `startedMs`: when the request was sent, so a reply without `timings` is timed as it arrived here. */
    constructor(upstream: string, startedMs: number) {
        this.#upstream = upstream;
        this.#startedMs = startedMs;
    }

    /**
     * The events of every line that `bytes` completes. Throws an error event the upstream sent, or an event too long
     * to be one; the events before it in the same bytes are returned first, and it is thrown at the next call.
     */
    push(bytes: Buffer): GenerationEvent[] {
        this.#throwFailure();
        const events: GenerationEvent[] = [];
        for (const line of this.#lines.push(this.#decoder.write(bytes))) {
            try {
                events.push(...this.#line(line));
            } catch (error) {
                if (events.length === 0)
                    throw error;
                this.#failure = error as Error;
                return events;
            }
        }
        if (this.#lines.rest.length > MAX_EVENT_BYTES)
            throw new UpstreamStreamBrokenError(this.#upstream, `an event over ${MAX_EVENT_BYTES / 1024 / 1024} MiB`);
        return events;
    }

    /** Once the stream has ended: the events of a last line without its line end, then `done`. Throws when it ended before the reply did. */
    end(): [...GenerationEvent[], DoneEvent] {
        this.#throwFailure();
        const rest = (this.#lines.takeRest() + this.#decoder.end()).trim();
        const events = rest !== "" ? this.#line(rest) : [];
        if (this.#finishReason == null)
            throw new UpstreamStreamBrokenError(this.#upstream, "its stream ended before the reply did (no finish_reason)");
        const finishReason = this.#reason();
        const stopSequence = finishReason === "stop" ? this.#stopSequence : undefined;
        return [...events, {type: "done", finishReason, ...stopSequence != null ? {stopSequence} : {}, usage: this.#usageOf(), timings: this.#timingsOf()}];
    }

    /**
     * The `done` of a reply cut short here (the request timeout, a shutdown's drain ending) while it streamed: it
     * ended as if its tokens ran out, as a local reply does, with the tokens that came counted a chunk each.
     */
    cutShort(): DoneEvent {
        return {type: "done", finishReason: "length", usage: this.#usageOf(), timings: this.#timingsOf()};
    }

    #throwFailure(): void {
        if (this.#failure != null)
            throw this.#failure;
    }

    #line(line: string): GenerationEvent[] {
        if (!line.startsWith("data:") || this.#ended)
            return [];
        const data = line.slice(5).trim();
        if (data === "[DONE]") {
            this.#ended = true;
            return [];
        }
        let chunk: Chunk;
        try {
            chunk = JSON.parse(data) as Chunk;
        } catch {
            throw new UpstreamStreamBrokenError(this.#upstream, `an event that is not JSON: ${data.slice(0, 200)}`);
        }
        if (chunk.error != null)
            throw new UpstreamStreamBrokenError(this.#upstream, typeof chunk.error.message === "string" ? chunk.error.message : JSON.stringify(chunk.error).slice(0, 500));
        if (chunk.usage != null)
            this.#usage = chunk.usage;
        if (chunk.timings != null)
            this.#timings = chunk.timings;
        const choice = chunk.choices?.find((entry) => (entry.index ?? 0) === 0);
        if (choice == null)
            return [];
        if (choice.finish_reason != null)
            this.#finishReason = choice.finish_reason;
        if (typeof choice.stop_reason === "string")
            this.#stopSequence = choice.stop_reason;
        const events = this.#choiceEvents(choice);
        if (events.length > 0) {
            this.#pieces += 1;
            this.#firstTokenMs ??= performance.now();
            this.#lastTokenMs = performance.now();
        }
        return events;
    }

    #choiceEvents(choice: NonNullable<Chunk["choices"]>[number]): GenerationEvent[] {
        const events: GenerationEvent[] = [];
        const delta = choice.delta ?? {};
        const reasoning = delta.reasoning_content ?? delta.reasoning;
        if (reasoning != null && reasoning !== "")
            events.push({type: "reasoning", text: reasoning});
        const text = delta.content ?? choice.text;
        if (text != null && text !== "")
            events.push({type: "text", text});
        for (const call of delta.tool_calls ?? []) {
            const upstreamIndex = call.index ?? 0;
            let index = this.#calls.get(upstreamIndex);
            if (index == null) {
                index = this.#calls.size;
                this.#calls.set(upstreamIndex, index);
                events.push({type: "toolCall", index, id: call.id ?? newToolCallId(), name: call.function?.name ?? ""});
            }
            const piece = call.function?.arguments;
            if (piece != null && piece !== "")
                events.push({type: "toolCallArguments", index, text: piece});
        }
        return events;
    }

    /** A reply with calls ended to call them, whatever finish reason the upstream wrote (some write `stop`). */
    #reason(): FinishReason {
        if (this.#finishReason === "length")
            return "length";
        if (this.#calls.size > 0 || this.#finishReason === "tool_calls" || this.#finishReason === "function_call")
            return "tool_calls";
        return "stop";
    }

    #usageOf(): Usage {
        const usage = this.#usage;
        return {
            promptTokens: usage?.prompt_tokens ?? 0,
            completionTokens: usage?.completion_tokens ?? this.#pieces,
            cachedPromptTokens: usage?.prompt_tokens_details?.cached_tokens ?? 0,
            reasoningTokens: usage?.completion_tokens_details?.reasoning_tokens ?? 0
        };
    }

    /** The upstream's own timings when it sends them (llama-server, Hearth), else as the reply arrived here. */
    #timingsOf(): Timings {
        const timings = this.#timings;
        if (timings?.prompt_ms != null && timings.predicted_ms != null)
            return {promptMs: timings.prompt_ms, generationMs: timings.predicted_ms, queueMs: timings.queue_ms ?? 0};
        const first = this.#firstTokenMs ?? performance.now();
        return {promptMs: first - this.#startedMs, generationMs: (this.#lastTokenMs ?? first) - first, queueMs: 0};
    }
}
