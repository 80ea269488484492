import {useState} from "react";

async function copyText(text: string): Promise<void> {
    if (navigator.clipboard != null) {
        await navigator.clipboard.writeText(text);
        return;
    }
    // Pages served over plain http to another machine have no clipboard API.
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
}

export function CopyButton({text, label}: {text: string, label: string}) {
    const [copied, setCopied] = useState(false);
    return (
        <button type="button" className="secondary" onClick={() => {
            void copyText(text).then(() => {
                setCopied(true);
                setTimeout(() => setCopied(false), 1500);
            });
        }}>{copied ? "Copied" : label}</button>
    );
}
