import {useEffect, useState} from "react";
import {authHeaders} from "./apiKey.js";

function readAsDataUri(blob: Blob): Promise<string> {
    return new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result as string);
        reader.onerror = () => reject(reader.error ?? new Error("The image could not be read"));
        reader.readAsDataURL(blob);
    });
}

/**
 * A stored image to show in an `<img>`: fetched with the app's key (an `<img src>` cannot send one) and handed over
 * as a data: URI, which the app's Content-Security-Policy allows (blob: URLs it does not). Undefined until it has arrived.
 */
export function useImageSource(url: string): string | undefined {
    const [source, setSource] = useState<string | undefined>();
    useEffect(() => {
        const abort = new AbortController();
        void fetch(url, {headers: authHeaders(), signal: abort.signal})
            .then(async (response) => response.ok ? await readAsDataUri(await response.blob()) : undefined)
            .then((read) => {
                if (read != null && !abort.signal.aborted)
                    setSource(read);
            }, () => undefined);
        return () => abort.abort();
    }, [url]);
    return source;
}
