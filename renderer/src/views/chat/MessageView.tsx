import {useState} from "react";
import type {Message} from "../../api.js";
import {Markdown} from "../../components/Markdown.js";
import {MessageImages} from "./MessageImages.js";
import {ThinkingBlock} from "./ThinkingBlock.js";
import {ToolCallBlock, formatJson} from "./ToolCallBlock.js";

const STATUS_NOTES: Partial<Record<Message["status"], string>> = {
    stopped: "Stopped",
    interrupted: "Interrupted: the server stopped while writing this reply"
};

/**
 * One message: a user's, editable, with the images it showed; an assistant's, its thinking folded above its answer (Markdown), the
 * tools it called below, with its speed and token counts; or a tool's result.
 */
export function MessageView({message, conversationId, streaming, canRegenerate, canEdit, onEdit, onRegenerate}: {
    message: Message,
    conversationId: string,
    streaming: boolean,
    canRegenerate: boolean,
    canEdit: boolean,
    onEdit: (content: string) => void,
    onRegenerate: () => void
}) {
    const [editing, setEditing] = useState(false);
    const [draft, setDraft] = useState(message.content);

    if (message.role === "user") {
        return (
            <article className="message message-user" data-role="user" aria-label="Your message">
                <MessageImages conversationId={conversationId} images={message.images}/>
                {editing
                    ? (
                        <form onSubmit={(event) => {
                            event.preventDefault();
                            setEditing(false);
                            onEdit(draft);
                        }}>
                            <textarea aria-label="Edit message" value={draft} onChange={(event) => setDraft(event.target.value)} rows={Math.min(12, draft.split("\n").length + 1)}/>
                            <div className="actions">
                                <button type="submit">Save and reply</button>
                                <button type="button" className="secondary" onClick={() => setEditing(false)}>Cancel</button>
                            </div>
                        </form>
                    )
                    : <div className="user-text">{message.content}</div>}
                {!editing && canEdit && (
                    <div className="message-tools">
                        <button type="button" className="link" onClick={() => {
                            setDraft(message.content);
                            setEditing(true);
                        }}>Edit</button>
                    </div>
                )}
            </article>
        );
    }

    if (message.role === "tool") {
        return (
            <article className="message message-tool" data-role="tool" aria-label={`Result of ${message.name ?? "a tool"}`}>
                <div className="tool-block tool-result">
                    <div className="tool-head">
                        <span className="tool-kind">Tool result</span>
                        {message.name != null && <code className="tool-name">{message.name}</code>}
                        {message.tool_call_id != null && <span className="muted tool-call-id">{message.tool_call_id}</span>}
                    </div>
                    <pre className="tool-body"><code>{formatJson(message.content)}</code></pre>
                </div>
            </article>
        );
    }

    const note = STATUS_NOTES[message.status];
    const answering = message.content !== "" || message.tool_calls.length > 0;
    const {stats} = message;
    return (
        <article className={`message message-assistant ${streaming ? "message-streaming" : ""}`} data-role="assistant" data-status={message.status} aria-label="Reply" aria-busy={streaming}>
            {message.reasoning !== "" && (
                <ThinkingBlock reasoning={message.reasoning} thinking={streaming && !answering}
                    reasoningMs={stats?.reasoning_tokens != null && stats.reasoning_tokens > 0 ? stats.reasoning_ms : undefined}/>
            )}
            {!answering && streaming && message.reasoning === "" && <p className="muted">Thinking…</p>}
            {(message.content !== "" || !streaming && message.tool_calls.length === 0) && <Markdown text={message.content}/>}
            {message.tool_calls.map((call, index) => <ToolCallBlock key={index} call={call}/>)}
            {message.status === "error" && <p className="error">{message.error ?? "The reply failed"}</p>}
            <div className="message-tools">
                {message.model != null && <span className="muted">{message.model}</span>}
                {message.stats != null && (
                    <span className="muted stats">
                        {message.stats.completion_tokens} tokens · {message.stats.tokens_per_second} tokens/s · prompt {message.stats.prompt_tokens} tokens · first token in {message.stats.time_to_first_token_ms} ms
                    </span>
                )}
                {note != null && <span className="muted">{note}</span>}
                {canRegenerate && <button type="button" className="link" onClick={onRegenerate}>Regenerate</button>}
            </div>
        </article>
    );
}
