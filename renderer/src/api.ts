import type {Conversation, Message} from "../../server/conversations/conversationTypes.js";
import type {RequestMetrics} from "../../server/desktop/RequestLog.js";
import {apiKey, authHeaders, keyRefused} from "./apiKey.js";

/** The server's HTTP API as the app uses it: the same routes any other client could call. */

export class ApiError extends Error {
    constructor(message: string, readonly status: number) {
        super(message);
    }
}

async function errorOf(response: Response): Promise<ApiError> {
    const text = await response.text();
    let message: string;
    try {
        const body = JSON.parse(text) as {error?: string | {message?: string}};
        message = (typeof body.error === "string" ? body.error : body.error?.message) ?? `${response.status} ${response.statusText}`;
    } catch {
        message = text || `${response.status} ${response.statusText}`;
    }
    if (response.status === 401)
        keyRefused(message);
    return new ApiError(message, response.status);
}

export async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const send = () => fetch(path, {
        method,
        headers: {...authHeaders(), ...(body !== undefined ? {"content-type": "application/json"} : {})},
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal
    });
    const sentWith = apiKey();
    let response = await send();
    // A request that went out before the app had the key it holds now (one it has just made) is sent again with it,
    // instead of asking the person for a key.
    if (response.status === 401 && apiKey() != null && apiKey() !== sentWith)
        response = await send();
    if (!response.ok)
        throw await errorOf(response);
    return (response.status === 204 ? undefined : await response.json()) as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => request<T>("GET", path, undefined, signal);

/** POSTs and reads an NDJSON stream line by line. */
export async function streamNdjson<T>(path: string, body: unknown, onLine: (line: T) => void, signal?: AbortSignal): Promise<void> {
    const response = await fetch(path, {method: "POST", headers: {...authHeaders(), "content-type": "application/json"}, body: JSON.stringify(body), signal});
    if (!response.ok || response.body == null)
        throw await errorOf(response);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    for (;;) {
        const {value, done} = await reader.read();
        if (done)
            break;
        buffered += value;
        let newline: number;
        while ((newline = buffered.indexOf("\n")) >= 0) {
            const line = buffered.slice(0, newline).trim();
            buffered = buffered.slice(newline + 1);
            if (line !== "")
                onLine(JSON.parse(line) as T);
        }
    }
    if (buffered.trim() !== "")
        onLine(JSON.parse(buffered) as T);
}

export type Fit = {
    fits: boolean,
    placement: "gpu" | "partial" | "cpu" | "none",
    layers_total: number,
    gpu_layers: number,
    vram_bytes: number,
    ram_bytes: number,
    context_size: number,
    /** Why the context is this size: "the model's trained context", "what fits in free VRAM with 4 slots"… */
    context_reason: string,
    kv_cache_type: string,
    parallel: number,
    message?: string,
    /** The projector's share of `vram_bytes` (`projector_on_gpu`) or `ram_bytes`; 0 for a model that cannot see. */
    projector_bytes?: number,
    projector_on_gpu?: boolean
};

export type HubModel = {id: string, name: string, downloads?: number, likes?: number, updated_at?: string, gated?: unknown};
export type HubQuantization = {
    name: string,
    quantization: string,
    size: number,
    files: {path: string, size: number}[],
    default: boolean,
    in_library: boolean,
    /** The repo has a projector, which a download brings: the model sees images. */
    vision?: boolean,
    projector?: {path: string, size: number} | null,
    fit: Fit | null,
    fit_error?: string
};
export type HubFiles = {repo: string, commit: string, quantizations: HubQuantization[]};

export type Download = {
    name: string,
    status: "queued" | "downloading" | "verifying" | "paused" | "failed" | "complete",
    completedBytes: number,
    totalBytes: number,
    bytesPerSecond: number,
    etaSeconds?: number,
    error?: string
};

/** Whether a download is under way (not paused, failed or done). */
export function isRunning(download: Download): boolean {
    return download.status === "queued" || download.status === "downloading" || download.status === "verifying";
}

export type LibraryEntry = {
    name: string,
    size: number,
    modified_at: string,
    context_length: number | null,
    details: {family: string, parameter_size: string, quantization_level: string},
    /** `vision` among them: the model has a projector and sees images. Absent for an upstream's model. */
    capabilities?: string[],
    /** Set for an upstream's model, which `/api/tags` lists too: not in the library, nothing to load or delete here. */
    remote_host?: string
};

export type LoadedEntry = {name: string, size: number, size_vram: number, context_length: number, context_reason: string, expires_at: string};

export type {Conversation, ConversationOptions, ConversationSummary, Message, MessageImage, MessageStatus, MessageToolCall, ReplyStats} from "../../server/conversations/conversationTypes.js";
export type ConversationWithMessages = Conversation & {messages: Message[]};
export type ReplyLine =
    | {type: "message", message: Message}
    | {type: "text", text: string}
    | {type: "reasoning", text: string}
    | {type: "tool_call", index: number, id: string, name: string}
    | {type: "tool_call_arguments", index: number, text: string}
    | {type: "done", message: Message}
    | {type: "error", error: string, message?: Message};

export type ServerInfo = {
    base_url: string,
    ollama_url: string,
    host: string,
    port: number,
    lan: boolean,
    status: "loading" | "ok",
    backend: {selected?: string, reason?: string, decode_loop?: "native" | "javascript", decode_loop_reason?: string | null} | null,
    defaults: {ctx_size: "auto" | number, parallel: number, gpu_layers: "auto" | "max" | number, threads: number | null},
    loaded_models: number,
    metrics: RequestMetrics
};
export type {AccessSettingsReply as AccessSettings, ApiKeyInfo} from "../../server/access/accessTypes.js";
export type {RequestLogEntry} from "../../server/desktop/RequestLog.js";

export type RouteSideStats = {latency_ms_mean: number | null, latency_ms_p50: number | null, completion_tokens_mean: number | null};
export type RouteInfo = {
    name: string,
    source: "startup" | "stored",
    targets: {model: string, weight: number, share: number, requests: number}[],
    shadow: {
        model: string, in_flight: number, sent: number, dropped: number, failed: number, compared: number, agreed: number,
        agreement: number | null, similarity_mean: number | null, primary: RouteSideStats, shadow: RouteSideStats
    } | null
};
export type UpstreamInfo = {
    id: string, url: string, name: string, source: "startup" | "stored", has_key: boolean, health: "checking" | "up" | "down",
    models: string[], in_flight: number, failures: number, last_error: string | null
};
