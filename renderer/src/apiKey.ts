/**
 * The API key the app sends when the server needs one. The desktop app hands its window a key of its own
 * in the URL fragment (`#key=…`, never sent over the network); in a browser, the person types one in.
 */

const SESSION = "hearth.apiKey";
const REMEMBERED = "hearth.apiKey.remembered";

type Listener = (message: string) => void;
const listeners = new Set<Listener>();

/** Moves a key given in the URL fragment into this tab's storage and leaves the URL without it. */
export function takeKeyFromUrl(): void {
    const match = /^#key=([^&]+)/.exec(location.hash);
    if (match == null)
        return;
    sessionStorage.setItem(SESSION, decodeURIComponent(match[1]!));
    history.replaceState(null, "", `${location.pathname}${location.search}#/chat`);
}

export function apiKey(): string | undefined {
    return sessionStorage.getItem(SESSION) ?? localStorage.getItem(REMEMBERED) ?? undefined;
}

export function setApiKey(key: string, remember: boolean): void {
    sessionStorage.setItem(SESSION, key);
    if (remember)
        localStorage.setItem(REMEMBERED, key);
    else
        localStorage.removeItem(REMEMBERED);
}

export function authHeaders(): Record<string, string> {
    const key = apiKey();
    return key != null ? {authorization: `Bearer ${key}`} : {};
}

/** Tells the app a request was refused for want of a (valid) key, so it can ask for one. */
export function keyRefused(message: string): void {
    for (const listener of listeners)
        listener(message);
}

export function onKeyRefused(listener: Listener): () => void {
    listeners.add(listener);
    return () => listeners.delete(listener);
}
