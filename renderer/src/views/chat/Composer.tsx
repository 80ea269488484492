import {useState} from "react";

/** The message box: Enter sends, Shift+Enter starts a new line; Stop while a reply streams. */
export function Composer({streaming, disabled, onSend, onStop}: {streaming: boolean, disabled: boolean, onSend: (text: string) => void, onStop: () => void}) {
    const [text, setText] = useState("");
    const send = () => {
        if (text.trim() === "" || streaming || disabled)
            return;
        onSend(text);
        setText("");
    };
    return (
        <form className="composer" onSubmit={(event) => {
            event.preventDefault();
            send();
        }}>
            <textarea aria-label="Message" placeholder={disabled ? "Choose a model first" : "Message (Enter sends, Shift+Enter for a new line)"}
                value={text} rows={Math.min(8, text.split("\n").length)} onChange={(event) => setText(event.target.value)}
                onKeyDown={(event) => {
                    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
                        event.preventDefault();
                        send();
                    }
                }}/>
            {streaming
                ? <button type="button" className="danger" onClick={onStop}>Stop</button>
                : <button type="submit" disabled={disabled || text.trim() === ""}>Send</button>}
        </form>
    );
}
