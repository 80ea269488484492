import type {MessageToolCall} from "../../api.js";

/** JSON laid out to read (two-space indents); text that does not parse yet (arguments still streaming) as it is. */
export function formatJson(text: string): string {
    try {
        return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
        return text;
    }
}

/** A function the assistant called: its name and its arguments. */
export function ToolCallBlock({call}: {call: MessageToolCall}) {
    return (
        <div className="tool-block tool-call" role="group" aria-label={`Call to ${call.name}`}>
            <div className="tool-head">
                <span className="tool-kind">Tool call</span>
                <code className="tool-name">{call.name}</code>
            </div>
            {call.arguments.trim() !== "" && <pre className="tool-body"><code>{formatJson(call.arguments)}</code></pre>}
        </div>
    );
}
