import {formatBytes} from "../../format.js";

/** A model that sees images: it has a projector, or (on the Hub) its download brings one of `projectorBytes`. */
export function VisionBadge({projectorBytes}: {projectorBytes?: number}) {
    const title = projectorBytes != null
        ? `Sees images: the download brings its projector (${formatBytes(projectorBytes)})`
        : "Sees images: you can attach pictures in the chat";
    return <span className="badge badge-vision" title={title}>Vision</span>;
}
