import {readFileSync} from "node:fs";
import {stat} from "node:fs/promises";
import type {FastifyInstance} from "fastify";
import Type from "typebox";
import type {Static} from "typebox";
import {fileTypeName, formatModelName, formatParameterCount, parseModelName, readGgufSummary} from "../../models/index.js";
import type {GgufSummary, Library, LibraryModel, PullProgress} from "../../models/index.js";
import type {ModelShape} from "../../models/index.js";
import {defaultQuantization} from "../../models/quantization.js";
import type {QuantEntry} from "../../models/quantization.js";
import type {Engine} from "../../native/Engine.js";
import {InvalidRequestError} from "../../native/errors.js";
import {planOffload} from "../../native/planOffload.js";
import type {GenerationContext} from "../generation/index.js";
import {offloadPlanJson} from "../offloadPlanJson.js";
import {upstreamServing} from "../upstreams/index.js";
import type {UpstreamModelEntry} from "../upstreams/index.js";
import {EventStream, NDJSON, clientAbortSignal} from "../sse.js";
import {useOllamaConventions} from "./ollamaConventions.js";
import {modelCapabilities} from "../modelCapabilities.js";
import type {Capability} from "../modelCapabilities.js";
import {QUIET} from "../routeConfig.js";
import {modelfileText} from "../presets/modelfileText.js";
import {parametersText} from "../presets/presetParameters.js";
import {resolvePreset} from "../presets/resolvePreset.js";

/** Ollama's model-management API over the library, and the Hub lookups the UI uses. */

const ModelRequest = Type.Object({model: Type.Optional(Type.String()), name: Type.Optional(Type.String())});
type ModelRequest = Static<typeof ModelRequest>;
const PullRequest = Type.Object({
    model: Type.Optional(Type.String()),
    name: Type.Optional(Type.String()),
    stream: Type.Optional(Type.Union([Type.Boolean(), Type.Null()])),
    insecure: Type.Optional(Type.Unknown())
});
type PullRequest = Static<typeof PullRequest>;

/** Ollama's newer clients send `model`, older ones `name`. */
function modelOf(body: ModelRequest): string {
    const model = body.model ?? body.name;
    if (model == null || model.trim() === "")
        throw new InvalidRequestError("model is required", "model");
    return model;
}

const VERSION = (JSON.parse(readFileSync(new URL("../../../package.json", import.meta.url), "utf8")) as {version: string}).version;
/** What Ollama shows as the expiry of a model that never unloads. */
const NEVER = "2318-08-22T00:00:00Z";

/**
 * Ollama's `details` of a model, from its GGUF header: the same for a library model (whose header the registry
 * keeps, and whose Hub name may give the quantization) and a file served with `--model` (its header read).
 */
export function modelDetails({gguf, quantization}: {gguf: GgufSummary, quantization?: string | undefined}) {
    const family = gguf.architecture ?? "unknown";
    return {
        parent_model: "",
        format: "gguf",
        family,
        families: [family],
        parameter_size: formatParameterCount(gguf.parameterCount),
        quantization_level: quantization ?? fileTypeName(gguf.modelInfo["general.file_type"]) ?? "unknown"
    };
}

/**
 * `context_length` and `capabilities` are Hearth's own: the model's trained context, which the app's load form offers as
 * its ceiling, and what it can do as `/api/show` and `/v1/models` list it (`vision`: it has a projector).
 */
function tagEntry(model: LibraryModel, capabilities: Capability[]) {
    return {
        name: model.name, model: model.name, modified_at: model.createdAt, size: model.sizeBytes, digest: model.sha256, details: modelDetails(model),
        context_length: model.gguf.contextLength ?? null, capabilities
    };
}

/** The `details` of a model Hearth knows only by name: an upstream's, whose `/v1/models` says nothing more. */
const UNKNOWN_DETAILS = {parent_model: "", format: "", family: "", families: [], parameter_size: "", quantization_level: ""};

/**
 * An upstream's model as Ollama lists a model served elsewhere (its cloud models): `remote_model` and
 * `remote_host`, no size and no digest.
 */
function upstreamTagEntry(model: UpstreamModelEntry) {
    const modifiedAt = new Date(model.created != null ? model.created * 1000 : Date.now()).toISOString();
    return {name: model.id, model: model.id, modified_at: modifiedAt, size: 0, digest: "", details: UNKNOWN_DETAILS, remote_model: model.id, remote_host: model.upstreams[0]?.url ?? ""};
}

