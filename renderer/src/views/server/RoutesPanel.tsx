import {useState} from "react";
import type {FormEvent} from "react";
import {get, request} from "../../api.js";
import type {RouteInfo, UpstreamInfo} from "../../api.js";
import {usePolling} from "../../usePolling.js";
import {actionRunner} from "../../actionRunner.js";

const percent = (value: number | null) => value != null ? `${Math.round(value * 1000) / 10}%` : "–";
const ms = (value: number | null) => value != null ? `${value} ms` : "–";

/** `model:90, model:10` as a route's targets; a target without a weight weighs 1. */
function parseTargets(text: string): {model: string, weight: number}[] {
    return text.split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
        const match = /^(.+):(\d+(?:\.\d+)?)$/.exec(part);
        return match != null ? {model: match[1]!, weight: Number(match[2])} : {model: part, weight: 1};
    });
}

/** Routes (weighted model names, with their shadows' comparison) and the upstreams they may send requests to. */
export function RoutesPanel() {
    const [routes, setRoutes] = useState<RouteInfo[] | undefined>();
    const [upstreams, setUpstreams] = useState<UpstreamInfo[]>([]);
    const [weights, setWeights] = useState<Record<string, Record<string, string>>>({});
    const [newRoute, setNewRoute] = useState({name: "", targets: "", shadow: ""});
    const [newUpstream, setNewUpstream] = useState({url: "", key: ""});
    const [error, setError] = useState<string | undefined>();

    const refresh = async () => {
        const [routeList, upstreamList] = await Promise.all([get<{routes: RouteInfo[]}>("/api/routes"), get<{upstreams: UpstreamInfo[]}>("/api/upstreams")]);
        setRoutes(routeList.routes);
        setUpstreams(upstreamList.upstreams);
    };
    usePolling(async () => {
        try {
            await refresh();
        } catch (caught) {
            setError((caught as Error).message);
        }
    }, 2000);

    const act = actionRunner(refresh, setError);

    const saveWeights = (route: RouteInfo) => act(async () => {
        const edited = weights[route.name] ?? {};
        const targets = route.targets.map((target) => ({model: target.model, weight: Number(edited[target.model] ?? target.weight)}));
        await request("PUT", `/api/routes/${encodeURIComponent(route.name)}`, {targets, shadow: route.shadow?.model ?? null});
        setWeights((current) => ({...current, [route.name]: {}}));
    });

    const addRoute = (event: FormEvent) => {
        event.preventDefault();
        void act(async () => {
            await request("PUT", `/api/routes/${encodeURIComponent(newRoute.name.trim())}`, {targets: parseTargets(newRoute.targets), shadow: newRoute.shadow.trim() || null});
            setNewRoute({name: "", targets: "", shadow: ""});
        });
    };

    const addUpstream = (event: FormEvent) => {
        event.preventDefault();
        void act(async () => {
            await request("POST", "/api/upstreams", {url: newUpstream.url.trim(), ...newUpstream.key.trim() !== "" ? {key: newUpstream.key.trim()} : {}});
            setNewUpstream({url: "", key: ""});
        });
    };

    if (routes == null)
        return <section className="panel"><h2>Routes</h2>{error != null ? <p className="error">{error}</p> : <p className="muted">Reading routes…</p>}</section>;

    return (
        <section className="panel routes" aria-labelledby="routes-heading">
            <h2 id="routes-heading">Routes</h2>
            <p className="muted">A route is a model name that sends each request to one of its models by weight; its shadow gets a copy of each request, and the two replies are compared.</p>
            {routes.length === 0 && <p className="muted">No routes. Add one below, or start with <code>--route NAME=MODEL:90,MODEL:10</code>.</p>}
            {routes.map((route) => (
                <div className="route" key={route.name} aria-label={`Route ${route.name}`}>
                    <h3><code>{route.name}</code> {route.source === "startup" && <span className="muted">(--route)</span>}</h3>
                    <table className="route-targets" aria-label={`Models of ${route.name}`}>
                        <thead><tr><th>Model</th><th>Weight</th><th>Share</th><th>Requests</th></tr></thead>
                        <tbody>
                            {route.targets.map((target) => (
                                <tr key={target.model}>
                                    <td><code>{target.model}</code></td>
                                    <td><input type="number" min={0} step="any" aria-label={`Weight of ${target.model} in ${route.name}`}
                                        value={weights[route.name]?.[target.model] ?? String(target.weight)}
                                        onChange={(event) => setWeights((current) => ({...current, [route.name]: {...current[route.name], [target.model]: event.target.value}}))}/></td>
                                    <td>{percent(target.share)}</td>
                                    <td>{target.requests}</td>
                                </tr>
                            ))}
                        </tbody>
                    </table>
                    <div className="inline-form">
                        <button onClick={() => void saveWeights(route)}>Save weights</button>
                        {route.source === "stored" && <button className="secondary" onClick={() => void act(() => request("DELETE", `/api/routes/${encodeURIComponent(route.name)}`))}>Remove route</button>}
                    </div>
                    {route.shadow != null && (
                        <dl className="metrics" aria-label={`Shadow of ${route.name}`}>
                            <div><dt>Shadow</dt><dd><code>{route.shadow.model}</code></dd></div>
                            <div><dt>Compared</dt><dd>{route.shadow.compared}</dd></div>
                            <div><dt>Same text</dt><dd>{percent(route.shadow.agreement)}</dd></div>
                            <div><dt>Similarity</dt><dd>{route.shadow.similarity_mean ?? "–"}</dd></div>
                            <div><dt>Median time, primary / shadow</dt><dd>{ms(route.shadow.primary.latency_ms_p50)} / {ms(route.shadow.shadow.latency_ms_p50)}</dd></div>
                            <div><dt>Tokens, primary / shadow</dt><dd>{route.shadow.primary.completion_tokens_mean ?? "–"} / {route.shadow.shadow.completion_tokens_mean ?? "–"}</dd></div>
                            <div><dt>Dropped / failed</dt><dd>{route.shadow.dropped} / {route.shadow.failed}</dd></div>
                        </dl>
                    )}
                </div>
            ))}
            <form className="inline-form" onSubmit={addRoute}>
                <label className="field"><span>Route name</span>
                    <input value={newRoute.name} placeholder="e.g. chat" onChange={(event) => setNewRoute({...newRoute, name: event.target.value})}/>
                </label>
                <label className="field"><span>Models and weights</span>
                    <input value={newRoute.targets} placeholder="model-Q4_K_M:90, model-Q5_K_M:10" onChange={(event) => setNewRoute({...newRoute, targets: event.target.value})}/>
                </label>
                <label className="field"><span>Shadow (optional)</span>
                    <input value={newRoute.shadow} placeholder="model-Q8_0" onChange={(event) => setNewRoute({...newRoute, shadow: event.target.value})}/>
                </label>
                <button type="submit">Add route</button>
            </form>

            <h3>Upstreams</h3>
            <p className="muted">OpenAI-compatible servers whose models Hearth serves too (llama-server, vLLM, Ollama, another Hearth).</p>
            {upstreams.length > 0 && (
                <table className="upstreams" aria-label="Upstreams">
                    <thead><tr><th>Upstream</th><th>Health</th><th>Models</th><th>In flight</th><th/></tr></thead>
                    <tbody>
                        {upstreams.map((upstream) => (
                            <tr key={upstream.id} className={upstream.health === "down" ? "failed" : ""}>
                                <td><code>{upstream.url}</code>{upstream.has_key && <span className="muted"> (key)</span>}</td>
                                <td title={upstream.last_error ?? undefined}>{upstream.health}{upstream.last_error != null && upstream.health === "down" ? `: ${upstream.last_error}` : ""}</td>
                                <td>{upstream.models.join(", ") || "–"}</td>
                                <td>{upstream.in_flight}</td>
                                <td>{upstream.source === "stored"
                                    ? <button className="secondary" aria-label={`Remove ${upstream.url}`} onClick={() => void act(() => request("DELETE", `/api/upstreams/${encodeURIComponent(upstream.id)}`))}>Remove</button>
                                    : <span className="muted">--upstream</span>}</td>
                            </tr>
                        ))}
                    </tbody>
                </table>
            )}
            <form className="inline-form" onSubmit={addUpstream}>
                <label className="field"><span>Upstream URL</span>
                    <input value={newUpstream.url} placeholder="http://gpu-box:8080" onChange={(event) => setNewUpstream({...newUpstream, url: event.target.value})}/>
                </label>
                <label className="field"><span>Key (optional)</span>
                    <input value={newUpstream.key} type="password" onChange={(event) => setNewUpstream({...newUpstream, key: event.target.value})}/>
                </label>
                <button type="submit">Add upstream</button>
            </form>
            {error != null && <p className="error" role="alert">{error}</p>}
        </section>
    );
}
