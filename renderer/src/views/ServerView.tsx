import {useState} from "react";
import {get} from "../api.js";
import type {AccessSettings, LoadedEntry, RequestLogEntry, ServerInfo} from "../api.js";
import {CopyButton} from "../components/CopyButton.js";
import {formatSeconds} from "../format.js";
import {usePolling} from "../usePolling.js";
import {AccessPanel} from "./server/AccessPanel.js";
import {agentSnippets} from "./server/agentSnippets.js";
import type {AgentSnippet} from "./server/agentSnippets.js";
import {RoutesPanel} from "./server/RoutesPanel.js";

const LOG_LENGTH = 200;

/** Where tools reach this server, how to call it, and what it is doing now. */
export function ServerView() {
    const [info, setInfo] = useState<ServerInfo | undefined>();
    const [models, setModels] = useState<string[]>([]);
    const [log, setLog] = useState<RequestLogEntry[]>([]);
    const [error, setError] = useState<string | undefined>();
    const [access, setAccess] = useState<AccessSettings | undefined>();
    const [loaded, setLoaded] = useState<LoadedEntry[]>([]);

    usePolling(async () => {
        try {
            setInfo(await get<ServerInfo>("/api/server"));
            setError(undefined);
        } catch (caught) {
            setError((caught as Error).message);
        }
    }, 1000);
    usePolling(async () => setModels((await get<{data: {id: string}[]}>("/v1/models")).data.map((model) => model.id)), 10_000);
    usePolling(async () => setLoaded((await get<{models: LoadedEntry[]}>("/api/ps")).models), 5_000);
    usePolling(async () => {
        const after = log.at(-1)?.id ?? 0;
        const fresh = (await get<{requests: RequestLogEntry[]}>(`/api/server/requests?after=${after}`)).requests;
        if (fresh.length > 0)
            setLog((current) => [...current, ...fresh].slice(-LOG_LENGTH));
    }, 1000);

    if (info == null)
        return <section className="page"><h1>Server</h1>{error != null ? <p className="error">{error}</p> : <p className="muted">Reading the server…</p>}</section>;

    const model = models[0] ?? "MODEL";
    const keyed = access?.keys_required === true;
    const key = keyed ? "YOUR_API_KEY" : "unused";
    const curl = `curl ${info.base_url}/chat/completions \\\n  -H 'content-type: application/json' \\\n${keyed ? `  -H 'authorization: Bearer ${key}' \\\n` : ""}  -d '{"model": "${model}", "messages": [{"role": "user", "content": "Hello"}], "stream": true}'`;
    const python = `from openai import OpenAI\n\nclient = OpenAI(base_url="${info.base_url}", api_key="${key}")\nreply = client.chat.completions.create(\n    model="${model}",\n    messages=[{"role": "user", "content": "Hello"}],\n)\nprint(reply.choices[0].message.content)`;
    const javascript = `import OpenAI from "openai";\n\nconst client = new OpenAI({baseURL: "${info.base_url}", apiKey: "${key}"});\nconst reply = await client.chat.completions.create({\n  model: "${model}",\n  messages: [{role: "user", content: "Hello"}],\n});\nconsole.log(reply.choices[0].message.content);`;
    const metrics = info.metrics;

    return (
        <section className="page server-page">
            <h1>Server</h1>
            <section className="panel" aria-labelledby="connect-heading">
                <h2 id="connect-heading">Connect a tool</h2>
                <p>Point any OpenAI client at this <code>base_url</code>; Ollama clients use the address without <code>/v1</code>.</p>
                <div className="copy-row">
                    <code className="base-url" aria-label="base_url">{info.base_url}</code>
                    <CopyButton text={info.base_url} label="Copy base_url"/>
                </div>
                <Snippet title="curl" code={curl} label="Copy curl"/>
                <Snippet title="OpenAI SDK (Python)" code={python} label="Copy Python"/>
                <Snippet title="OpenAI SDK (JavaScript)" code={javascript} label="Copy JavaScript"/>
                <h3>Coding agents</h3>
                <p>
                    Codex CLI and the OpenAI Agents SDK use <code>/v1/responses</code>, Qwen Code <code>/v1/chat/completions</code>; Claude
                    Code and the Anthropic SDK use <code>/v1/messages</code> at the address without <code>/v1</code>. Agents send long
                    prompts: each needs a model whose slots hold the context below (<code>hearth serve --ctx-size</code>).
                </p>
                {agentSnippets(info.base_url, model, key).map((snippet) => (
                    <Snippet key={snippet.title} {...snippet} note={contextNote(snippet, model, loaded.find((entry) => entry.name === model))}/>
                ))}
            </section>
            <AccessPanel info={info} onChange={setAccess}/>
            <RoutesPanel/>
            <section className="panel" aria-labelledby="metrics-heading">
                <h2 id="metrics-heading">Now</h2>
                <dl className="metrics">
                    <div><dt>Requests in flight</dt><dd>{metrics.requestsInFlight}</dd></div>
                    <div><dt>Requests, last minute</dt><dd>{metrics.requestsLastMinute}</dd></div>
                    <div><dt>Requests since start</dt><dd>{metrics.requestsTotal}</dd></div>
                    <div><dt>Errors (4xx / 5xx)</dt><dd>{metrics.clientErrorsTotal} / {metrics.serverErrorsTotal}</dd></div>
                    <div><dt>Median time</dt><dd>{metrics.medianDurationMs != null ? `${metrics.medianDurationMs} ms` : "–"}</dd></div>
                    <div><dt>Models loaded</dt><dd>{info.loaded_models}</dd></div>
                    <div><dt>Up for</dt><dd>{formatSeconds(metrics.uptimeSeconds)}</dd></div>
                </dl>
            </section>
            <section className="panel" aria-labelledby="log-heading">
                <h2 id="log-heading">Requests</h2>
                {log.length === 0
                    ? <p className="muted">No requests yet. Calls from tools and from this app appear here as they finish.</p>
                    : (
                        <table className="request-log" aria-label="Request log">
                            <thead><tr><th>Time</th><th>Method</th><th>Path</th><th>Status</th><th>Duration</th></tr></thead>
                            <tbody>
                                {[...log].reverse().map((entry) => (
                                    <tr key={entry.id} className={entry.status >= 400 || entry.error != null ? "failed" : ""}>
                                        <td>{new Date(entry.at).toLocaleTimeString()}</td>
                                        <td>{entry.method}</td>
                                        <td><code>{entry.path}</code></td>
                                        <td title={entry.error?.message}>{entry.error != null ? `${entry.status}, then ${entry.error.status}` : entry.status}</td>
                                        <td>{entry.durationMs} ms</td>
                                    </tr>
                                ))}
                            </tbody>
                        </table>
                    )}
            </section>
        </section>
    );
}

/** What context an agent needs, and whether the model in its snippet has it per slot (known once the model is loaded). */
function contextNote(snippet: AgentSnippet, model: string, loaded: LoadedEntry | undefined): {text: string, short: boolean} | undefined {
    if (snippet.contextTokens == null)
        return undefined;
    const need = `Needs about ${snippet.contextTokens.toLocaleString()} tokens of context per slot.`;
    if (loaded == null)
        return {text: need, short: false};
    const has = loaded.context_length;
    return has >= snippet.contextTokens
        ? {text: `${need} ${model} has ${has.toLocaleString()}.`, short: false}
        : {text: `${need} ${model} has ${has.toLocaleString()}: start the server with --ctx-size ${snippet.ctxSize} (or fewer --parallel slots) for this agent.`, short: true};
}

function Snippet({title, code, label, note}: {title: string, code: string, label: string, note?: {text: string, short: boolean}}) {
    return (
        <div className="snippet">
            <div className="snippet-head"><span>{title}</span><CopyButton text={code} label={label}/></div>
            {note != null ? <p className={note.short ? "snippet-note warning" : "snippet-note muted"}>{note.text}</p> : null}
            <pre><code>{code}</code></pre>
        </div>
    );
}
