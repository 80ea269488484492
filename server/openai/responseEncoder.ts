import {randomBytes} from "node:crypto";
import type {DoneEvent, Encoder, FinishedReply} from "../generation/index.js";
import {NAMED_SSE} from "../sse.js";
import type {ErrorReply} from "../errors.js";
import type {ResponseRequest} from "./responseSchemas.js";
import type {ResponseObject} from "./ResponseStore.js";
import {customInput} from "./responseTools.js";
import type {ResponseToolSet} from "./responseTools.js";

/** An id as OpenAI makes them: a prefix (`resp`, `msg`, `rs`, `fc`, `ctc`, `tsc`) and 48 hex digits. */
export function responseItemId(prefix: "resp" | "msg" | "rs" | "fc" | "ctc" | "tsc"): string {
    return `${prefix}_${randomBytes(24).toString("hex")}`;
}

type ItemStatus = "in_progress" | "completed" | "incomplete";
type OutputText = {type: "output_text", text: string, annotations: [], logprobs: []};
type ReasoningItem = {type: "reasoning", id: string, summary: {type: "summary_text", text: string}[], encrypted_content?: string};
type MessageItem = {type: "message", id: string, status: ItemStatus, role: "assistant", content: OutputText[]};
type FunctionCallItem = {type: "function_call", id: string, call_id: string, name: string, namespace?: string, arguments: string, status: ItemStatus};
type CustomToolCallItem = {type: "custom_tool_call", id: string, call_id: string, name: string, namespace?: string, input: string, status: ItemStatus};
/** A call of the `tool_search` the client runs: its arguments are an object, not a string of JSON. */
type ToolSearchCallItem = {type: "tool_search_call", id: string, call_id: string, execution: "client", arguments: unknown, status: ItemStatus};
export type OutputItem = ReasoningItem | MessageItem | FunctionCallItem | CustomToolCallItem | ToolSearchCallItem;
type CallItem = FunctionCallItem | CustomToolCallItem | ToolSearchCallItem;

function parsedArguments(text: string): unknown {
    try {
        return JSON.parse(text) as unknown;
    } catch {
        return {};
    }
}

/** The output item of a call the model made, in the kind of the tool it called; `text` is its arguments so far. */
function callItem(tools: ResponseToolSet, call: {id: string, name: string}, text: string, status: ItemStatus): CallItem {
    const offered = tools.offered(call.name);
    const namespace = offered.namespace != null ? {namespace: offered.namespace} : {};
    switch (offered.kind) {
        case "custom":
            return {type: "custom_tool_call", id: responseItemId("ctc"), call_id: call.id, name: offered.name, ...namespace, input: customInput({arguments: text}), status};
        case "tool_search":
            return {type: "tool_search_call", id: responseItemId("tsc"), call_id: call.id, execution: "client", arguments: parsedArguments(text), status};
        case "function":
            return {type: "function_call", id: responseItemId("fc"), call_id: call.id, name: offered.name, ...namespace, arguments: text, status};
    }
}

/** The request's settings as a response echoes them, with OpenAI's defaults where the request left them out. */
export function responseSettings(body: ResponseRequest, tools: ResponseToolSet): Record<string, unknown> {
    return {
        instructions: body.instructions ?? null,
        max_output_tokens: body.max_output_tokens ?? null,
        metadata: body.metadata ?? {},
        parallel_tool_calls: body.parallel_tool_calls ?? true,
        previous_response_id: body.previous_response_id ?? null,
        reasoning: {effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null},
        store: body.store ?? true,
        temperature: body.temperature ?? null,
        text: {format: body.text?.format ?? {type: "text"}},
        tool_choice: body.tool_choice ?? "auto",
        tools: tools.echoed,
        top_p: body.top_p ?? null,
        truncation: "disabled",
        background: false,
        error: null
    };
}

export type ResponseMeta = {
    id: string,
    /** Unix seconds. */
    createdAt: number,
    model: string,
    /** {@link responseSettings} of the request. */
    settings: Record<string, unknown>,
    /** The request's tools, which say what kind of item each call the model makes is. */
    tools: ResponseToolSet,
    /** Seals a reasoning item's text into its `encrypted_content`, where the request asked for it. */
    sealReasoning?: (text: string) => string,
    /** Called once with the finished response (to store it), before it is sent. */
    finished(response: ResponseObject): void
};

function outputText(items: readonly OutputItem[]): string {
    return items.flatMap((item) => item.type === "message" ? item.content.map((part) => part.text) : []).join("");
}

