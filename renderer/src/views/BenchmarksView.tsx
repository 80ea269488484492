import {useCallback, useEffect, useState} from "react";
import type {BenchRun, SavedModelResult} from "../../../server/benchmarks/BenchStore.js";
import {get, request} from "../api.js";
import {formatBytes} from "../format.js";
import {usePolling} from "../usePolling.js";
import {ScatterChart} from "./benchmarks/ScatterChart.js";

/**
 * Quantizations side by side: pick served models, run (each model alone, in its own process), watch the
 * progress, and read a table and two charts: speed against size, and quality loss against size. Every
 * run, from here or from `hearth bench`, stays in the history below.
 */
export function BenchmarksView() {
    const [models, setModels] = useState<string[]>([]);
    const [picked, setPicked] = useState<string[]>([]);
    const [repetitions, setRepetitions] = useState(3);
    const [promptTokens, setPromptTokens] = useState(512);
    const [genTokens, setGenTokens] = useState(128);
    const [parallel, setParallel] = useState(1);
    const [ctxSize, setCtxSize] = useState(512);
    const [runs, setRuns] = useState<BenchRun[]>([]);
    const [shownId, setShownId] = useState<string | undefined>();
    const [error, setError] = useState<string | undefined>();

    useEffect(() => {
        void get<{data: {id: string}[]}>("/v1/models").then((list) => setModels(list.data.map((model) => model.id)), () => setModels([]));
    }, []);
    const refresh = useCallback(async () => {
        const list = await get<{runs: BenchRun[]}>("/api/bench/runs");
        setRuns(list.runs);
    }, []);
    const running = runs.find((run) => run.status === "running");
    usePolling(refresh, running != null ? 500 : 5000);

    const shown = runs.find((run) => run.id === shownId) ?? runs[0];
    const toggle = (model: string) => setPicked((current) => current.includes(model) ? current.filter((name) => name !== model) : [...current, model]);

    async function start() {
        setError(undefined);
        try {
            const run = await request<BenchRun>("POST", "/api/bench", {
                models: picked, repetitions, prompt_tokens: promptTokens, gen_tokens: genTokens, parallel, ctx_size: ctxSize
            });
            setShownId(run.id);
            await refresh();
        } catch (caught) {
            setError((caught as Error).message);
        }
    }

    return (
        <section className="page benchmarks">
            <h1>Benchmarks</h1>
            <form className="bench-form" onSubmit={(event) => {
                event.preventDefault();
                void start();
            }}>
                <fieldset>
                    <legend>Models (the first is the reference for KL divergence)</legend>
                    {models.length === 0 && <p className="muted">No models are served yet: add one on the Models page.</p>}
                    {models.map((model) => (
                        <label key={model} className="check">
                            <input type="checkbox" checked={picked.includes(model)} onChange={() => toggle(model)} />
                            {model}{picked.includes(model) ? ` (#${picked.indexOf(model) + 1})` : ""}
                        </label>
                    ))}
                </fieldset>
                <div className="bench-settings">
                    <label>Repetitions <input type="number" min={1} max={20} value={repetitions} onChange={(event) => setRepetitions(Number(event.target.value))} /></label>
                    <label>Prompt tokens <input type="number" min={1} value={promptTokens} onChange={(event) => setPromptTokens(Number(event.target.value))} /></label>
                    <label>Generated tokens <input type="number" min={1} value={genTokens} onChange={(event) => setGenTokens(Number(event.target.value))} /></label>
                    <label title="Generations run at once, each on its own slot">Parallel <input type="number" min={1} max={64} value={parallel} onChange={(event) => setParallel(Number(event.target.value))} /></label>
                    <label title="Tokens per chunk of the quality text">Quality context <input type="number" min={16} value={ctxSize} onChange={(event) => setCtxSize(Number(event.target.value))} /></label>
                    <button type="submit" disabled={picked.length === 0 || running != null}>Run benchmark</button>
                </div>
                {error != null && <p className="error" role="alert">{error}</p>}
            </form>

            {running != null && (
                <div className="bench-progress" role="status">
                    <progress max={running.progress.total} value={running.progress.done} />
                    <span>{running.progress.done} of {running.progress.total} models measured{running.progress.model != null ? `; measuring ${running.progress.model}` : ""}</span>
                </div>
            )}

            {shown == null
                ? <div className="empty"><p><strong>No benchmarks yet.</strong></p><p>Pick two or more quantizations of a model and run: each is measured alone for speed, memory and quality.</p></div>
                : <RunDetails run={shown} />}

            {runs.length > 0 && (
                <>
                    <h2>History</h2>
                    <table className="bench-history">
                        <thead><tr><th>When</th><th>Models</th><th>Status</th><th /></tr></thead>
                        <tbody>
                            {runs.map((run) => (
                                <tr key={run.id} className={run.id === shown?.id ? "selected" : undefined}>
                                    <td>{new Date(run.created_at).toLocaleString()}</td>
                                    <td>{run.models.map((model) => model.split("/").at(-1)).join(", ")}</td>
                                    <td>{run.status}</td>
                                    <td><button type="button" onClick={() => setShownId(run.id)}>Show</button></td>
                                </tr>
                            ))}
                        </tbody>
                    </table>
                </>
            )}
        </section>
    );
}

