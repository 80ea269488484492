import {existsSync} from "node:fs";
import os from "node:os";
import path from "node:path";
import {parseArgs} from "node:util";
import {DEFAULT_KV_CACHE_TYPE, isQuantizedKvCache, KV_CACHE_TYPES} from "../native/kvCacheTypes.js";
import {DEFAULT_SPECULATION, DRAFT_MODEL_MODES, SPECULATION_MODES} from "../native/decode/speculation.js";
import type {SpeculationMode, SpeculationSettings} from "../native/decode/speculation.js";
import type {KvCacheType} from "../native/kvCacheTypes.js";
import {defaultPromptCacheBytes} from "../native/decode/PromptCache.js";
import {formatByteSize, parseByteSize} from "./byteSize.js";
import {parseRouteFlags, RouteSpecError} from "./routing/routeSpec.js";
import type {RouteSpec} from "./routing/routeSpec.js";

/** The one place where Hearth reads its settings: CLI flags first, then `HEARTH_*` variables, then defaults. */

export type GpuChoice = "auto" | "cuda" | "metal" | "vulkan" | "cpu";
export type GpuLayers = "auto" | "max" | number;
export type FlashAttentionSetting = "auto" | "on" | "off";
export type DecodeLoopSetting = "auto" | "javascript";
const FLASH_ATTENTION_SETTINGS: readonly FlashAttentionSetting[] = ["auto", "on", "off"];
const DECODE_LOOP_SETTINGS: readonly DecodeLoopSetting[] = ["auto", "javascript"];

export type ModelSpec = {
    /** Absolute path of the GGUF file. */
    path: string,
    /** Names the model is served under: its file name without `.gguf`, then any alias. */
    names: string[],
    /** See {@link ProjectorChoice}. */
    mmproj?: ProjectorChoice,
    /**
     * The draft model that drafts tokens for this one (`--draft-model` at the same position): a file's absolute path, or
     * a library name (`hf.co/…` or a short name), which `resolveModelNames` turns into its file's path.
     */
    draftModel?: string
};

/**
 * A model's projector (mmproj) as `--mmproj` gives it: an absolute path, or `false` for none (`--mmproj none`).
 * Absent: the library entry's projector, else an `mmproj*.gguf` beside the model file (see `findProjectorBeside`).
 */
export type ProjectorChoice = string | false;

/** A `--model` that names a model instead of a file: one in the library, or `hf.co/{owner}/{repo}[:QUANT]`. */
export type ModelNameSpec = {name: string, alias: string | undefined, mmproj?: ProjectorChoice, draftModel?: string};

