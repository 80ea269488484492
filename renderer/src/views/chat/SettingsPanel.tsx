import {useState} from "react";
import type {ConversationOptions} from "../../api.js";

type Settings = {system_prompt: string | null, options: ConversationOptions};

const FIELDS: {key: keyof ConversationOptions, label: string, step: string, min: number, max?: number, integer?: boolean}[] = [
    {key: "temperature", label: "Temperature", step: "0.05", min: 0, max: 2},
    {key: "top_p", label: "Top p", step: "0.05", min: 0, max: 1},
    {key: "top_k", label: "Top k", step: "1", min: 0, integer: true},
    {key: "max_tokens", label: "Max tokens", step: "1", min: 1, integer: true},
    {key: "seed", label: "Seed", step: "1", min: 0, integer: true}
];

/** A conversation's system prompt and sampling settings; empty fields use the model's defaults. */
export function SettingsPanel({settings, onSave, onClose}: {settings: Settings, onSave: (settings: Settings) => void, onClose: () => void}) {
    const [systemPrompt, setSystemPrompt] = useState(settings.system_prompt ?? "");
    const [values, setValues] = useState<Record<string, string>>(
        Object.fromEntries(FIELDS.map((field) => [field.key, settings.options[field.key]?.toString() ?? ""])));
    return (
        <form className="settings" aria-label="Conversation settings" onSubmit={(event) => {
            event.preventDefault();
            const options: ConversationOptions = {...settings.options};
            for (const field of FIELDS) {
                const value = values[field.key]?.trim() ?? "";
                if (value === "")
                    delete options[field.key];
                else
                    options[field.key] = field.integer ? Math.round(Number(value)) : Number(value);
            }
            onSave({system_prompt: systemPrompt.trim() === "" ? null : systemPrompt, options});
        }}>
            <label className="wide">System prompt
                <textarea aria-label="System prompt" rows={3} value={systemPrompt} onChange={(event) => setSystemPrompt(event.target.value)}
                    placeholder="You are a helpful assistant."/>
            </label>
            {FIELDS.map((field) => (
                <label key={field.key}>{field.label}
                    <input type="number" step={field.step} min={field.min} max={field.max} placeholder="default" value={values[field.key]}
                        onChange={(event) => setValues({...values, [field.key]: event.target.value})}/>
                </label>
            ))}
            <div className="actions wide">
                <button type="submit">Save settings</button>
                <button type="button" className="secondary" onClick={onClose}>Close</button>
            </div>
        </form>
    );
}
