import {useCallback, useState} from "react";
import type {ReactNode} from "react";
import type {MessageImage} from "../../api.js";
import {Lightbox} from "../../components/Lightbox.js";
import {useImageSource} from "../../useImageSource.js";

/** The images a user message showed the model, as thumbnails that enlarge on a click. */
export function MessageImages({conversationId, images}: {conversationId: string, images: readonly MessageImage[]}) {
    if (images.length === 0)
        return null;
    return (
        <div className="thumbnails" role="list" aria-label="Images">
            {images.map((image, index) => (
                <StoredThumbnail key={`${index}-${image.sha256}`} label={`Image ${index + 1}`}
                    url={`/api/conversations/${encodeURIComponent(conversationId)}/images/${image.sha256}`}/>
            ))}
        </div>
    );
}

function StoredThumbnail({url, label}: {url: string, label: string}) {
    const source = useImageSource(url);
    return <Thumbnail source={source} label={label}/>;
}

/** One image, small; a click shows it large. */
export function Thumbnail({source, label, children}: {source: string | undefined, label: string, children?: ReactNode}) {
    const [enlarged, setEnlarged] = useState(false);
    const shrink = useCallback(() => setEnlarged(false), []);
    return (
        <div className="thumbnail" role="listitem">
            <button type="button" className="thumbnail-image" aria-label={`Enlarge ${label}`} disabled={source == null} onClick={() => setEnlarged(true)}>
                {source != null ? <img src={source} alt={label}/> : <span className="muted">…</span>}
            </button>
            {children}
            {enlarged && source != null && <Lightbox source={source} label={label} onClose={shrink}/>}
        </div>
    );
}