export type ServeConfig = {
    models: ModelSpec[],
    /** Library models to serve like `models` (loaded at start, pinned); `hearth serve` pulls a Hub name first when it is not in the library. */
    modelNames?: ModelNameSpec[],
    /**
     * The address to listen on. Undefined follows the app's "LAN access" setting: `0.0.0.0` when it is on,
     * else `127.0.0.1`. Any address other than loopback needs an API key.
     */
    host: string | undefined,
    /** Defaults to {@link DEFAULT_PORT}. `0` picks a free port. */
    port: number,
    /** Slots (context sequences) per model. Defaults to `4`. */
    parallel: number,
    /**
     * Context size of each slot, in tokens. Defaults to `"auto"`: the model's trained context as far as free memory
     * allows, at least 4,096 tokens (see `planOffload` in `native/`).
     */
    ctxSize: "auto" | number,
    /** The K and V cache's element type (`f16`, `q8_0`, `q4_0`, …). Defaults to `"f16"`. */
    kvCacheType: KvCacheType,
    /** Put each model's projector (mmproj) on the GPU when it fits; `false` keeps it on the CPU (`--no-mmproj-offload`). Defaults to `true`. */
    mmprojOffload?: boolean,
    /** Threads for token evaluation. Defaults to `"auto"`: see `defaultThreadCount` in `native/`. */
    threads: "auto" | number,
    /** Defaults to `"auto"`. */
    gpu: GpuChoice,
    /** Defaults to `"auto"`. */
    gpuLayers: GpuLayers,
    /**
     * The GPU devices to use, by index or name (a name selects every device whose name contains it). Defaults to
     * none: the backend's own choice, which leaves out software renderers such as llvmpipe.
     */
    gpuDevices: string[],
    /** Flash attention: `"auto"` (the default) chooses per model, see `flashAttentionFor` in `native/`. */
    flashAttention: FlashAttentionSetting,
    /** `"auto"` (the default): Hearth's native decode loop where it is built; `"javascript"`: its JavaScript loop. */
    decodeLoop: DecodeLoopSetting,
    /** Speculative decoding (`--speculative`, `--draft-max`). Defaults to `auto`, 16 tokens a draft. */
    speculation?: SpeculationSettings,
    /** Requests that may wait for a slot, per model, before new ones get 503. Defaults to `64`. */
    maxQueue: number,
    /**
     * Bytes of the RAM cache that keeps slot states another conversation evicted, for every model together; `0` turns
     * it off. Defaults to `defaultPromptCacheBytes()`: 8 GiB, at most an eighth of the machine's memory.
     */
    cacheRamBytes: number,
    /** Overrides the chat template read from the GGUF file (`chatml`, `llama2`, `llama3`, …). */
    chatTemplate: string | undefined,
    /** The data folder. Defaults to a per-OS location, see {@link defaultHome}. */
    home: string,
    /** How long a library model stays loaded after its last request; negative keeps it. Defaults to 5 minutes. */
    keepAliveMs: number,
    /** Library models loaded at once. Defaults to `3`. */
    maxLoadedModels: number,
    hub: HubConfig,
    /** Keys accepted for this run only, never stored (`--api-key`, `HEARTH_API_KEY`). Defaults to none. */
    apiKeys: string[],
    /** Origins (`https://app.example`) whose pages may call the API, besides localhost's. Defaults to none. */
    allowedOrigins: string[],
    /** Host names the server answers to besides its address and `localhost` (DNS rebinding guard). Defaults to none. */
    allowedHosts: string[],
    /** Generation requests a minute per API key (per client address without one); `0` is no limit. Defaults to `0`. */
    rateLimitPerMinute: number,
    /** A generation running longer ends with `finish_reason: "length"`; `0` is no limit. Defaults to 10 minutes. */
    requestTimeoutMs: number,
    /** On SIGTERM or SIGINT, how long running replies may go on before they are ended. Defaults to 30 seconds. */
    shutdownTimeoutMs: number,
    /** Keep request bodies (prompts) in the audit log. Defaults to `false`. */
    auditPrompts: boolean,
    /**
     * Fetch the `http(s)` image URLs requests send (with size, time and redirect limits); otherwise they are refused,
     * since a request should not make the server reach the network. Defaults to `false`.
     */
    allowRemoteImages?: boolean,
    /** The largest request body accepted, in bytes; a larger one gets 413. Defaults to {@link DEFAULT_MAX_BODY_BYTES}. */
    maxBodyBytes?: number,
    /** OpenAI-compatible servers whose models are served beside the local ones (`--upstream`). Defaults to none. */
    upstreams?: UpstreamSpec[],
    /** An upstream that sends no reply headers, or no bytes mid-reply, for this long gets a 504; `0` is no limit. Defaults to 5 minutes. */
    upstreamTimeoutMs?: number,
    /** Names that send requests to one of several models by weight, each with an optional shadow (`--route`, `--shadow`). Defaults to none. */
    routes?: RouteSpec[]
};

export type UpstreamSpec = {
    /** The upstream's base URL, `http(s)://host:port[/path]`, without a trailing `/v1`: see {@link normalizeUpstreamUrl}. */
    url: string,
    /** The bearer key the upstream needs, if any; never logged or shown. */
    key: string | undefined
};

export type HubConfig = {
    /** `HF_ENDPOINT`, defaulting to `https://huggingface.co`. */
    endpoint: string,
    /** `HF_TOKEN`, for gated and private repos. */
    token: string | undefined
};

export function hubConfig(env: Env = process.env): HubConfig {
    return {endpoint: env.HF_ENDPOINT || "https://huggingface.co", token: env.HF_TOKEN || undefined};
}

/**
 * A duration as Ollama's `keep_alive` takes it, in milliseconds: a number of seconds, or a string like
 * `30s`, `5m`, `1h30m`, `0` (at once) or `-1` (forever). Undefined when it cannot be read.
 */
export function parseDuration(value: string | number): number | undefined {
    if (typeof value === "number")
        return Number.isFinite(value) ? (value < 0 ? -1 : Math.round(value * 1000)) : undefined;
    const text = value.trim();
    if (/^-?\d+(\.\d+)?$/.test(text))
        return parseDuration(Number(text));
    if (text.startsWith("-") && /^-(\d+(\.\d+)?(ms|s|m|h))+$/.test(text))
        return -1;
    if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(text))
        return undefined;
    const unitMs: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000};
    let total = 0;
    for (const match of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g))
        total += Number(match[1]) * unitMs[match[2]!]!;
    return Math.round(total);
}

/** 4327 spells HEAR on a phone keypad; no other local LLM tool listens there (Ollama 11434, LM Studio 1234, llama.cpp 8080, Jan 1337). */
export const DEFAULT_PORT = 4327;
/**
 * 128 MiB: images come base64-encoded in the JSON body (4/3 of their size), so four full-size 20 MiB photos and the
 * conversation around them fit.
 */
export const DEFAULT_MAX_BODY_BYTES = 128 * 1024 * 1024;
/** The largest `--max-body-size`: a JSON body is parsed from one string, and V8's longest is 512 MiB. */
export const MOST_BODY_BYTES = 500 * 1024 * 1024;
export const GPU_CHOICES: readonly GpuChoice[] = ["auto", "cuda", "metal", "vulkan", "cpu"];

