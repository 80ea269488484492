/**
 * Conversations as `/api/conversations` sends them. Types only, free of Node.js, so the app (renderer/)
 * reads the same declarations the server writes.
 */

/** Sampling settings kept with a conversation, in the API's names. */
export type ConversationOptions = {
    temperature?: number, top_p?: number, top_k?: number, min_p?: number, seed?: number,
    max_tokens?: number, repeat_penalty?: number
};

export type Conversation = {
    id: string,
    title: string,
    model: string | null,
    system_prompt: string | null,
    options: ConversationOptions,
    created_at: string,
    updated_at: string
};

/**
 * `streaming` while a reply is being generated; `stopped` when its client stopped it; `interrupted` when
 * the server stopped while it streamed (what was generated until then is kept); `error` when it failed.
 */
export type MessageStatus = "complete" | "streaming" | "stopped" | "interrupted" | "error";

export type ReplyStats = {
    prompt_tokens: number,
    completion_tokens: number,
    tokens_per_second: number,
    time_to_first_token_ms: number,
    /** Generated tokens that were thinking (part of `completion_tokens`); absent in replies stored before Hearth kept it. */
    reasoning_tokens?: number,
    /** About how long the model thought: its share of the generation time, by tokens; absent as `reasoning_tokens` is. */
    reasoning_ms?: number
};

/** A function the assistant called: `arguments` is JSON text as the model wrote it (partial in a stopped reply). */
export type MessageToolCall = {id: string, name: string, arguments: string};

/** `tool`: the result of one of the assistant's tool calls, matched to it by `tool_call_id`. */
export type MessageRole = "user" | "assistant" | "tool";

/**
 * An image a user showed the model, stored once per content (by its sha256) however many messages show it.
 * Its bytes are at `/api/conversations/:id/images/:sha256`, so a conversation reads as text however many images it holds.
 */
export type MessageImage = {sha256: string, mime_type: string, size_bytes: number};

export type Message = {
    id: string,
    role: MessageRole,
    content: string,
    /** An assistant's thinking before its answer (empty for models that do not think). */
    reasoning: string,
    /** The images a user message shows, in order, before its text (empty for the others). */
    images: MessageImage[],
    /** The calls an assistant message made, in order (empty for the others). */
    tool_calls: MessageToolCall[],
    /** A tool message's call and function name (null for the others). */
    tool_call_id: string | null,
    name: string | null,
    status: MessageStatus,
    /** The model that wrote an assistant message. */
    model: string | null,
    stats: ReplyStats | null,
    error: string | null,
    created_at: string
};

export type ConversationSummary = Conversation & {message_count: number};
