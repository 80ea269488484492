import {useState} from "react";
import type {FormEvent} from "react";
import {get, request} from "../../api.js";
import type {Download, HubFiles, HubModel} from "../../api.js";
import {formatBytes, formatCount} from "../../format.js";
import {FitBadge} from "./FitBadge.js";
import {VisionBadge} from "./VisionBadge.js";

/** Search the Hub for GGUF repos, see a repo's quantizations with whether each fits, and download one. */
export function HubBrowser({downloads, onDownloadStarted}: {downloads: Download[], onDownloadStarted: () => void}) {
    const [query, setQuery] = useState("");
    const [results, setResults] = useState<HubModel[] | undefined>();
    const [searching, setSearching] = useState(false);
    const [files, setFiles] = useState<HubFiles | undefined>();
    const [openRepo, setOpenRepo] = useState<string | undefined>();
    const [error, setError] = useState<string | undefined>();

    const search = async (event?: FormEvent) => {
        event?.preventDefault();
        setSearching(true);
        setError(undefined);
        try {
            setResults((await get<{models: HubModel[]}>(`/api/hub/search?q=${encodeURIComponent(query)}&limit=30`)).models);
        } catch (caught) {
            setError((caught as Error).message);
        } finally {
            setSearching(false);
        }
    };

    const open = async (repo: string) => {
        setOpenRepo(repo);
        setFiles(undefined);
        setError(undefined);
        try {
            setFiles(await get<HubFiles>(`/api/hub/files?repo=${encodeURIComponent(repo)}`));
        } catch (caught) {
            setError((caught as Error).message);
        }
    };

    const download = async (name: string) => {
        setError(undefined);
        try {
            await request("POST", "/api/downloads", {model: name});
            onDownloadStarted();
        } catch (caught) {
            setError((caught as Error).message);
        }
    };

    return (
        <section className="panel" aria-labelledby="find-heading">
            <h2 id="find-heading">Find a model</h2>
            <form className="search" onSubmit={(event) => void search(event)} role="search">
                <input type="search" aria-label="Search Hugging Face" placeholder="Search Hugging Face for GGUF models, e.g. llama 3 8b"
                    value={query} onChange={(event) => setQuery(event.target.value)}/>
                <button type="submit" disabled={searching}>{searching ? "Searching…" : "Search"}</button>
            </form>
            {error != null && <p className="error" role="alert">{error}</p>}
            {results != null && results.length === 0 && <p className="muted">No GGUF repos match “{query}”.</p>}
            {results != null && results.length > 0 && (
                <ul className="repo-list" aria-label="Search results">
                    {results.map((model) => (
                        <li key={model.id}>
                            <button type="button" className={`repo ${model.id === openRepo ? "repo-open" : ""}`} onClick={() => void open(model.id)} aria-expanded={model.id === openRepo}>
                                <span className="repo-name">{model.id}</span>
                                <span className="muted">{formatCount(model.downloads)} downloads · {formatCount(model.likes)} likes</span>
                            </button>
                            {model.id === openRepo && (
                                files == null
                                    ? (error == null && <p className="muted">Reading {model.id}…</p>)
                                    : <QuantTable files={files} downloads={downloads} onDownload={(name) => void download(name)}/>
                            )}
                        </li>
                    ))}
                </ul>
            )}
        </section>
    );
}

function QuantTable({files, downloads, onDownload}: {files: HubFiles, downloads: Download[], onDownload: (name: string) => void}) {
    if (files.quantizations.length === 0)
        return <p className="muted">{files.repo} has no GGUF files.</p>;
    return (
        <table className="quants" aria-label={`Quantizations of ${files.repo}`}>
            <thead><tr><th>Quantization</th><th>Size</th><th>Fits this machine</th><th/></tr></thead>
            <tbody>
                {files.quantizations.map((quant) => {
                    const download = downloads.find((entry) => entry.name.toLowerCase() === quant.name.toLowerCase());
                    const busy = download != null && download.status !== "complete" && download.status !== "failed";
                    return (
                        <tr key={quant.name}>
                            <td>
                                {quant.quantization}{quant.default && <span className="muted"> (recommended)</span>}
                                {quant.vision === true && <VisionBadge projectorBytes={quant.projector?.size}/>}
                            </td>
                            <td>{formatBytes(quant.size)}</td>
                            <td><FitBadge fit={quant.fit} error={quant.fit_error}/></td>
                            <td>
                                {quant.in_library || download?.status === "complete"
                                    ? <span className="muted">In library</span>
                                    : busy
                                        ? <span className="muted">{download.status === "paused" ? "Paused" : "Downloading…"}</span>
                                        : <button type="button" onClick={() => onDownload(quant.name)} aria-label={`Download ${quant.quantization}`}>Download</button>}
                            </td>
                        </tr>
                    );
                })}
            </tbody>
        </table>
    );
}