export class ConfigError extends Error {
    override readonly name = "ConfigError";
}

type Env = Readonly<Record<string, string | undefined>>;

export function defaultHome(env: Env = process.env, platform: NodeJS.Platform = process.platform, homeDir = os.homedir()): string {
    if (platform === "win32")
        return path.join(env.APPDATA ?? path.join(homeDir, "AppData", "Roaming"), "Hearth");
    if (platform === "darwin")
        return path.join(homeDir, "Library", "Application Support", "Hearth");
    return path.join(env.XDG_DATA_HOME || path.join(homeDir, ".local", "share"), "hearth");
}

function parseInteger(name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (!/^\d+$/.test(value.trim()))
        throw new ConfigError(`${name} must be a whole number, got "${value}"`);
    const parsed = Number(value);
    if (parsed < min || parsed > max)
        throw new ConfigError(`${name} must be between ${min} and ${max}, got ${parsed}`);
    return parsed;
}

function parseCtxSize(value: string | undefined): "auto" | number {
    if (value == null || value === "auto")
        return "auto";
    if (!/^\d+$/.test(value.trim()))
        throw new ConfigError(`--ctx-size must be auto or a whole number of tokens, got "${value}"`);
    return parseInteger("--ctx-size", value, 64, 1 << 20);
}

function parseGpu(value: string): GpuChoice {
    if ((GPU_CHOICES as readonly string[]).includes(value))
        return value as GpuChoice;
    throw new ConfigError(`--gpu must be one of ${GPU_CHOICES.join(", ")}, got "${value}"`);
}

function parseGpuLayers(value: string): GpuLayers {
    if (value === "auto" || value === "max")
        return value;
    return parseInteger("--gpu-layers", value, 0, 100_000);
}

/** `0,2` or `llvmpipe`: indexes or names; which exist is known only once the backend is probed, at start. */
function parseGpuDevices(value: string): string[] {
    const devices = value.split(",").map((device) => device.trim());
    if (devices.length === 0 || devices.some((device) => device === ""))
        throw new ConfigError(`--gpu-devices must name devices by index or name, separated by commas (such as 0,1 or llvmpipe), got "${value}"`);
    return devices;
}

/** `models/a/Llama-3-8B.Q4_K_M.gguf` is served as `Llama-3-8B.Q4_K_M`. */
export function modelNameFromPath(filePath: string): string {
    return path.basename(filePath).replace(/\.gguf$/i, "");
}

const HUB_MODEL_NAME = /^(?:https?:\/\/)?(?:hf\.co|huggingface\.co)\//i;

/**
 * Whether a `--model` value names a model rather than a file: `hf.co/…`, or a bare library name (no folder,
 * no `.gguf`) when no file of that name is in the current folder, which keeps meaning that file.
 */
function isModelName(value: string, cwd: string): boolean {
    if (HUB_MODEL_NAME.test(value))
        return true;
    return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(value) && !/\.gguf$/i.test(value) && !existsSync(path.resolve(cwd, value));
}

/**
 * `HEARTH_MODEL`'s list, split at the path delimiter. Where that is `:`, a Hub name's scheme (`https:`) and its
 * `:QUANT` tag are put back together with it.
 */
function splitModelList(value: string): string[] {
    const items: string[] = [];
    for (const item of value.split(path.delimiter).filter(Boolean)) {
        const last = items.at(-1);
        const joinsLast = path.delimiter === ":" && last != null && (
            (/^https?$/i.test(last) && item.startsWith("//")) ||
            (HUB_MODEL_NAME.test(last) && !last.slice(last.lastIndexOf("/")).includes(":") && /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(item) && !/\.gguf$/i.test(item)));
        if (joinsLast)
            items[items.length - 1] = `${last}:${item}`;
        else
            items.push(item);
    }
    return items;
}

const serveOptions = {
    model: {type: "string", short: "m", multiple: true},
    alias: {type: "string", short: "a", multiple: true},
    mmproj: {type: "string", multiple: true},
    "no-mmproj-offload": {type: "boolean"},
    host: {type: "string"},
    port: {type: "string", short: "p"},
    parallel: {type: "string"},
    "ctx-size": {type: "string", short: "c"},
    "kv-cache-type": {type: "string"},
    threads: {type: "string", short: "t"},
    gpu: {type: "string"},
    "gpu-layers": {type: "string"},
    "gpu-devices": {type: "string"},
    "flash-attn": {type: "string"},
    "decode-loop": {type: "string"},
    speculative: {type: "string"},
    "draft-max": {type: "string"},
    "draft-model": {type: "string", multiple: true},
    "draft-p-min": {type: "string"},
    "max-queue": {type: "string"},
    "cache-ram": {type: "string"},
    "chat-template": {type: "string"},
    home: {type: "string"},
    "keep-alive": {type: "string"},
    "max-loaded-models": {type: "string"},
    "api-key": {type: "string", multiple: true},
    "allowed-origin": {type: "string", multiple: true},
    "allowed-host": {type: "string", multiple: true},
    "rate-limit": {type: "string"},
    "request-timeout": {type: "string"},
    "shutdown-timeout": {type: "string"},
    "audit-prompts": {type: "boolean"},
    "allow-remote-images": {type: "boolean"},
    "max-body-size": {type: "string"},
    upstream: {type: "string", multiple: true},
    "upstream-key": {type: "string", multiple: true},
    "upstream-timeout": {type: "string"},
    route: {type: "string", multiple: true},
    shadow: {type: "string", multiple: true},
    help: {type: "boolean", short: "h"}
} as const;

