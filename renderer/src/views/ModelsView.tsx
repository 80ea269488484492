import {useCallback, useRef, useState} from "react";
import {get, isRunning} from "../api.js";
import type {Download, LibraryEntry, LoadedEntry, ServerInfo} from "../api.js";
import {usePolling} from "../usePolling.js";
import {DownloadList} from "./models/DownloadList.js";
import {HubBrowser} from "./models/HubBrowser.js";
import {LibraryList, LoadedList} from "./models/LibraryList.js";

/** Find, download, load and delete models. */
export function ModelsView() {
    const [downloads, setDownloads] = useState<Download[]>([]);
    const [models, setModels] = useState<LibraryEntry[]>([]);
    const [loaded, setLoaded] = useState<LoadedEntry[]>([]);
    const [defaults, setDefaults] = useState<ServerInfo["defaults"]>();
    const completed = useRef(new Set<string>());

    const refreshLibrary = useCallback(async () => {
        const [tags, ps] = await Promise.all([get<{models: LibraryEntry[]}>("/api/tags"), get<{models: LoadedEntry[]}>("/api/ps")]);
        setModels(tags.models.filter((model) => model.remote_host == null));
        setLoaded(ps.models);
    }, []);

    const refreshDownloads = useCallback(async () => {
        const list = (await get<{downloads: Download[]}>("/api/downloads")).downloads;
        setDownloads(list);
        const newlyComplete = list.filter((download) => download.status === "complete" && !completed.current.has(download.name));
        newlyComplete.forEach((download) => completed.current.add(download.name));
        if (newlyComplete.length > 0)
            await refreshLibrary();
    }, [refreshLibrary]);

    usePolling(refreshDownloads, downloads.some(isRunning) ? 300 : 2000);
    usePolling(refreshLibrary, 4000);
    usePolling(async () => setDefaults((await get<ServerInfo>("/api/server")).defaults), 60_000);

    return (
        <section className="page models-page">
            <h1>Models</h1>
            <HubBrowser downloads={downloads} onDownloadStarted={() => void refreshDownloads()}/>
            <DownloadList downloads={downloads} onChange={() => void refreshDownloads()}/>
            <LibraryList models={models} loaded={loaded} defaults={defaults} onChange={() => void refreshLibrary()}/>
            <LoadedList loaded={loaded}/>
        </section>
    );
}
