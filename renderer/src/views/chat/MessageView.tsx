import {useState} from "react";
import type {Message} from "../../api.js";
import {Markdown} from "../../components/Markdown.js";

const STATUS_NOTES: Partial<Record<Message["status"], string>> = {
    stopped: "Stopped",
    interrupted: "Interrupted: the server stopped while writing this reply"
};

/** One message: a user's, editable, or an assistant's, as Markdown with its speed and token counts. */
export function MessageView({message, streaming, canRegenerate, canEdit, onEdit, onRegenerate}: {
    message: Message,
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

    const note = STATUS_NOTES[message.status];
    return (
        <article className={`message message-assistant ${streaming ? "message-streaming" : ""}`} data-role="assistant" data-status={message.status} aria-label="Reply" aria-busy={streaming}>
            {message.content === "" && streaming ? <p className="muted">Thinking…</p> : <Markdown text={message.content}/>}
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