export const SERVE_USAGE = `Usage: hearth serve [options]

  -m, --model M           GGUF file to serve (repeatable); served under its file name without .gguf.
                          Or a library model's name, or hf.co/{owner}/{repo}[:QUANT] (pulled first
                          when it is not in the library): served under its library name
  -a, --alias NAME        another name for the model given at the same position (repeatable)
      --mmproj FILE       the projector (mmproj GGUF) that lets the model at the same position
                          see images (repeatable; none for no projector; default: the library's,
                          else an mmproj*.gguf beside the model file)       HEARTH_MMPROJ
      --no-mmproj-offload keep projectors on the CPU (default: on the GPU when they fit)
                                                                            HEARTH_NO_MMPROJ_OFFLOAD
      --host ADDR         address to listen on (default 127.0.0.1, or 0.0.0.0 when LAN
                          access is on in the app); anything but loopback needs a key HEARTH_HOST
  -p, --port N            port, 0 for any free one (default ${DEFAULT_PORT})              HEARTH_PORT
      --parallel N        slots per model: requests generated at once (default 4) HEARTH_PARALLEL
  -c, --ctx-size N        context size of each slot in tokens, or auto (default auto: the
                          model's trained context as far as memory allows) HEARTH_CTX_SIZE
      --kv-cache-type T   K/V cache type: f16 (default), q8_0 (about 1.9x the context in
                          the same memory), q4_0, q4_1, q5_0, q5_1, iq4_nl, bf16, f32
                                                                            HEARTH_KV_CACHE_TYPE
  -t, --threads N         CPU threads for evaluation (default: see README)      HEARTH_THREADS
      --gpu BACKEND       auto|cuda|metal|vulkan|cpu (default auto)             HEARTH_GPU
      --gpu-layers N      auto|max|N layers to offload to the GPU (default auto) HEARTH_GPU_LAYERS
      --gpu-devices LIST  GPU devices to use, by index or name, comma-separated
                          (default: the backend's choice; see hearth system)  HEARTH_GPU_DEVICES
      --flash-attn MODE   auto|on|off (default auto: off for tiny attention heads on the
                          CPU, where it is slower, else llama.cpp's choice)   HEARTH_FLASH_ATTN
      --decode-loop L     auto|javascript (default auto: the native loop where it
                          was built, see README)                             HEARTH_DECODE_LOOP
      --speculative S     auto|off|ngram|draft: draft tokens from n-grams of the prompt and
                          reply, or with the draft model, and from a request's prediction,
                          verified in one batch (default auto: the draft model where one is
                          given, only in slots where drafts are mostly right) HEARTH_SPECULATIVE
      --draft-max N       tokens one draft holds at most (default 16)        HEARTH_DRAFT_MAX
      --draft-model M     a small model with the same vocabulary that drafts tokens for the
                          --model at the same position (repeatable; a file, a library name or
                          hf.co/...; none for none)                           HEARTH_DRAFT_MODEL
      --draft-p-min P     a draft model's draft ends before a token it gives less than this
                          probability (default 0.75)                          HEARTH_DRAFT_P_MIN
      --max-queue N       requests that may wait for a slot (default 64)        HEARTH_MAX_QUEUE
      --cache-ram SIZE    RAM for slot states other conversations evicted, restored when
                          they come back: 512mb, 4gb, 0 for none (default ${formatByteSize(defaultPromptCacheBytes())},
                          8 GiB or an eighth of memory)                      HEARTH_CACHE_RAM
      --chat-template T   override the model's template: chatml, llama2, llama3, mistral, gemma, general
      --home DIR          data folder (default ${defaultHome()})
                                                                            HEARTH_HOME
      --keep-alive D      how long a library model stays loaded when idle: 30s, 5m, 1h,
                          0 unloads at once, -1 never (default 5m)             HEARTH_KEEP_ALIVE
      --max-loaded-models N  library models loaded at once (default 3)      HEARTH_MAX_LOADED_MODELS

Access and limits:
      --api-key KEY       accept this API key for this run (repeatable); hearth keys create
                          stores one instead                                  HEARTH_API_KEY
      --allowed-origin O  let web pages from O (https://app.example, or *) call the API
                          (repeatable; localhost pages always may)            HEARTH_ALLOWED_ORIGINS
      --allowed-host H    answer requests for host name H too (repeatable)    HEARTH_ALLOWED_HOSTS
      --rate-limit N      generation requests a minute per key, 0 for none (default 0)
                                                                            HEARTH_RATE_LIMIT
      --request-timeout D a longer generation is ended: 90s, 10m, 0 for none (default 10m)
                                                                            HEARTH_REQUEST_TIMEOUT
      --shutdown-timeout D  on SIGTERM, how long running replies may finish (default 30s)
                                                                            HEARTH_SHUTDOWN_TIMEOUT
      --audit-prompts     keep request bodies (prompts) in the audit log      HEARTH_AUDIT_PROMPTS
      --allow-remote-images  fetch the http(s) image URLs requests send (20 MiB, 10 s, 3
                          redirects at most; by default they are refused)     HEARTH_ALLOW_REMOTE_IMAGES
      --max-body-size S   largest request body, 1mb to 500mb (default 128mb); an image
                          in a request takes 4/3 of its file size             HEARTH_MAX_BODY_SIZE

Upstreams:
      --upstream URL[#KEY]  serve the models of this OpenAI-compatible server too (repeatable;
                          comma-separated in the variable)                    HEARTH_UPSTREAMS
      --upstream-key KEY  bearer key of the --upstream at the same position (repeatable)
      --upstream-timeout D  an upstream silent for this long gets a 504 (default 5m)
                                                                            HEARTH_UPSTREAM_TIMEOUT

Routes:
      --route NAME=MODEL[:WEIGHT],MODEL[:WEIGHT]...  a request for NAME goes to one of the models
                          by weight, local or an upstream's (repeatable; separated by ; in the
                          variable)                                           HEARTH_ROUTES
      --shadow NAME=MODEL also send each request for the route NAME to MODEL in the background
                          and compare the replies (repeatable)                HEARTH_SHADOWS

Without --model, every model in the library is served by name (hearth ls lists them) and loads on
first use. HF_ENDPOINT and HF_TOKEN set the Hugging Face Hub and its access token.

Environment: HEARTH_MODEL takes model paths and names separated by "${path.delimiter}".`;