function RunDetails({run}: {run: BenchRun}) {
    const results = run.results;
    const label = (result: SavedModelResult) => result.quant ?? result.model;
    return (
        <div className="bench-run">
            <h2>Run of {new Date(run.created_at).toLocaleString()} <span className={`status status-${run.status}`}>{run.status}</span></h2>
            {run.error != null && <p className="error">{run.error}</p>}
            {results.length > 0 && (
                <>
                    <table className="bench-results">
                        <thead>
                            <tr>
                                <th>Model</th><th>Quant</th><th>Size</th><th>Load ms</th><th>Prompt tok/s</th><th>Gen tok/s</th>
                                <th>TTFT ms</th><th>Peak RAM</th><th>Perplexity</th><th>KLD</th>
                            </tr>
                        </thead>
                        <tbody>
                            {results.map((result) => (
                                <tr key={result.path}>
                                    <td title={result.sha256}>{result.model}</td>
                                    <td>{result.quant ?? "?"}</td>
                                    <td>{formatBytes(result.size_bytes)}</td>
                                    <td>{result.load_ms.toFixed(0)}</td>
                                    <td>{result.pp_tps.toFixed(0)}</td>
                                    <td>{result.tg_tps.toFixed(1)}</td>
                                    <td>{result.ttft_ms.toFixed(1)}</td>
                                    <td>{formatBytes(result.peak_rss_bytes)}</td>
                                    <td>{result.perplexity.toFixed(3)}</td>
                                    <td>{result.kld.toFixed(5)}</td>
                                </tr>
                            ))}
                        </tbody>
                    </table>
                    <p className="muted">Speed is the median of {results[0]!.repetitions} run{results[0]!.repetitions === 1 ? "" : "s"}{results[0]!.settings.parallel > 1 ? `, ${results[0]!.settings.parallel} generations at once` : ""}; perplexity and KLD over {results[0]!.scored_tokens} tokens; KLD is from {results[0]!.model}, the reference.</p>
                    <div className="bench-charts">
                        <ScatterChart title="Generation tokens/s against size" xLabel="size (MB)" yLabel="tokens/s"
                            points={results.map((result) => ({label: label(result), x: result.size_bytes / 1e6, y: result.tg_tps}))} />
                        <ScatterChart title={results.length > 1 ? "KL divergence against size (lower is closer to the reference)" : "Perplexity against size"}
                            xLabel="size (MB)" yLabel={results.length > 1 ? "KLD" : "perplexity"}
                            points={results.map((result) => ({label: label(result), x: result.size_bytes / 1e6, y: results.length > 1 ? result.kld : result.perplexity}))} />
                    </div>
                </>
            )}
        </div>
    );
}
