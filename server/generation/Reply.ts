import type {GenerationEvent, TokenLogprob, ToolCall} from "../../native/types.js";

export type DoneEvent = Extract<GenerationEvent, {type: "done"}>;

/** The request's stop string that ended the reply, if one did: not a stop of the template's own, nor the end of a turn. */
export function requestedStop(done: DoneEvent, stops: readonly string[]): string | null {
    return done.finishReason === "stop" && done.stopSequence != null && stops.includes(done.stopSequence) ? done.stopSequence : null;
}

/**
 * One generation's events folded into what it has said so far: the answer, the thinking, the tool calls (each
 * with its arguments as they have come) and, once it is done, why it ended and what it used. The pipeline keeps
 * one per generation, so an encoder reads what it needs (Ollama's complete calls, the final usage) from here.
 */
export class Reply {
    text = "";
    reasoning = "";
    readonly toolCalls: ToolCall[] = [];
    /** Of every text token, when log probabilities were asked for. */
    readonly logprobs: TokenLogprob[] = [];
    done: DoneEvent | undefined;

    add(event: GenerationEvent): void {
        switch (event.type) {
            case "text":
                this.text += event.text;
                if (event.logprobs != null)
                    this.logprobs.push(...event.logprobs);
                break;
            case "reasoning":
                this.reasoning += event.text;
                break;
            case "toolCall":
                this.toolCalls[event.index] = {id: event.id, name: event.name, arguments: ""};
                break;
            case "toolCallArguments": {
                const call = this.toolCalls[event.index];
                if (call != null)
                    call.arguments += event.text;
                break;
            }
            case "done":
                this.done = event;
                break;
        }
    }
}

/** A reply whose generation ran to its end. */
export type FinishedReply = Reply & {done: DoneEvent};

export function isFinished(reply: Reply): reply is FinishedReply {
    return reply.done != null;
}