/** A library pull's progress, in the statuses Ollama's clients show. */
function toOllamaProgress(progress: PullProgress): object | undefined {
    switch (progress.status) {
        case "resolving":
        case "queued":
            return {status: "pulling manifest"};
        case "downloading":
            return {status: `pulling ${progress.sha256.slice(0, 12)}`, digest: `sha256:${progress.sha256}`, total: progress.totalBytes, completed: progress.completedBytes};
        case "verifying":
            return {status: "verifying sha256 digest"};
        case "success":
            return {status: "success"};
    }
}

export async function ollamaLibraryRoutes(app: FastifyInstance, {engine, library, generation}: {engine: Engine, library: Library, generation: GenerationContext}): Promise<void> {
    useOllamaConventions(app);

    /** Headers of the files served with `--model`, read once each; a file that cannot be read has none. */
    const pinnedHeaders = new Map<string, Promise<GgufSummary | undefined>>();
    const pinnedHeader = (path: string) => {
        let header = pinnedHeaders.get(path);
        if (header == null) {
            header = readGgufSummary(path).catch(() => {
                pinnedHeaders.delete(path);
                return undefined;
            });
            pinnedHeaders.set(path, header);
        }
        return header;
    };

    app.get("/api/version", async () => ({version: VERSION}));

    /** The upstreams' models that no local model's name hides, as `/v1/models` lists them. */
    const upstreamModels = () => {
        const upstreams = generation.upstreams;
        return upstreams == null ? [] : upstreams.pool.models().filter((model) => !upstreams.isLocal(model.id));
    };

    app.get("/api/tags", QUIET, async () => {
        const local = await Promise.all(library.list().map(async (model) => tagEntry(model, await modelCapabilities(engine, model.name))));
        return {models: [...local, ...await presetTagEntries(), ...upstreamModels().map(upstreamTagEntry)]};
    });

    /** Presets listed as Ollama lists a model made with a Modelfile: its base's size and details, `parent_model` its base. */
    async function presetTagEntries() {
        const entries = [];
        for (const preset of library.presets.list()) {
            const resolved = resolvePreset(library, preset.name);
            const model = resolved != null ? library.find(resolved.model) : undefined;
            const path = resolved != null ? engine.pathOf(resolved.model) : undefined;
            const gguf = model?.gguf ?? (path != null ? await pinnedHeader(path) : undefined);
            entries.push({
                name: preset.name, model: preset.name, modified_at: preset.createdAt, size: model?.sizeBytes ?? 0, digest: "",
                details: {...gguf != null ? modelDetails({gguf, quantization: model?.quantization}) : UNKNOWN_DETAILS, parent_model: preset.base},
                context_length: gguf?.contextLength ?? null, capabilities: await modelCapabilities(engine, preset.name)
            });
        }
        return entries;
    }

    /** `/api/show` for a preset: its Modelfile, parameters and system prompt, and its model's details. */
    async function showPreset(name: string) {
        const resolved = resolvePreset(library, name)!;
        const preset = library.presets.get(name)!;
        const model = library.find(resolved.model);
        const path = engine.pathOf(resolved.model);
        const gguf = model?.gguf ?? (path != null ? await pinnedHeader(path) : undefined);
        return {
            modelfile: modelfileText(resolved, preset.base),
            parameters: parametersText(resolved.parameters),
            ...resolved.system != null ? {system: resolved.system} : {},
            template: resolved.template ?? gguf?.chatTemplate ?? "",
            details: {...gguf != null ? modelDetails({gguf, quantization: model?.quantization}) : UNKNOWN_DETAILS, parent_model: preset.base},
            model_info: gguf?.modelInfo ?? {},
            messages: resolved.messages,
            capabilities: await modelCapabilities(engine, name),
            modified_at: preset.createdAt
        };
    }

    app.post<{Body: ModelRequest}>("/api/show", {schema: {body: ModelRequest}}, async (request) => {
        const name = modelOf(request.body);
        if (library.presets.get(name) != null)
            return showPreset(name);
        const upstream = upstreamServing(generation.upstreams, name)?.models().find((model) => model.id === name);
        if (upstream != null)
            return showUpstream(upstream);
        const pinnedPath = library.find(name) == null ? engine.pathOf(name) : undefined;
        if (pinnedPath != null)
            return showPinned(name, pinnedPath);
        const model = library.get(name);
        return {
            modelfile: `# Modelfile generated by Hearth\nFROM ${model.name}\n`,
            parameters: "",
            template: model.gguf.chatTemplate ?? "",
            details: modelDetails(model),
            model_info: model.gguf.modelInfo,
            capabilities: await modelCapabilities(engine, model.name),
            modified_at: model.createdAt
        };
    });

    /**
     * `/api/show` for an upstream's model: only what its name says. Its tools are offered as OpenAI tools, which
     * the upstream's model may or may not use, so it is shown with the capabilities of a chat model.
     */
    function showUpstream(model: UpstreamModelEntry) {
        const entry = upstreamTagEntry(model);
        return {
            modelfile: `# Served by ${model.upstreams.map((upstream) => upstream.name).join(", ")}\nFROM ${model.id}\n`,
            parameters: "",
            template: "",
            details: entry.details,
            model_info: {},
            capabilities: ["completion", "tools"],
            modified_at: entry.modified_at,
            remote_model: entry.remote_model,
            remote_host: entry.remote_host
        };
    }

    /** `/api/show` for a file served with `--model`: what its header says, as for a library model. */
    async function showPinned(name: string, path: string) {
        const gguf = await pinnedHeader(path);
        if (gguf == null)
            throw new InvalidRequestError(`The GGUF header of ${path} could not be read`, "model", "invalid_model_file");
        return {
            modelfile: `# Modelfile generated by Hearth\nFROM ${path}\n`,
            parameters: "",
            template: gguf.chatTemplate ?? "",
            details: modelDetails({gguf}),
            model_info: gguf.modelInfo,
            capabilities: await modelCapabilities(engine, name),
            modified_at: (await stat(path)).mtime.toISOString()
        };
    }

    app.delete<{Body: ModelRequest}>("/api/delete", {schema: {body: ModelRequest}}, async (request) => {
        // A preset goes alone: its base model stays, loaded or not.
        if (library.presets.remove(modelOf(request.body)))
            return {};
        const model = library.get(modelOf(request.body));
        await engine.unload(model.name);
        await library.remove(model.name);
        return {};
    });

    app.post<{Body: PullRequest}>("/api/pull", {schema: {body: PullRequest}}, async (request, reply) => {
        const name = modelOf(request.body);
        const signal = clientAbortSignal(reply);
        if (request.body.stream === false) {
            await library.pull(name, {signal});
            return {status: "success"};
        }
        // The stream opens once the Hub has answered, so a bad name, a missing quantization or a full
        // disk still get their own status code; later errors end the stream with an error line.
        let stream: EventStream | undefined;
        const pending: object[] = [];
        const pull = library.pull(name, {
            signal,
            onProgress: (progress) => {
                const line = toOllamaProgress(progress);
                if (line == null)
                    return;
                if (progress.status === "resolving") {
                    pending.push(line);
                    return;
                }
                stream ??= new EventStream(reply, NDJSON);
                for (const queued of pending.splice(0))
                    void stream.send(queued);
                void stream.send(line);
            }
        });
        try {
            await pull;
        } catch (error) {
            if (stream == null)
                throw error;
            await stream.send({error: (error as Error).message});
        }
        if (stream == null) {
            // It joined a pull that finished before reporting anything more.
            stream = new EventStream(reply, NDJSON);
            await stream.send({status: "success"});
        }
        stream.end();
        return reply;
    });

    app.get("/api/ps", QUIET, async () => {
        const headers = new Map(await Promise.all(engine.loadedModels.map(async (loaded) => [loaded.path, library.find(loaded.names[0]!) == null ? await pinnedHeader(loaded.path) : undefined] as const)));
        return {models: engine.loadedModels.flatMap((loaded) => {
            const model = library.find(loaded.names[0]!);
            const expiresAt = loaded.pinned || loaded.expiresAt == null ? NEVER : loaded.expiresAt.toISOString();
            const common = {
                name: loaded.names[0]!, model: loaded.names[0]!, expires_at: expiresAt,
                size: loaded.plan.ramBytes + loaded.plan.vramBytes, size_vram: loaded.plan.vramBytes, context_length: loaded.plan.contextSize,
                // Hearth's own: which decode loop runs its slots, and why not the native one.
                decode_loop: loaded.decodeLoop.kind, decode_loop_reason: loaded.decodeLoop.kind === "javascript" ? loaded.decodeLoop.reason : null,
                // Hearth's own: how it drafts tokens (speculative decoding), and how many of its drafted tokens were kept.
                speculation: {
                    mode: loaded.speculation.mode, draft_max: loaded.speculation.draftMax, ngram: loaded.speculation.ngram !== false,
                    draft_model: loaded.speculation.draftModelName ?? null,
                    drafted_tokens: loaded.speculation.drafted, accepted_tokens: loaded.speculation.accepted,
                    acceptance: loaded.speculation.drafted > 0 ? loaded.speculation.accepted / loaded.speculation.drafted : null
                },
                // Hearth's own: why the context is this size ("the model's trained context", "what fits in free VRAM with 4 slots").
                context_reason: loaded.plan.contextReason
            };
            const gguf = model?.gguf ?? headers.get(loaded.path);
            return [{...common, digest: model?.sha256 ?? "", details: gguf != null ? modelDetails({gguf, quantization: model?.quantization})
                : {parent_model: "", format: "gguf", family: "", families: [], parameter_size: "", quantization_level: ""}}];
        })};
    });

    app.get<{Querystring: {q?: string, limit?: string}}>("/api/hub/search", async (request) => {
        const query = request.query.q?.trim() ?? "";
        const limit = Math.min(Math.max(Number(request.query.limit ?? 30) || 30, 1), 100);
        const models = await library.hub.search(query, limit);
        return {models: models.map((model) => ({id: model.id, name: `hf.co/${model.id}`, downloads: model.downloads, likes: model.likes, updated_at: model.updatedAt, gated: model.gated}))};
    });

    /**
     * A repo's quantizations, each with whether it fits this machine (on the GPU, partly, on the CPU, or
     * not at all) at the server's context size, or the `ctx_size` and `parallel` asked for.
     */
    app.get<{Querystring: {repo?: string, ctx_size?: string, parallel?: string}}>("/api/hub/files", async (request) => {
        const repo = request.query.repo?.trim() ?? "";
        const parsed = parseModelName(`hf.co/${repo}`);
        if (parsed.kind !== "hub")
            throw new InvalidRequestError("repo must look like owner/name", "repo");
        const settings = {
            ...engine.defaultSettings,
            ctxSize: request.query.ctx_size === "auto" ? "auto" as const : positiveInteger(request.query.ctx_size, "ctx_size") ?? engine.defaultSettings.ctxSize,
            parallel: positiveInteger(request.query.parallel, "parallel") ?? engine.defaultSettings.parallel
        };
        const listing = await library.repoFiles(`${parsed.owner}/${parsed.repo}`);
        const chosen = defaultQuantization(listing.quantizations);
        let shapes: Map<QuantEntry, ModelShape> | undefined;
        let fitError: string | undefined;
        if (chosen != null) {
            try {
                shapes = await library.hubShapes(listing, chosen, AbortSignal.timeout(30_000));
            } catch (error) {
                // The listing is still worth showing; only whether each quantization fits is unknown.
                fitError = `Could not read the model's header from the Hub: ${(error as Error).message}`;
            }
        }
        const available = await engine.memoryAvailable();
        const projector = listing.projector != null ? engine.projectorLoad(listing.projector.sizeBytes) : undefined;
        const quantizations = listing.quantizations.map((entry) => {
            const name = formatModelName({...parsed, quantization: entry.quantization});
            const shape = shapes?.get(entry);
            return {
                name,
                quantization: entry.quantization,
                size: entry.sizeBytes,
                files: entry.files.map((file) => ({path: file.path, size: file.sizeBytes, sha256: file.sha256})),
                default: entry === chosen,
                in_library: library.find(name) != null,
                // Every quantization of a repo with a projector sees: pulling one brings the projector too.
                vision: listing.projector != null,
                projector: listing.projector != null ? {path: listing.projector.path, size: listing.projector.sizeBytes, sha256: listing.projector.sha256} : null,
                fit: shape != null ? offloadPlanJson(planOffload(shape, settings, available, projector)) : null,
                ...fitError != null ? {fit_error: fitError} : {}
            };
        });
        return {repo: listing.repo, commit: listing.commit, quantizations};
    });
}

function positiveInteger(value: string | undefined, param: string): number | undefined {
    if (value == null)
        return undefined;
    if (!/^[1-9][0-9]{0,7}$/.test(value))
        throw new InvalidRequestError(`${param} must be a whole number above 0, got "${value}"`, param);
    return Number(value);
}
