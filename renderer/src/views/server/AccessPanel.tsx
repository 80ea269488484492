import {useCallback, useEffect, useState} from "react";
import type {FormEvent} from "react";
import {get, request} from "../../api.js";
import type {AccessSettings, ApiKeyInfo, ServerInfo} from "../../api.js";
import {apiKey, setApiKey} from "../../apiKey.js";
import {CopyButton} from "../../components/CopyButton.js";
import {actionRunner} from "../../actionRunner.js";

/** Who may use the server: LAN access, API keys and the web pages allowed to call it. */
export function AccessPanel({info, onChange}: {info: ServerInfo, onChange(settings: AccessSettings): void}) {
    const [settings, setSettings] = useState<AccessSettings | undefined>();
    const [keys, setKeys] = useState<ApiKeyInfo[]>([]);
    const [newKey, setNewKey] = useState<{name: string, key: string} | undefined>();
    const [keyName, setKeyName] = useState("");
    const [origin, setOrigin] = useState("");
    const [error, setError] = useState<string | undefined>();

    const refresh = useCallback(async () => {
        const [fresh, list] = await Promise.all([get<AccessSettings>("/api/server/settings"), get<{keys: ApiKeyInfo[]}>("/api/server/keys")]);
        setSettings(fresh);
        setKeys(list.keys);
        onChange(fresh);
    }, [onChange]);

    useEffect(() => {
        refresh().catch((caught: Error) => setError(caught.message));
    }, [refresh]);

    const act = actionRunner(refresh, setError);

    const createKey = (event: FormEvent) => {
        event.preventDefault();
        void act(async () => {
            const created = await request<{key: string, name: string}>("POST", "/api/server/keys", {name: keyName});
            // The first key makes keys required of every client, this app included: it keeps working with this one.
            if (apiKey() == null)
                setApiKey(created.key, true);
            setNewKey({name: created.name, key: created.key});
            setKeyName("");
        });
    };

    const saveOrigins = (origins: string[]) => act(() => request("PATCH", "/api/server/settings", {allowed_origins: origins}));

    const addOrigin = (event: FormEvent) => {
        event.preventDefault();
        if (settings != null && origin.trim() !== "")
            void saveOrigins([...settings.allowed_origins, origin.trim()]).then(() => setOrigin(""));
    };

    if (settings == null)
        return <section className="panel"><h2>Access</h2>{error != null ? <p className="error">{error}</p> : <p className="muted">Reading access settings…</p>}</section>;

    return (
        <section className="panel access" aria-labelledby="access-heading">
            <h2 id="access-heading">Access</h2>
            <dl className="facts">
                <dt>Address</dt><dd>{info.host}, port {info.port}</dd>
                <dt>Backend</dt><dd>{info.backend?.selected ?? "starting"}{info.backend?.reason ? ` (${info.backend.reason})` : ""}</dd>
                {info.backend?.decode_loop != null && <>
                    <dt>Decode loop</dt>
                    <dd>{info.backend.decode_loop}{info.backend.decode_loop_reason ? ` (${info.backend.decode_loop_reason})` : ""}</dd>
                </>}
            </dl>

            <h3>LAN access</h3>
            <label className="checkbox">
                <input type="checkbox" checked={settings.lan_access}
                    onChange={(event) => void act(() => request("PATCH", "/api/server/settings", {lan_access: event.target.checked}))}/>
                Serve other devices on the local network
            </label>
            <p className="muted">
                {settings.lan_access_now
                    ? `On now: other machines reach this server at port ${info.port}, with an API key.`
                    : "Off now: only programs on this machine can reach the server."}
                {settings.restart_required && <strong> Applies when Hearth restarts.</strong>}
                {" "}Devices on the network must send an API key; it is never optional there.
            </p>

            <h3>API keys</h3>
            <p className="muted">
                {settings.keys_required
                    ? "Every client must send a key as \"Authorization: Bearer KEY\" (the OpenAI SDKs' api_key) or \"x-api-key\"."
                    : "No key is needed on this machine. Creating one makes keys required of every client, this app included."}
            </p>
            {keys.length > 0 && (
                <table className="keys" aria-label="API keys">
                    <thead><tr><th>Name</th><th>Key</th><th>Created</th><th>Last used</th><th/></tr></thead>
                    <tbody>
                        {keys.map((key) => (
                            <tr key={key.id}>
                                <td>{key.name}</td>
                                <td><code>{key.prefix}</code></td>
                                <td>{key.created_at != null ? new Date(key.created_at).toLocaleString() : "at start"}</td>
                                <td>{key.last_used_at != null ? new Date(key.last_used_at).toLocaleString() : "never"}</td>
                                <td>{key.source === "stored"
                                    ? <button className="secondary" onClick={() => void act(() => request("DELETE", `/api/server/keys/${encodeURIComponent(key.id)}`))}
                                        aria-label={`Revoke ${key.name}`}>Revoke</button>
                                    : <span className="muted">--api-key</span>}</td>
                            </tr>
                        ))}
                    </tbody>
                </table>
            )}
            {newKey != null && (
                <div className="new-key" role="status">
                    <p>The key for <strong>{newKey.name}</strong>, shown only now:</p>
                    <div className="copy-row"><code aria-label="New API key">{newKey.key}</code><CopyButton text={newKey.key} label="Copy key"/></div>
                </div>
            )}
            <form className="inline-form" onSubmit={createKey}>
                <label className="field"><span>Key name</span>
                    <input value={keyName} placeholder="e.g. laptop editor" maxLength={100} onChange={(event) => setKeyName(event.target.value)}/>
                </label>
                <button type="submit">Create key</button>
            </form>

            <h3>Allowed origins</h3>
            <p className="muted">Web pages on localhost and this app may call the API. Add a site to let its pages call it too.</p>
            <ul className="origins" aria-label="Allowed origins">
                {settings.startup_origins.map((item) => <li key={`startup-${item}`}><code>{item}</code> <span className="muted">(--allowed-origin)</span></li>)}
                {settings.allowed_origins.map((item) => (
                    <li key={item}><code>{item}</code>{" "}
                        <button className="secondary" aria-label={`Remove ${item}`}
                            onClick={() => void saveOrigins(settings.allowed_origins.filter((other) => other !== item))}>Remove</button>
                    </li>
                ))}
            </ul>
            <form className="inline-form" onSubmit={addOrigin}>
                <label className="field"><span>Origin</span>
                    <input value={origin} placeholder="https://app.example" onChange={(event) => setOrigin(event.target.value)}/>
                </label>
                <button type="submit">Add origin</button>
            </form>
            {error != null && <p className="error" role="alert">{error}</p>}
        </section>
    );
}
