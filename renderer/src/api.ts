import {authHeaders, keyRefused} from "./apiKey.js";

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
    const response = await fetch(path, {
        method,
        headers: {...authHeaders(), ...(body !== undefined ? {"content-type": "application/json"} : {})},
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal
    });
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
    parallel: number,
    message?: string
};

export type HubModel = {id: string, name: string, downloads?: number, likes?: number, updated_at?: string, gated?: unknown};
export type HubQuantization = {
    name: string,
    quantization: string,
    size: number,
    files: {path: string, size: number}[],
    default: boolean,
    in_library: boolean,
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
    details: {family: string, parameter_size: string, quantization_level: string}
};

export type LoadedEntry = {name: string, size: number, size_vram: number, context_length: number, expires_at: string};

export type MessageStatus = "complete" | "streaming" | "stopped" | "interrupted" | "error";
export type ReplyStats = {prompt_tokens: number, completion_tokens: number, tokens_per_second: number, time_to_first_token_ms: number};
export type Message = {
    id: string,
    role: "user" | "assistant",
    content: string,
    status: MessageStatus,
    model: string | null,
    stats: ReplyStats | null,
    error: string | null,
    created_at: string
};
export type ConversationOptions = {temperature?: number, top_p?: number, top_k?: number, min_p?: number, seed?: number, max_tokens?: number, repeat_penalty?: number};
export type Conversation = {
    id: string,
    title: string,
    model: string | null,
    system_prompt: string | null,
    options: ConversationOptions,
    created_at: string,
    updated_at: string
};
export type ConversationSummary = Conversation & {message_count: number};
export type ConversationWithMessages = Conversation & {messages: Message[]};
export type ReplyLine =
    | {type: "message", message: Message}
    | {type: "text", text: string}
    | {type: "done", message: Message}
    | {type: "error", error: string, message?: Message};

export type ServerInfo = {
    base_url: string,
    ollama_url: string,
    host: string,
    port: number,
    lan: boolean,
    status: "loading" | "ok",
    backend: {selected?: string, reason?: string} | null,
    defaults: {ctx_size: number, parallel: number, gpu_layers: "auto" | "max" | number},
    loaded_models: number,
    metrics: {
        uptimeSeconds: number,
        requestsTotal: number,
        requestsInFlight: number,
        clientErrorsTotal: number,
        serverErrorsTotal: number,
        medianDurationMs?: number,
        requestsLastMinute: number
    }
};
export type ApiKeyInfo = {id: string, name: string, prefix: string, source: "stored" | "startup", created_at: string | null, last_used_at: string | null};
export type AccessSettings = {
    lan_access: boolean,
    allowed_origins: string[],
    lan_access_now: boolean,
    restart_required: boolean,
    startup_origins: string[],
    keys_required: boolean
};
export type RequestLogEntry = {id: number, at: string, method: string, path: string, status: number, durationMs: number};
