import {useEffect, useState} from "react";
import {get} from "./api.js";
import {onKeyRefused} from "./apiKey.js";
import {KeyDialog} from "./components/KeyDialog.js";
import {usePolling} from "./usePolling.js";
import {BenchmarksView} from "./views/BenchmarksView.js";
import {ChatView} from "./views/ChatView.js";
import {ModelsView} from "./views/ModelsView.js";
import {ServerView} from "./views/ServerView.js";

const VIEWS = [
    {path: "chat", label: "Chat"},
    {path: "models", label: "Models"},
    {path: "benchmarks", label: "Benchmarks"},
    {path: "server", label: "Server"}
] as const;
type ViewPath = typeof VIEWS[number]["path"];

function currentView(): ViewPath {
    const path = location.hash.replace(/^#\/?/, "").split("/")[0];
    return VIEWS.find((view) => view.path === path)?.path ?? "chat";
}

export function App() {
    const [view, setView] = useState<ViewPath>(currentView);
    const [health, setHealth] = useState<"loading" | "ok" | "offline">("loading");
    const [keyNeeded, setKeyNeeded] = useState<string | undefined>();
    const [keyDialogDismissed, setKeyDialogDismissed] = useState(false);

    useEffect(() => onKeyRefused(setKeyNeeded), []);

    useEffect(() => {
        const onHashChange = () => setView(currentView());
        addEventListener("hashchange", onHashChange);
        return () => removeEventListener("hashchange", onHashChange);
    }, []);

    usePolling(async () => {
        try {
            setHealth((await get<{status: "loading" | "ok"}>("/health")).status);
        } catch {
            setHealth("offline");
        }
    }, health === "ok" ? 5000 : 1000);

    return (
        <div className="app">
            <header className="topbar">
                <span className="brand">Hearth</span>
                <nav aria-label="Views">
                    {VIEWS.map((item) => (
                        <a key={item.path} href={`#/${item.path}`} aria-current={item.path === view ? "page" : undefined}>{item.label}</a>
                    ))}
                </nav>
                <span className={`health health-${health}`} role="status" title="Server status">
                    {health === "ok" ? "Server running" : health === "loading" ? "Starting…" : "Server not reachable"}
                </span>
            </header>
            <main className="content">
                {view === "chat" && <ChatView/>}
                {view === "models" && <ModelsView/>}
                {view === "benchmarks" && <BenchmarksView/>}
                {view === "server" && <ServerView/>}
            </main>
            {keyNeeded != null && !keyDialogDismissed && <KeyDialog message={keyNeeded} onClose={() => setKeyDialogDismissed(true)}/>}
        </div>
    );
}
