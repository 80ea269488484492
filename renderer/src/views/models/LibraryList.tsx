import {useState} from "react";
import {request} from "../../api.js";
import type {LibraryEntry, LoadedEntry, ServerInfo} from "../../api.js";
import {desktop} from "../../desktopBridge.js";
import {formatBytes} from "../../format.js";
import {VisionBadge} from "./VisionBadge.js";

/** The models on disk: what each is, load it with settings, unload, delete. */
export function LibraryList({models, loaded, defaults, onChange}: {
    models: LibraryEntry[],
    loaded: LoadedEntry[],
    defaults: ServerInfo["defaults"] | undefined,
    onChange: () => void
}) {
    const [error, setError] = useState<string | undefined>();
    const [busy, setBusy] = useState<string | undefined>();
    const [loadFormFor, setLoadFormFor] = useState<string | undefined>();

    const act = async (name: string, work: () => Promise<unknown>) => {
        setBusy(name);
        setError(undefined);
        try {
            await work();
        } catch (caught) {
            setError((caught as Error).message);
        } finally {
            setBusy(undefined);
            onChange();
        }
    };

    const importFile = async () => {
        const imported = await desktop?.importModelFile().catch((caught: Error) => setError(caught.message));
        if (imported != null)
            onChange();
    };

    return (
        <section className="panel" aria-labelledby="library-heading">
            <div className="panel-head">
                <h2 id="library-heading">Library</h2>
                {desktop != null && <button type="button" className="secondary" onClick={() => void importFile()}>Import a .gguf file…</button>}
            </div>
            {error != null && <p className="error" role="alert">{error}</p>}
            {models.length === 0
                ? <p className="muted">No models yet. Search above and download one, or import a GGUF file with <code>hearth import FILE.gguf</code>.</p>
                : (
                    <table className="library" aria-label="Library">
                        <thead><tr><th>Model</th><th>Quantization</th><th>Architecture</th><th>Parameters</th><th>Context</th><th>Size</th><th/></tr></thead>
                        <tbody>
                            {models.map((model) => {
                                const isLoaded = loaded.some((entry) => entry.name === model.name);
                                return [
                                    <tr key={model.name}>
                                        <td className="model-name">
                                            {model.name}
                                            {model.capabilities?.includes("vision") === true && <VisionBadge/>}
                                            {isLoaded && <span className="badge badge-good">Loaded</span>}
                                        </td>
                                        <td>{model.details.quantization_level}</td>
                                        <td>{model.details.family}</td>
                                        <td>{model.details.parameter_size}</td>
                                        <td>{model.context_length != null ? `${model.context_length.toLocaleString()} tokens` : ""}</td>
                                        <td>{formatBytes(model.size)}</td>
                                        <td className="actions">
                                            {isLoaded
                                                ? <button type="button" className="secondary" disabled={busy === model.name} onClick={() => void act(model.name, () => request("POST", "/api/unload", {model: model.name}))}>Unload</button>
                                                : <button type="button" className="secondary" disabled={busy === model.name} onClick={() => setLoadFormFor(loadFormFor === model.name ? undefined : model.name)}>Load…</button>}
                                            {desktop != null && <button type="button" className="secondary" onClick={() => void desktop?.revealModel(model.name)}>Show file</button>}
                                            <button type="button" className="secondary danger" disabled={busy === model.name} onClick={() => {
                                                if (confirm(`Delete ${model.name} (${formatBytes(model.size)}) from this machine?`))
                                                    void act(model.name, () => request("DELETE", "/api/delete", {model: model.name}));
                                            }}>Delete</button>
                                        </td>
                                    </tr>,
                                    loadFormFor === model.name && !isLoaded && (
                                        <tr key={`${model.name}-load`} className="load-row">
                                            <td colSpan={7}>
                                                <LoadForm model={model} defaults={defaults} busy={busy === model.name} onLoad={(settings) => {
                                                    void act(model.name, async () => {
                                                        await request("POST", "/api/load", {model: model.name, ...settings});
                                                        setLoadFormFor(undefined);
                                                    });
                                                }}/>
                                            </td>
                                        </tr>
                                    )
                                ];
                            })}
                        </tbody>
                    </table>
                )}
        </section>
    );
}

type LoadSettings = {ctx_size: "auto" | number, parallel: number, gpu_layers: "auto" | "max" | number};

function LoadForm({model, defaults, busy, onLoad}: {model: LibraryEntry, defaults: ServerInfo["defaults"] | undefined, busy: boolean, onLoad: (settings: LoadSettings) => void}) {
    const [ctxSize, setCtxSize] = useState(String(defaults?.ctx_size ?? "auto"));
    const [parallel, setParallel] = useState(String(defaults?.parallel ?? 1));
    const [gpuLayers, setGpuLayers] = useState(String(defaults?.gpu_layers ?? "auto"));
    const layers = gpuLayers === "auto" || gpuLayers === "max" ? gpuLayers : Number(gpuLayers);
    return (
        <form className="load-form" onSubmit={(event) => {
            event.preventDefault();
            onLoad({ctx_size: ctxSize === "auto" ? ctxSize : Number(ctxSize), parallel: Number(parallel), gpu_layers: layers});
        }}>
            <label>Context size (tokens per slot)
                <input list="ctx-size-choices" value={ctxSize} onChange={(event) => setCtxSize(event.target.value)} pattern="auto|[0-9]+"
                    title={`auto (the model's trained context${model.context_length != null ? `, ${model.context_length.toLocaleString()} tokens,` : ""} as far as memory allows), or a number of tokens`}/>
                <datalist id="ctx-size-choices"><option value="auto"/>{model.context_length != null && <option value={model.context_length}/>}</datalist>
            </label>
            <label>Slots (requests at once)
                <input type="number" min={1} max={64} value={parallel} onChange={(event) => setParallel(event.target.value)}/>
            </label>
            <label>GPU layers
                <input list="gpu-layer-choices" value={gpuLayers} onChange={(event) => setGpuLayers(event.target.value)} pattern="auto|max|[0-9]+"
                    title="auto, max, or a number of layers"/>
                <datalist id="gpu-layer-choices"><option value="auto"/><option value="max"/><option value="0"/></datalist>
            </label>
            <button type="submit" disabled={busy}>{busy ? "Loading…" : `Load ${model.name}`}</button>
        </form>
    );
}

/** What is in memory now, and where. */
export function LoadedList({loaded}: {loaded: LoadedEntry[]}) {
    return (
        <section className="panel" aria-labelledby="loaded-heading">
            <h2 id="loaded-heading">Loaded now</h2>
            {loaded.length === 0
                ? <p className="muted">No model is loaded. Models load when a chat or a tool asks for them, or with Load above.</p>
                : (
                    <ul className="loaded">
                        {loaded.map((entry) => (
                            <li key={entry.name}>
                                <span className="model-name">{entry.name}</span>
                                <span className="muted">
                                    {formatBytes(entry.size)}{entry.size_vram > 0 ? ` (${formatBytes(entry.size_vram)} on GPU)` : " on CPU"} · context {entry.context_length.toLocaleString()} tokens
                                    {entry.context_reason ? ` (${entry.context_reason})` : ""}
                                    {entry.expires_at.startsWith("2318") ? " · stays loaded" : ` · unloads at ${new Date(entry.expires_at).toLocaleTimeString()}`}
                                </span>
                            </li>
                        ))}
                    </ul>
                )}
        </section>
    );
}
