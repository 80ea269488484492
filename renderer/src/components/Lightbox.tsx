import {useEffect, useRef} from "react";

/** An image enlarged over the page; Escape, a click anywhere or the close button puts it away. */
export function Lightbox({source, label, onClose}: {source: string, label: string, onClose: () => void}) {
    const close = useRef<HTMLButtonElement>(null);
    useEffect(() => {
        const previous = document.activeElement as HTMLElement | null;
        close.current?.focus();
        const onKey = (event: KeyboardEvent) => {
            if (event.key === "Escape")
                onClose();
        };
        window.addEventListener("keydown", onKey);
        return () => {
            window.removeEventListener("keydown", onKey);
            previous?.focus();
        };
    }, [onClose]);
    return (
        <div className="lightbox" role="dialog" aria-modal="true" aria-label={label} onClick={onClose}>
            <img src={source} alt={label}/>
            <button type="button" ref={close} className="lightbox-close" aria-label="Close">×</button>
        </div>
    );
}
