import type {Encoder, FinishedReply, Reply, Run} from "../generation/index.js";
import {NDJSON} from "../sse.js";
import {doneFields, toOllamaToolCall} from "./translate.js";

/** The part of a line that differs between /api/chat (`message`) and /api/generate (`response`, `thinking`). */
type Payload = (reply: {text: string, reasoning: string, toolCalls: Reply["toolCalls"]}) => object;

const chatPayload: Payload = ({text, reasoning, toolCalls}) => ({message: {
    role: "assistant",
    content: text,
    ...reasoning !== "" ? {thinking: reasoning} : {},
    ...toolCalls.length > 0 ? {tool_calls: toolCalls.map(toOllamaToolCall)} : {}
}});

const generatePayload: Payload = ({text, reasoning}) => ({response: text, ...reasoning !== "" ? {thinking: reasoning} : {}});

const nothing = {text: "", reasoning: "", toolCalls: []};

/**
 * Ollama's replies: one JSON object, or NDJSON lines, one per piece of the answer or of the thinking (a line's
 * `thinking` piece comes with empty content), then one with the tool calls, complete with their arguments as
 * objects, once the reply is done (Ollama returns calls whole), then a last line with the statistics.
 */
function ollamaEncoder(run: Run, model: string, payload: Payload): Encoder {
    const clock = {startedMs: run.startedMs, loadMs: run.loadMs};
    const line = (piece: Parameters<Payload>[0], done: boolean) => ({model, created_at: new Date().toISOString(), ...payload(piece), done});
    const last = (reply: FinishedReply, piece: Parameters<Payload>[0]) => ({...line(piece, true), ...doneFields(reply.done, clock)});
    return {
        stream: {
            format: NDJSON,
            event: (_index, event) => {
                if (event.type === "text")
                    return [line({...nothing, text: event.text}, false)];
                if (event.type === "reasoning")
                    return [line({...nothing, reasoning: event.text}, false)];
                return [];
            },
            end: ([reply]) => [
                ...reply!.toolCalls.length > 0 ? [line({...nothing, toolCalls: reply!.toolCalls}, false)] : [],
                last(reply!, nothing)
            ],
            error: ({body}) => [{error: body.error.message}]
        },
        body: ([reply]) => last(reply!, reply!)
    };
}

/** `/api/chat`: the reply in `message` (`content`, `thinking`, `tool_calls`). */
export const chatEncoder = (run: Run, model: string): Encoder => ollamaEncoder(run, model, chatPayload);

/** `/api/generate`: the reply in `response`, the thinking in `thinking`. */
export const generateEncoder = (run: Run, model: string): Encoder => ollamaEncoder(run, model, generatePayload);

/** The line of a request that only loaded or unloaded the model. */
export function loadOnlyLine(model: string, api: "chat" | "generate", doneReason: "load" | "unload"): object {
    return {model, created_at: new Date().toISOString(), ...(api === "chat" ? chatPayload : generatePayload)(nothing), done: true, done_reason: doneReason};
}
