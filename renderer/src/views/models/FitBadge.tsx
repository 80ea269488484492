import type {Fit} from "../../api.js";
import {formatBytes} from "../../format.js";

/** Whether a quantization fits this machine, from the server's plan for it. */
export function FitBadge({fit, error}: {fit: Fit | null, error?: string}) {
    if (fit == null)
        return <span className="badge badge-unknown" title={error ?? "The server could not tell"}>Fit unknown</span>;
    const memory = [fit.vram_bytes > 0 ? `${formatBytes(fit.vram_bytes)} VRAM` : "", fit.ram_bytes > 0 ? `${formatBytes(fit.ram_bytes)} RAM` : ""]
        .filter(Boolean).join(" + ");
    const projector = fit.projector_bytes != null && fit.projector_bytes > 0
        ? `, with its projector (${formatBytes(fit.projector_bytes)} in ${fit.projector_on_gpu === true ? "VRAM" : "RAM"})` : "";
    const title = fit.message ?? `Needs ${memory}${projector} at a context of ${fit.context_size} tokens × ${fit.parallel} slot${fit.parallel === 1 ? "" : "s"} (${fit.context_reason})`;
    switch (fit.placement) {
        case "gpu":
            return <span className="badge badge-good" title={title}>Full GPU</span>;
        case "partial":
            return <span className="badge badge-ok" title={title}>{fit.gpu_layers} of {fit.layers_total} layers on GPU</span>;
        case "cpu":
            return <span className="badge badge-ok" title={title}>CPU only</span>;
        case "none":
            return <span className="badge badge-bad" title={title}>Too big</span>;
    }
}
