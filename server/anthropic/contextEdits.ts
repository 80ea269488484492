import {InvalidRequestError} from "../../native/errors.js";
import type {ContentBlock, ContextManagementParam, MessageParam} from "./anthropicSchemas.js";

/**
 * `context_management.edits`, applied to the conversation before it is rendered, as Anthropic applies them on its
 * side (the client keeps its full history and sends it every time): `clear_thinking_20251015` drops the thinking of
 * earlier assistant turns, `clear_tool_uses_20250919` replaces old tool results with a placeholder once the prompt
 * grows past its trigger. Edits of other types (`compact_…`) are ignored.
 */

export type AppliedEdit =
    | {type: "clear_thinking_20251015", cleared_thinking_turns: number, cleared_input_tokens: number}
    | {type: "clear_tool_uses_20250919", cleared_tool_uses: number, cleared_input_tokens: number};

export type EditedMessages = {messages: MessageParam[], applied: AppliedEdit[]};

/**
 * The prompt's length in tokens for these messages, as its usage will count it (its images' tokens too, which only the
 * model's projector knows); absent where no tokenizer is at hand (an upstream's model).
 */
export type CountTokens = (messages: readonly MessageParam[]) => Promise<number>;

/** What replaces a cleared tool result, so the model knows something was there. */
export const CLEARED_TOOL_RESULT = "[This tool result was cleared to save context.]";

type Threshold = {type: string, value: number};

function threshold(edit: Record<string, unknown>, field: string, types: readonly string[], index: number): Threshold | undefined {
    const value = edit[field];
    if (value == null)
        return undefined;
    const param = `context_management.edits[${index}].${field}`;
    if (typeof value !== "object" || !types.includes((value as Threshold).type) || !Number.isInteger((value as Threshold).value) || (value as Threshold).value < 0)
        throw new InvalidRequestError(`${param} must be {"type": ${types.map((type) => `"${type}"`).join(" or ")}, "value": a whole number}`, param);
    return value as Threshold;
}

const blocksOf = (message: MessageParam): readonly ContentBlock[] =>
    typeof message.content === "string" ? [{type: "text", text: message.content}] : message.content ?? [];

const isThinking = (block: ContentBlock) => block.type === "thinking" || block.type === "redacted_thinking";

/** How many of the latest assistant turns with thinking keep it: `keep` is `"all"`, `{type: "all"}` or `{type: "thinking_turns", value}` (1 by default). */
function thinkingTurnsKept(edit: Record<string, unknown>, index: number): number {
    const keep = edit.keep;
    if (keep === "all" || (typeof keep === "object" && keep != null && (keep as {type?: unknown}).type === "all"))
        return Infinity;
    return threshold(edit, "keep", ["thinking_turns"], index)?.value ?? 1;
}

function clearThinking(messages: MessageParam[], kept: number): {messages: MessageParam[], cleared: number} {
    const withThinking = messages.flatMap((message, index) => message.role === "assistant" && blocksOf(message).some(isThinking) ? [index] : []);
    const cleared = new Set(withThinking.slice(0, Math.max(0, withThinking.length - kept)));
    if (cleared.size === 0)
        return {messages, cleared: 0};
    return {
        messages: messages.map((message, index) => cleared.has(index) ? {...message, content: blocksOf(message).filter((block) => !isThinking(block))} : message),
        cleared: cleared.size
    };
}

/** The tool uses (in order) that `clear_tool_uses_20250919` may clear: all but the last `keep` (3 by default) and those of `exclude_tools`. */
function clearableToolUses(messages: readonly MessageParam[], edit: Record<string, unknown>, index: number): {all: number, clearable: {id: string, name: string}[]} {
    const uses = messages.flatMap((message) => message.role === "assistant"
        ? blocksOf(message).flatMap((block) => block.type === "tool_use" && block.id != null ? [{id: block.id, name: block.name ?? ""}] : [])
        : []);
    const keep = threshold(edit, "keep", ["tool_uses"], index)?.value ?? 3;
    const excluded = Array.isArray(edit.exclude_tools) ? edit.exclude_tools : [];
    return {all: uses.length, clearable: uses.slice(0, Math.max(0, uses.length - keep)).filter((use) => !excluded.includes(use.name))};
}

function clearToolUses(messages: MessageParam[], uses: readonly {id: string, name: string}[], clearInputs: unknown): MessageParam[] {
    const ids = new Set(uses.map((use) => use.id));
    const inputsCleared = (name: string) => clearInputs === true || (Array.isArray(clearInputs) && clearInputs.includes(name));
    return messages.map((message) => {
        if (typeof message.content === "string" || message.content == null)
            return message;
        const content = message.content.map((block): ContentBlock => {
            if (block.type === "tool_result" && block.tool_use_id != null && ids.has(block.tool_use_id))
                return {...block, content: CLEARED_TOOL_RESULT};
            if (block.type === "tool_use" && block.id != null && ids.has(block.id) && inputsCleared(block.name ?? ""))
                return {...block, input: {}};
            return block;
        });
        return {...message, content};
    });
}

/**
 * The conversation with the request's edits applied, and the edits that changed it (for the reply's
 * `context_management.applied_edits`). Without `count`, the token thresholds cannot be weighed: a tool-use
 * clearing triggered by input tokens is left out, and cleared tokens are reported as 0.
 */
export async function applyContextEdits(original: readonly MessageParam[], management: ContextManagementParam | null | undefined, count?: CountTokens): Promise<EditedMessages> {
    let messages = [...original];
    const applied: AppliedEdit[] = [];
    for (const [index, edit] of (management?.edits ?? []).entries() as Iterable<[number, Record<string, unknown>]>) {
        const before = messages;
        if (edit.type === "clear_thinking_20251015") {
            const result = clearThinking(messages, thinkingTurnsKept(edit, index));
            if (result.cleared === 0)
                continue;
            messages = result.messages;
            applied.push({type: "clear_thinking_20251015", cleared_thinking_turns: result.cleared, cleared_input_tokens: count != null ? await count(before) - await count(messages) : 0});
        } else if (edit.type === "clear_tool_uses_20250919") {
            const trigger = threshold(edit, "trigger", ["input_tokens", "tool_uses"], index) ?? {type: "input_tokens", value: 100_000};
            const atLeast = threshold(edit, "clear_at_least", ["input_tokens"], index);
            const {all, clearable} = clearableToolUses(messages, edit, index);
            if (clearable.length === 0 || ((trigger.type === "input_tokens" || atLeast != null) && count == null))
                continue;
            const tokensBefore = count != null ? await count(messages) : undefined;
            if (trigger.type === "tool_uses" ? all <= trigger.value : tokensBefore! <= trigger.value)
                continue;
            const cleared = clearToolUses(messages, clearable, edit.clear_tool_inputs);
            const clearedTokens = tokensBefore != null ? tokensBefore - await count!(cleared) : 0;
            if (atLeast != null && clearedTokens < atLeast.value)
                continue;
            messages = cleared;
            applied.push({type: "clear_tool_uses_20250919", cleared_tool_uses: clearable.length, cleared_input_tokens: clearedTokens});
        }
    }
    return {messages, applied};
}