export type ServeArgs = {config: ServeConfig, help: boolean};

/** Parses `hearth serve` flags over the `HEARTH_*` environment. Throws {@link ConfigError} with a message for a person. */
export function parseServeArgs(argv: readonly string[], env: Env = process.env, cwd = process.cwd()): ServeArgs {
    let values;
    try {
        ({values} = parseArgs({args: [...argv], options: serveOptions, allowPositionals: false, strict: true}));
    } catch (error) {
        throw new ConfigError((error as Error).message);
    }

    const modelPaths = values.model ?? (env.HEARTH_MODEL ? splitModelList(env.HEARTH_MODEL) : []);
    const aliases = values.alias ?? (env.HEARTH_ALIAS ? env.HEARTH_ALIAS.split(",").filter(Boolean) : []);
    if (aliases.length > modelPaths.length)
        throw new ConfigError(`--alias was given ${aliases.length} times but --model only ${modelPaths.length}; each alias names the model at the same position`);

    const projectors = parseProjectors(values.mmproj, env.HEARTH_MMPROJ, modelPaths.length, cwd);
    const draftModels = parseDraftModels(values["draft-model"], env.HEARTH_DRAFT_MODEL, modelPaths.length, cwd);

    const models: ModelSpec[] = [];
    const modelNames: ModelNameSpec[] = [];
    modelPaths.forEach((modelPath, index) => {
        const alias = aliases[index];
        const mmproj = projectors[index];
        const draftModel = draftModels[index];
        const extras = {...mmproj != null ? {mmproj} : {}, ...draftModel != null ? {draftModel} : {}};
        if (isModelName(modelPath, cwd)) {
            modelNames.push({name: modelPath, alias, ...extras});
            return;
        }
        const names = [modelNameFromPath(modelPath)];
        if (alias != null && !names.includes(alias))
            names.push(alias);
        models.push({path: path.resolve(cwd, modelPath), names, ...extras});
    });
    const seen = new Set<string>();
    for (const name of models.flatMap((model) => model.names)) {
        if (seen.has(name))
            throw new ConfigError(`two models are served under the name "${name}"; give one of them an --alias`);
        seen.add(name);
    }

    const pick = (flag: string | undefined, envName: string) => flag ?? env[envName];
    const port = pick(values.port, "HEARTH_PORT");
    const parallel = pick(values.parallel, "HEARTH_PARALLEL");
    const ctxSize = pick(values["ctx-size"], "HEARTH_CTX_SIZE");
    const threads = pick(values.threads, "HEARTH_THREADS");
    const gpu = pick(values.gpu, "HEARTH_GPU");
    const gpuLayers = pick(values["gpu-layers"], "HEARTH_GPU_LAYERS");
    const gpuDevices = pick(values["gpu-devices"], "HEARTH_GPU_DEVICES");
    const flashAttention = pick(values["flash-attn"], "HEARTH_FLASH_ATTN") ?? "auto";
    if (!(FLASH_ATTENTION_SETTINGS as readonly string[]).includes(flashAttention))
        throw new ConfigError(`--flash-attn must be one of ${FLASH_ATTENTION_SETTINGS.join(", ")}, got "${flashAttention}"`);
    const kvCacheType = pick(values["kv-cache-type"], "HEARTH_KV_CACHE_TYPE") ?? DEFAULT_KV_CACHE_TYPE;
    if (!(KV_CACHE_TYPES as readonly string[]).includes(kvCacheType))
        throw new ConfigError(`--kv-cache-type must be one of ${KV_CACHE_TYPES.join(", ")}, got "${kvCacheType}"`);
    if (isQuantizedKvCache(kvCacheType as KvCacheType) && flashAttention === "off")
        throw new ConfigError(`--kv-cache-type ${kvCacheType} needs flash attention (llama.cpp reads a quantized V cache only with it): drop --flash-attn off, or use --kv-cache-type f16`);
    const decodeLoop = pick(values["decode-loop"], "HEARTH_DECODE_LOOP") ?? "auto";
    if (!(DECODE_LOOP_SETTINGS as readonly string[]).includes(decodeLoop))
        throw new ConfigError(`--decode-loop must be one of ${DECODE_LOOP_SETTINGS.join(", ")}, got "${decodeLoop}"`);
    const speculative = pick(values.speculative, "HEARTH_SPECULATIVE") ?? DEFAULT_SPECULATION.mode;
    if (!(SPECULATION_MODES as readonly string[]).includes(speculative))
        throw new ConfigError(`--speculative must be one of ${SPECULATION_MODES.join(", ")}, got "${speculative}"`);
    if (DRAFT_MODEL_MODES.includes(speculative) && !draftModels.some((draftModel) => draftModel != null))
        throw new ConfigError(`--speculative ${speculative} drafts with a draft model: give one with --draft-model, after the --model it drafts for`);
    const draftMax = pick(values["draft-max"], "HEARTH_DRAFT_MAX");
    const draftPMin = pick(values["draft-p-min"], "HEARTH_DRAFT_P_MIN");
    const draftMinProbability = draftPMin != null ? Number(draftPMin) : undefined;
    if (draftMinProbability != null && !(draftPMin!.trim() !== "" && draftMinProbability >= 0 && draftMinProbability <= 1))
        throw new ConfigError(`--draft-p-min must be a probability from 0 to 1, got "${draftPMin}"`);
    const maxQueue = pick(values["max-queue"], "HEARTH_MAX_QUEUE");
    const cacheRam = pick(values["cache-ram"], "HEARTH_CACHE_RAM");
    const keepAlive = pick(values["keep-alive"], "HEARTH_KEEP_ALIVE");
    const keepAliveMs = keepAlive != null ? parseDuration(keepAlive) : 5 * 60 * 1000;
    if (keepAliveMs == null)
        throw new ConfigError(`--keep-alive must be a duration such as 30s, 5m or 1h (0 unloads at once, -1 never), got "${keepAlive}"`);
    const maxLoadedModels = pick(values["max-loaded-models"], "HEARTH_MAX_LOADED_MODELS");
    const rateLimit = pick(values["rate-limit"], "HEARTH_RATE_LIMIT");
    const list = (flag: string[] | undefined, envName: string) => flag ?? (env[envName] ?? "").split(",").map((item) => item.trim()).filter(Boolean);
    const allowedOrigins = list(values["allowed-origin"], "HEARTH_ALLOWED_ORIGINS");
    for (const origin of allowedOrigins)
        if (normalizeOrigin(origin) == null)
            throw new ConfigError(`--allowed-origin must be an origin such as https://app.example or http://localhost:3000, or *, got "${origin}"`);
    const apiKeys = list(values["api-key"], "HEARTH_API_KEY");
    for (const key of apiKeys)
        if (key.length < 8 || /\s/.test(key))
            throw new ConfigError("--api-key must be at least 8 characters with no spaces; hearth keys create makes a strong one");

    const upstreamTexts = list(values.upstream, "HEARTH_UPSTREAMS");
    const upstreamKeys = values["upstream-key"] ?? [];
    if (upstreamKeys.length > upstreamTexts.length)
        throw new ConfigError(`--upstream-key was given ${upstreamKeys.length} times but --upstream only ${upstreamTexts.length}; each key belongs to the upstream at the same position`);
    const upstreams = upstreamTexts.map((text, index) => parseUpstream(text, upstreamKeys[index]));
    const upstreamUrls = new Set<string>();
    for (const upstream of upstreams) {
        if (upstreamUrls.has(upstream.url))
            throw new ConfigError(`the upstream ${upstream.url} is given twice`);
        upstreamUrls.add(upstream.url);
    }

    let routes: RouteSpec[];
    try {
        routes = parseRouteFlags(values.route ?? (env.HEARTH_ROUTES ?? "").split(";").map((item) => item.trim()).filter(Boolean), list(values.shadow, "HEARTH_SHADOWS"));
    } catch (error) {
        if (error instanceof RouteSpecError)
            throw new ConfigError(error.message);
        throw error;
    }

    return {
        help: values.help === true,
        config: {
            models,
            ...modelNames.length > 0 ? {modelNames} : {},
            host: pick(values.host, "HEARTH_HOST") || undefined,
            port: port != null ? parseInteger("--port", port, 0, 65535) : DEFAULT_PORT,
            parallel: parallel != null ? parseInteger("--parallel", parallel, 1, 256) : 4,
            ctxSize: parseCtxSize(ctxSize),
            kvCacheType: kvCacheType as KvCacheType,
            mmprojOffload: !(values["no-mmproj-offload"] === true || isTrue(env.HEARTH_NO_MMPROJ_OFFLOAD)),
            threads: threads != null && threads !== "auto" ? parseInteger("--threads", threads, 1, 1024) : "auto",
            gpu: gpu != null ? parseGpu(gpu) : "auto",
            gpuLayers: gpuLayers != null ? parseGpuLayers(gpuLayers) : "auto",
            gpuDevices: gpuDevices != null ? parseGpuDevices(gpuDevices) : [],
            flashAttention: flashAttention as FlashAttentionSetting,
            decodeLoop: decodeLoop as DecodeLoopSetting,
            speculation: {
                mode: speculative as SpeculationMode,
                draftMax: draftMax != null ? parseInteger("--draft-max", draftMax, 1, 256) : DEFAULT_SPECULATION.draftMax,
                ...draftMinProbability != null ? {draftMinProbability} : {}
            },
            maxQueue: maxQueue != null ? parseInteger("--max-queue", maxQueue, 0, 100_000) : 64,
            cacheRamBytes: parseCacheRam(cacheRam),
            chatTemplate: pick(values["chat-template"], "HEARTH_CHAT_TEMPLATE") || undefined,
            home: resolveHome(values.home, env, cwd),
            keepAliveMs,
            maxLoadedModels: maxLoadedModels != null ? parseInteger("--max-loaded-models", maxLoadedModels, 1, 1000) : 3,
            hub: hubConfig(env),
            apiKeys,
            allowedOrigins: allowedOrigins.map((origin) => normalizeOrigin(origin)!),
            allowedHosts: list(values["allowed-host"], "HEARTH_ALLOWED_HOSTS").map((host) => host.toLowerCase()),
            rateLimitPerMinute: rateLimit != null ? parseInteger("--rate-limit", rateLimit, 0, 1_000_000) : 0,
            requestTimeoutMs: parseDurationFlag("--request-timeout", pick(values["request-timeout"], "HEARTH_REQUEST_TIMEOUT"), 10 * 60 * 1000),
            shutdownTimeoutMs: parseDurationFlag("--shutdown-timeout", pick(values["shutdown-timeout"], "HEARTH_SHUTDOWN_TIMEOUT"), 30 * 1000),
            auditPrompts: values["audit-prompts"] === true || isTrue(env.HEARTH_AUDIT_PROMPTS),
            allowRemoteImages: values["allow-remote-images"] === true || isTrue(env.HEARTH_ALLOW_REMOTE_IMAGES),
            maxBodyBytes: parseMaxBodySize(pick(values["max-body-size"], "HEARTH_MAX_BODY_SIZE")),
            upstreams,
            upstreamTimeoutMs: parseDurationFlag("--upstream-timeout", pick(values["upstream-timeout"], "HEARTH_UPSTREAM_TIMEOUT"), 5 * 60 * 1000),
            routes
        }
    };
}