function usageOf(done: DoneEvent) {
    const {usage} = done;
    return {
        input_tokens: usage.promptTokens,
        input_tokens_details: {cached_tokens: usage.cachedPromptTokens},
        output_tokens: usage.completionTokens,
        output_tokens_details: {reasoning_tokens: usage.reasoningTokens},
        total_tokens: usage.promptTokens + usage.completionTokens
    };
}

/**
 * `/v1/responses` in OpenAI's shapes: a `response` object whose `output` lists what the model did in order (its
 * `reasoning`, its `message`, each `function_call`), or the Responses stream of named events, each with its
 * `sequence_number`: the response created and in progress, each output item added, filled by deltas and done,
 * then the response completed (or incomplete, when its tokens ran out) with everything in it.
 */
export function responseEncoder(meta: ResponseMeta): Encoder {
    const response = (status: string, output: readonly OutputItem[], done?: DoneEvent): ResponseObject => ({
        id: meta.id,
        object: "response",
        created_at: meta.createdAt,
        status,
        incomplete_details: status === "incomplete" ? {reason: "max_output_tokens"} : null,
        model: meta.model,
        output,
        output_text: outputText(output),
        usage: done != null ? usageOf(done) : null,
        ...meta.settings
    });
    const finish = (output: OutputItem[], done: DoneEvent): ResponseObject => {
        const incomplete = done.finishReason === "length";
        const finished = response(incomplete ? "incomplete" : "completed", output, done);
        meta.finished(finished);
        return finished;
    };
    return {
        stream: streamEncoder(meta, response, finish),
        body: (replies: readonly FinishedReply[]) => {
            const reply = replies[0]!;
            const incomplete = reply.done.finishReason === "length";
            const output: OutputItem[] = [];
            if (reply.reasoning !== "") {
                output.push({
                    type: "reasoning", id: responseItemId("rs"), summary: [{type: "summary_text", text: reply.reasoning}],
                    ...meta.sealReasoning != null ? {encrypted_content: meta.sealReasoning(reply.reasoning)} : {}
                });
            }
            if (reply.text !== "" || reply.toolCalls.length === 0) {
                output.push({
                    type: "message", id: responseItemId("msg"), status: incomplete ? "incomplete" : "completed", role: "assistant",
                    content: [{type: "output_text", text: reply.text, annotations: [], logprobs: []}]
                });
            }
            for (const call of reply.toolCalls)
                output.push(callItem(meta.tools, call, call.arguments, "completed"));
            return finish(output, reply.done);
        }
    };
}

type Open = {kind: "reasoning" | "message" | "call", outputIndex: number};

