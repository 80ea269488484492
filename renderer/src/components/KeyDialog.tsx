import {useState} from "react";
import type {FormEvent} from "react";
import {setApiKey} from "../apiKey.js";

/** Asks for an API key when the server refused the app for want of one, then reloads with it. */
export function KeyDialog({message, onClose}: {message: string, onClose(): void}) {
    const [key, setKey] = useState("");
    const [remember, setRemember] = useState(true);

    const submit = (event: FormEvent) => {
        event.preventDefault();
        if (key.trim() === "")
            return;
        setApiKey(key.trim(), remember);
        location.reload();
    };

    return (
        <div className="dialog-backdrop">
            <form className="dialog panel" role="dialog" aria-modal="true" aria-labelledby="key-dialog-heading" onSubmit={submit}>
                <h2 id="key-dialog-heading">This server needs an API key</h2>
                <p className="muted">{message}</p>
                <label className="field">
                    <span>API key</span>
                    <input type="password" autoComplete="off" value={key} onChange={(event) => setKey(event.target.value)} autoFocus/>
                </label>
                <label className="checkbox">
                    <input type="checkbox" checked={remember} onChange={(event) => setRemember(event.target.checked)}/>
                    Remember it in this browser
                </label>
                <div className="dialog-actions">
                    <button type="button" className="secondary" onClick={onClose}>Not now</button>
                    <button type="submit" disabled={key.trim() === ""}>Use key</button>
                </div>
            </form>
        </div>
    );
}