const isTrue = (value: string | undefined) => value === "1" || value === "true";

/**
 * `--mmproj` values by the position of the `--model` each belongs to (an empty value skips a position), or
 * `HEARTH_MMPROJ` for a single model. Whether a file is a projector is checked at start, by its header.
 */
function parseProjectors(flags: string[] | undefined, fromEnv: string | undefined, modelCount: number, cwd: string): (ProjectorChoice | undefined)[] {
    const values = flags ?? (fromEnv ? [fromEnv] : []);
    if (flags == null && values.length > 0 && modelCount !== 1)
        throw new ConfigError(`HEARTH_MMPROJ names the projector of a single --model, and ${modelCount} are given; use --mmproj once per --model instead`);
    if (values.length > modelCount)
        throw new ConfigError(`--mmproj was given ${values.length} times but --model only ${modelCount}; each projector belongs to the model at the same position`);
    return values.map((value) => {
        if (value === "")
            return undefined;
        if (value === "none")
            return false;
        const file = path.resolve(cwd, value);
        if (!existsSync(file))
            throw new ConfigError(`--mmproj ${value}: there is no such file (${file})`);
        return file;
    });
}

/**
 * `--draft-model` values by the position of the `--model` each drafts for, as `--mmproj` pairs (an empty value or
 * `none` skips a position), or `HEARTH_DRAFT_MODEL` for a single model: a file (which must exist), or a library name.
 */