function streamEncoder(meta: ResponseMeta, response: (status: string, output: readonly OutputItem[]) => ResponseObject,
    finish: (output: OutputItem[], done: DoneEvent) => ResponseObject): NonNullable<Encoder["stream"]> {
    let sequence = 0;
    const output: OutputItem[] = [];
    /** The output index of each tool call, by the engine's call index. */
    const calls = new Map<number, number>();
    /** The arguments of a call other than a function's, as the model writes them (for a custom tool, JSON around its input), by output index. */
    const pendingArguments = new Map<number, string>();
    let open: Open | undefined;
    const event = (type: string, fields: object) => ({type, sequence_number: sequence++, ...fields});
    const snapshot = <T>(value: T): T => structuredClone(value);

    const add = (item: OutputItem, kind: Open["kind"]): unknown[] => {
        open = {kind, outputIndex: output.length};
        output.push(item);
        return [event("response.output_item.added", {output_index: open.outputIndex, item: snapshot(item)})];
    };
    /** Ends the open item with its `.done` events; `incomplete` when the tokens ran out in it. */
    const close = (incomplete: boolean): unknown[] => {
        if (open == null)
            return [];
        const outputIndex = open.outputIndex;
        const item = output[outputIndex]!;
        open = undefined;
        const at = {item_id: item.id, output_index: outputIndex};
        const chunks: unknown[] = [];
        if (item.type === "reasoning") {
            const part = item.summary[0]!;
            if (meta.sealReasoning != null)
                item.encrypted_content = meta.sealReasoning(part.text);
            chunks.push(
                event("response.reasoning_summary_text.done", {...at, summary_index: 0, text: part.text}),
                event("response.reasoning_summary_part.done", {...at, summary_index: 0, part: snapshot(part)}));
        } else if (item.type === "message") {
            const part = item.content[0]!;
            item.status = incomplete ? "incomplete" : "completed";
            chunks.push(
                event("response.output_text.done", {...at, content_index: 0, text: part.text, logprobs: []}),
                event("response.content_part.done", {...at, content_index: 0, part: snapshot(part)}));
        } else if (item.type === "function_call") {
            item.status = "completed";
            chunks.push(event("response.function_call_arguments.done", {...at, name: item.name, arguments: item.arguments}));
        } else if (item.type === "custom_tool_call") {
            // The input is known once the model's JSON around it is whole, so it comes as one delta.
            item.status = "completed";
            item.input = customInput({arguments: pendingArguments.get(outputIndex) ?? ""});
            chunks.push(
                event("response.custom_tool_call_input.delta", {...at, delta: item.input}),
                event("response.custom_tool_call_input.done", {...at, input: item.input}));
        } else if (item.type === "tool_search_call") {
            item.status = "completed";
            item.arguments = parsedArguments(pendingArguments.get(outputIndex) ?? "");
        }
        chunks.push(event("response.output_item.done", {output_index: outputIndex, item: snapshot(item)}));
        return chunks;
    };
    const openItem = (kind: "reasoning" | "message"): unknown[] => {
        if (open?.kind === kind)
            return [];
        const chunks = close(false);
        if (kind === "reasoning") {
            const item: ReasoningItem = {type: "reasoning", id: responseItemId("rs"), summary: []};
            chunks.push(...add(item, kind));
            const part = {type: "summary_text", text: ""} as const;
            item.summary.push({...part});
            chunks.push(event("response.reasoning_summary_part.added", {item_id: item.id, output_index: open!.outputIndex, summary_index: 0, part}));
        } else {
            const item: MessageItem = {type: "message", id: responseItemId("msg"), status: "in_progress", role: "assistant", content: []};
            chunks.push(...add(item, kind));
            const part: OutputText = {type: "output_text", text: "", annotations: [], logprobs: []};
            item.content.push(snapshot(part));
            chunks.push(event("response.content_part.added", {item_id: item.id, output_index: open!.outputIndex, content_index: 0, part}));
        }
        return chunks;
    };

    return {
        // Named events (`event: response.created`), with no `[DONE]` at the end.
        format: NAMED_SSE,
        start: () => [
            event("response.created", {response: response("in_progress", [])}),
            event("response.in_progress", {response: response("in_progress", [])})
        ],
        event: (_index, generated) => {
            switch (generated.type) {
                case "reasoning": {
                    const chunks = openItem("reasoning");
                    const item = output[open!.outputIndex] as ReasoningItem;
                    item.summary[0]!.text += generated.text;
                    chunks.push(event("response.reasoning_summary_text.delta", {item_id: item.id, output_index: open!.outputIndex, summary_index: 0, delta: generated.text}));
                    return chunks;
                }
                case "text": {
                    const chunks = openItem("message");
                    const item = output[open!.outputIndex] as MessageItem;
                    item.content[0]!.text += generated.text;
                    chunks.push(event("response.output_text.delta", {item_id: item.id, output_index: open!.outputIndex, content_index: 0, delta: generated.text, logprobs: []}));
                    return chunks;
                }
                case "toolCall": {
                    const chunks = close(false);
                    calls.set(generated.index, output.length);
                    const item = callItem(meta.tools, generated, "", "in_progress");
                    chunks.push(...add(item, "call"));
                    return chunks;
                }
                case "toolCallArguments": {
                    const outputIndex = calls.get(generated.index);
                    const item = outputIndex != null ? output[outputIndex] : undefined;
                    if (item?.type === "custom_tool_call" || item?.type === "tool_search_call") {
                        pendingArguments.set(outputIndex!, (pendingArguments.get(outputIndex!) ?? "") + generated.text);
                        return [];
                    }
                    if (item?.type !== "function_call")
                        return [];
                    item.arguments += generated.text;
                    return [event("response.function_call_arguments.delta", {item_id: item.id, output_index: outputIndex, delta: generated.text})];
                }
                case "done":
                    return close(generated.finishReason === "length");
            }
        },
        end: (replies) => {
            const finished = finish(output, replies[0]!.done);
            return [event(finished.status === "incomplete" ? "response.incomplete" : "response.completed", {response: finished})];
        },
        error: ({body}: ErrorReply) => {
            const failed = {...response("failed", output), error: {code: body.error.code ?? body.error.type, message: body.error.message}};
            return [
                event("error", {code: body.error.code, message: body.error.message, param: body.error.param}),
                event("response.failed", {response: failed})
            ];
        }
    };
}
