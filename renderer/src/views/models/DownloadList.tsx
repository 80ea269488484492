import {isRunning, request} from "../../api.js";
import type {Download} from "../../api.js";
import {formatBytes, formatSeconds} from "../../format.js";

/** Downloads the server is running, with progress, speed and time left; pause, resume, cancel. */
export function DownloadList({downloads, onChange}: {downloads: Download[], onChange: () => void}) {
    const visible = downloads.filter((download) => download.status !== "complete");
    if (visible.length === 0)
        return null;
    const act = (method: string, path: string, name: string) => void request(method, path, {model: name}).catch(() => undefined).finally(onChange);
    return (
        <section className="panel" aria-labelledby="downloads-heading">
            <h2 id="downloads-heading">Downloads</h2>
            <ul className="downloads">
                {visible.map((download) => {
                    const percent = download.totalBytes > 0 ? Math.floor(download.completedBytes / download.totalBytes * 100) : 0;
                    return (
                        <li key={download.name} className="download">
                            <div className="download-head">
                                <span className="download-name">{download.name}</span>
                                <span className="muted">{describe(download)}</span>
                            </div>
                            <div className="progress" role="progressbar" aria-label={`Download of ${download.name}`}
                                aria-valuemin={0} aria-valuemax={100} aria-valuenow={percent} aria-valuetext={`${percent}%`}>
                                <div className="progress-fill" style={{width: `${percent}%`}}/>
                            </div>
                            {download.error != null && <p className="error">{download.error}</p>}
                            <div className="actions">
                                {isRunning(download)
                                    ? <button type="button" className="secondary" onClick={() => act("POST", "/api/downloads/pause", download.name)}>Pause</button>
                                    : <button type="button" className="secondary" onClick={() => act("POST", "/api/downloads", download.name)}>{download.status === "failed" ? "Retry" : "Resume"}</button>}
                                <button type="button" className="secondary danger" onClick={() => act("DELETE", "/api/downloads", download.name)}>Cancel</button>
                            </div>
                        </li>
                    );
                })}
            </ul>
        </section>
    );
}

function describe(download: Download): string {
    const bytes = `${formatBytes(download.completedBytes)} of ${formatBytes(download.totalBytes)}`;
    switch (download.status) {
        case "queued":
            return "Waiting for another download to finish";
        case "downloading":
            return [bytes, download.bytesPerSecond > 0 ? `${formatBytes(download.bytesPerSecond)}/s` : "",
                download.etaSeconds != null ? `${formatSeconds(download.etaSeconds)} left` : ""].filter(Boolean).join(" · ");
        case "verifying":
            return "Checking the file";
        case "paused":
            return `Paused · ${bytes}`;
        case "failed":
            return `Failed · ${bytes}`;
        case "complete":
            return "Done";
    }
}