function parseDraftModels(flags: string[] | undefined, fromEnv: string | undefined, modelCount: number, cwd: string): (string | undefined)[] {
    const values = flags ?? (fromEnv ? [fromEnv] : []);
    if (values.length > 0 && modelCount === 0)
        throw new ConfigError("--draft-model drafts for the --model at the same position, and no --model is given");
    if (flags == null && values.length > 0 && modelCount !== 1)
        throw new ConfigError(`HEARTH_DRAFT_MODEL names the draft model of a single --model, and ${modelCount} are given; use --draft-model once per --model instead`);
    if (values.length > modelCount)
        throw new ConfigError(`--draft-model was given ${values.length} times but --model only ${modelCount}; each draft model belongs to the model at the same position`);
    return values.map((value) => {
        if (value === "" || value === "none")
            return undefined;
        if (isModelName(value, cwd))
            return value;
        const file = path.resolve(cwd, value);
        if (!existsSync(file))
            throw new ConfigError(`--draft-model ${value}: there is no such file (${file})`);
        return file;
    });
}

/** At least 1 MiB, which any chat request fits; at most {@link MOST_BODY_BYTES}. */
function parseMaxBodySize(value: string | undefined): number {
    if (value == null)
        return DEFAULT_MAX_BODY_BYTES;
    const bytes = parseByteSize(value);
    if (bytes == null || bytes < 1024 * 1024 || bytes > MOST_BODY_BYTES)
        throw new ConfigError(`--max-body-size must be a size from 1mb to 500mb, such as 64mb or 256mb, got "${value}"`);
    return bytes;
}

