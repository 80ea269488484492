import {useEffect, useId, useRef, useState} from "react";
import {formatSeconds} from "../../format.js";

/**
 * A reply's thinking, above its answer: open and growing while the model thinks, folded away once the
 * answer starts (or when the conversation is opened again), one click to read it. Plain text, so the
 * thinking never mixes with the answer's Markdown.
 */
export function ThinkingBlock({reasoning, thinking, reasoningMs}: {
    reasoning: string,
    /** The model is still thinking: the reply streams and its answer has not started. */
    thinking: boolean,
    /** How long it thought, as the server measured it; undefined for replies that do not say. */
    reasoningMs: number | undefined
}) {
    const [open, setOpen] = useState(thinking);
    const [nowMs, setNowMs] = useState(() => Date.now());
    const startedAtMs = useRef(thinking ? Date.now() : undefined);
    const [seenMs, setSeenMs] = useState<number | undefined>();
    const wasThinking = useRef(thinking);
    const contentId = useId();

    useEffect(() => {
        if (wasThinking.current && !thinking) {
            setOpen(false);
            if (startedAtMs.current != null)
                setSeenMs(Date.now() - startedAtMs.current);
        }
        wasThinking.current = thinking;
        if (!thinking)
            return;
        const timer = setInterval(() => setNowMs(Date.now()), 1000);
        return () => clearInterval(timer);
    }, [thinking]);

    // The server's figure once the reply is done; until then, what this page saw.
    const thoughtMs = reasoningMs ?? seenMs;
    const elapsedMs = startedAtMs.current != null ? nowMs - startedAtMs.current : 0;
    const label = thinking
        ? elapsedMs >= 1000 ? `Thinking… ${formatSeconds(elapsedMs / 1000)}` : "Thinking…"
        : thoughtMs == null ? "Thoughts" : thoughtMs < 1000 ? "Thought for less than a second" : `Thought for ${formatSeconds(thoughtMs / 1000)}`;
    return (
        <div className={`thinking ${thinking ? "thinking-live" : ""}`}>
            <button type="button" className="thinking-toggle" aria-expanded={open} aria-controls={contentId} onClick={() => setOpen(!open)}>
                <span className="thinking-chevron" aria-hidden="true">{open ? "▾" : "▸"}</span>
                {label}
            </button>
            <div id={contentId} className="thinking-text" role="region" aria-label="Thinking" hidden={!open}>{reasoning}</div>
        </div>
    );
}