function parseCacheRam(value: string | undefined): number {
    if (value == null)
        return defaultPromptCacheBytes();
    const bytes = parseByteSize(value);
    if (bytes == null || bytes > Number.MAX_SAFE_INTEGER)
        throw new ConfigError(`--cache-ram must be a size such as 512mb or 4gb, or 0 for none, got "${value}"`);
    return bytes;
}

function parseDurationFlag(name: string, value: string | undefined, fallbackMs: number): number {
    if (value == null)
        return fallbackMs;
    const ms = parseDuration(value);
    if (ms == null || ms < 0)
        throw new ConfigError(`${name} must be a duration such as 30s, 10m or 1h, or 0 for none, got "${value}"`);
    return ms;
}

/**
 * `scheme://host[:port]` in the form browsers send in `Origin` (lower case, no default port, no path),
 * or `*`; undefined when `value` is not an origin.
 */
export function normalizeOrigin(value: string): string | undefined {
    if (value === "*")
        return value;
    try {
        const url = new URL(value);
        if (url.origin === "null" || url.pathname !== "/" || url.search || url.hash || url.username || url.password || !value.includes("://"))
            return undefined;
        return url.origin;
    } catch {
        return undefined;
    }
}

/**
 * An upstream's base URL as Hearth keeps it: `http(s)://host[:port][/path]` with no trailing slash and no `/v1`
 * (Hearth adds `/v1/...` itself, so `http://gpu:8080` and `http://gpu:8080/v1` are the same upstream); undefined
 * when `value` is not such a URL. Credentials in the URL are refused: a key goes after `#` or in `--upstream-key`.
 */
export function normalizeUpstreamUrl(value: string): string | undefined {
    let url: URL;
    try {
        url = new URL(value.trim());
    } catch {
        return undefined;
    }
    if ((url.protocol !== "http:" && url.protocol !== "https:") || url.username || url.password || url.search || url.hash)
        return undefined;
    const pathname = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
    return `${url.origin}${pathname}`;
}

/** `URL` or `URL#KEY` (the key may also come from `--upstream-key`). The key never appears in an error message. */
export function parseUpstream(text: string, key?: string): UpstreamSpec {
    const hash = text.indexOf("#");
    const urlText = hash >= 0 ? text.slice(0, hash) : text;
    const url = normalizeUpstreamUrl(urlText);
    if (url == null)
        throw new ConfigError(`--upstream must be an http(s) URL such as http://gpu-box:8080 or http://gpu-box:8080/v1 (a key goes after #), got "${urlText}"`);
    const upstreamKey = (hash >= 0 ? text.slice(hash + 1) : undefined) || key || undefined;
    if (upstreamKey != null && /\s/.test(upstreamKey))
        throw new ConfigError(`the key of the upstream ${url} contains spaces`);
    return {url, key: upstreamKey};
}

/** The data folder: `--home`, else `HEARTH_HOME`, else {@link defaultHome}. */
export function resolveHome(flag: string | undefined, env: Env = process.env, cwd = process.cwd()): string {
    return path.resolve(cwd, flag || env.HEARTH_HOME || defaultHome(env));
}
