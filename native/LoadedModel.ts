import {LlamaText} from "node-llama-cpp";
import type {Llama, LlamaContext, LlamaEmbeddingContext, LlamaGrammar, LlamaModel, Token} from "node-llama-cpp";
import {ChatFormat} from "./chat/ChatFormat.js";
import type {CallSyntax, ChatTurn} from "./chat/ChatFormat.js";
import {readGgufHeader} from "../models/readGgufHeader.js";
import {chatWrapperTypeFor} from "./chatTemplates.js";
import {nativeContextOf, nativeDecodeLoopTarget} from "./addonAccess.js";
import {attentionHeadSize, flashAttentionFor} from "./flashAttention.js";
import type {FlashAttentionSetting} from "./flashAttention.js";
import {DecodeLoop} from "./decode/DecodeLoop.js";
import {NativeDecodeLoop, visionAddonFor} from "./decode/NativeDecodeLoop.js";
import type {DecodeLoopSetting} from "./decode/NativeDecodeLoop.js";
import {sequenceStates} from "./decode/sequenceStates.js";
import {PromptCache} from "./decode/PromptCache.js";
import type {PrefixSources} from "./decode/reusePrefix.js";
import {DEFAULT_SPECULATION} from "./decode/speculation.js";
import {loadDraftModel} from "./decode/loadDraftModel.js";
import type {LoadedDraftModel} from "./decode/loadDraftModel.js";
import type {DraftTally, SpeculationSettings} from "./decode/speculation.js";
import {KvSequence} from "./decode/SlotDecoder.js";
import type {SlotDecoder} from "./decode/SlotDecoder.js";
import {ContextOverflowError, ImagesNotSupportedError, InvalidRequestError, RequestAbortedError, UnsupportedKvCacheError} from "./errors.js";
import {ggmlTypeName, isQuantizedKvCache, KV_CACHE_QUANT_BLOCK} from "./kvCacheTypes.js";
import type {KvCacheType} from "./kvCacheTypes.js";
import {compileJsonSchema, jsonGrammarStop} from "./jsonSchema/index.js";
import {generateOnSlot} from "./decode/generateOnSlot.js";
import type {PreparedGeneration, ToolGrammars} from "./decode/generateOnSlot.js";
import {markupTokens} from "./markupTokens.js";
import {prefetch} from "./decode/prefetch.js";
import {SlotScheduler} from "./decode/SlotScheduler.js";
import {stopTriggerStrings} from "./decode/stopTriggerStrings.js";
import type {SlotLease} from "./decode/SlotScheduler.js";
import {callableTools} from "./toolCalls.js";
import {placeImages, promptTokenCount} from "./vision/placeImages.js";
import type {PlacedImage} from "./vision/placeImages.js";
import {ImageProjector} from "./vision/ImageProjector.js";
import type {ChatMessage, PromptImage, GenerationEvent, GenerationOptions, ResponseFormat, Timings, ToolDefinition, Usage} from "./types.js";

export type LoadModelOptions = {
    names: readonly string[],
    path: string,
    /** Slots (context sequences). */
    parallel: number,
    /** Context size of each slot, in tokens. */
    ctxSize: number,
    /** The K and V cache's element type. Defaults to `"f16"`. */
    kvCacheType?: KvCacheType,
    /**
     * The context size was chosen by Hearth's plan to fit free memory (`--ctx-size auto`): skip node-llama-cpp's own
     * check, whose estimate of a context is often several times Hearth's measured one (2.9 GiB against 0.09 for stories260K
     * at 2,048 tokens x 64 slots, 6.5 against 2.3 for synthetic-llama-23M at 8,192 x 32), so it would refuse a context
     * the plan sized to fill free memory.
     * Defaults to `false`: a size asked for is checked by node-llama-cpp too.
     */
    contextSizedByPlan?: boolean,
    threads: number,
    flashAttention: FlashAttentionSetting,
    /** `auto`: the native decode loop where it is built. Defaults to `auto`. */
    decodeLoop?: DecodeLoopSetting,
    /** Speculative decoding. Defaults to `auto`, 16 tokens a draft. */
    speculation?: SpeculationSettings,
    gpuLayers: "auto" | "max" | number,
    maxQueue: number,
    /** A `--chat-template` name overriding the template in the GGUF file. */
    chatTemplate?: string,
    /** The RAM cache of evicted slot states, shared by the engine's models. Defaults to none (prefixes are still copied between slots). */
    promptCache?: PromptCache,
    /** The model's projector (mmproj GGUF), with which it sees images. Defaults to none. */
    projectorPath?: string,
    /** Run the projector on the GPU (when the model runs on one). Defaults to `true`. */
    projectorOnGpu?: boolean,
    /** A draft model that drafts tokens for it (`--draft-model`, the native loop only), with its layers on the GPU. Defaults to none. */
    draftModelPath?: string,
    draftGpuLayers?: number,
    /**
     * Told of every generation that ran to its end, for metrics and the audit log, and of every one that failed once it
     * had started (without `timings`), with the tokens it did produce.
     */
    onGenerationDone?: (report: GenerationReport) => void
};

export type DecodeLoopReport = {kind: "native"} | {kind: "javascript", reason: string};

/** What a generation did. A generation that failed has no `timings`, and its usage counts the tokens it did produce. */
export type GenerationReport = {model: string, usage: Usage, timings?: Timings, drafts?: DraftTally};

/**
 * A prompt ready to run: its tokens, the stop strings its template implies, and for a chat, how to read the reply.
 * A chat with images has them in order, each to go where `turn.imageMarks` says once the projector has made its tokens.
 */
export type Prompt = {tokens: Token[], stops: string[], turn?: ChatTurn, images?: readonly PromptImage[]};

/** A generation that holds a slot. Iterate `events` to run it; `events` returns the slot when it ends. */
export type Generation = {
    readonly events: AsyncGenerator<GenerationEvent>,
    /** Returns the slot of a generation that was never iterated; does nothing once it runs. Idempotent. */
    release(): void
};

const grammarCacheSize = 32;
/** The batch (and micro-batch) of a model that sees: the most image tokens one image may have. */
const visionBatchSize = 1024;
const maxEmbeddingContextSize = 8192;

/** One model in memory: its context, whose sequences are the slots, and the scheduler that hands them out. */
export class LoadedModel {
    readonly names: readonly string[];
    readonly path: string;
    /** Unix seconds when it finished loading. */
    readonly createdAt: number;
    readonly model: LlamaModel;
    readonly context: LlamaContext;
    readonly scheduler: SlotScheduler;
    readonly #loop: SlotDecoder;
    /** Which decode loop runs its slots: Hearth's native one, or the JavaScript one and why. */
    readonly decodeLoop: DecodeLoopReport;
    readonly chatFormat: ChatFormat;
    readonly ctxSizePerSlot: number;
    readonly #threads: number;
    readonly #speculation: SpeculationSettings;
    /** Every reply's drafts so far, for the acceptance /api/ps shows. */
    readonly #drafts: DraftTally = {drafted: 0, accepted: 0};
    readonly #onGenerationDone: ((report: GenerationReport) => void) | undefined;
    readonly #vocabularySize: number;
    readonly #grammars = new Map<string, Promise<LlamaGrammar>>();
    /** Found on the first request with a grammar: it takes a pass over the whole vocabulary. */
    #markupTokens: Uint32Array | undefined;
    #embeddingContext: Promise<LlamaEmbeddingContext> | undefined;
    /** The model's projector (mmproj), with which it sees images; undefined for a text-only model. */
    #projector: ImageProjector | undefined;
    /** Why a model that has a projector cannot use it here. */
    #visionUnavailable: string | undefined;
    #embeddingQueue: Promise<unknown> = Promise.resolve();
    readonly #prefixSources: PrefixSources;
    /** Its draft model (`--draft-model`), drafting in `draft` and `auto`; undefined without one. */
    #draftModel: LoadedDraftModel | undefined;
    /** Why a model given a draft model does not draft with it here (the JavaScript loop, a projector). */
    draftModelUnavailable: string | undefined;

    private constructor(options: LoadModelOptions, model: LlamaModel, context: LlamaContext, chatFormat: ChatFormat) {
        this.names = options.names;
        this.path = options.path;
        this.createdAt = Math.floor(Date.now() / 1000);
        this.model = model;
        this.context = context;
        this.chatFormat = chatFormat;
        this.ctxSizePerSlot = options.ctxSize;
        this.#threads = options.threads;
        const speculation = options.speculation ?? DEFAULT_SPECULATION;
        // auto drafts n-grams only where every layer runs on a GPU (see SpeculationSettings.ngram).
        const allOnGpu = model.llama.gpu !== false && model.gpuLayers >= model.fileInsights.totalLayers;
        this.#speculation = {...speculation, ngram: speculation.ngram ?? (speculation.mode === "auto" ? allOnGpu : speculation.mode !== "draft")};
        this.#onGenerationDone = options.onGenerationDone;
        this.#vocabularySize = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length ?? Number.MAX_SAFE_INTEGER;
        // Hearth keeps the sequences itself (ids 0..parallel-1) and decodes them in its own loop: the native
        // one where it is built, else the JavaScript one.
        const native = options.decodeLoop === "javascript" ? {reason: "chosen with --decode-loop javascript"} : NativeDecodeLoop.create(model, context);
        this.#loop = native instanceof NativeDecodeLoop ? native : new DecodeLoop(model, nativeContextOf(context), context.batchSize, sequenceStates(model, context));
        this.decodeLoop = native instanceof NativeDecodeLoop ? {kind: "native"} : {kind: "javascript", reason: native.reason};
        const sequences = Array.from({length: options.parallel}, (_, id) => new KvSequence(id));
        this.scheduler = new SlotScheduler(sequences, options.maxQueue);
        this.#prefixSources = {slots: this.scheduler.slots, cache: options.promptCache ?? new PromptCache(0), owner: this};
    }

    static async load(llama: Llama, options: LoadModelOptions): Promise<LoadedModel> {
        const model = await llama.loadModel({modelPath: options.path, gpuLayers: options.gpuLayers});
        try {
            const kvCacheType = options.kvCacheType ?? "f16";
            const quantizedCache = isQuantizedKvCache(kvCacheType);
            if (quantizedCache)
                checkQuantizedKvCache(options.names[0]!, kvCacheType, model, options.flashAttention);
            // node-llama-cpp gives each sequence (slot) its own contextSize of KV cache; requests are bounded to it.
            const context = await model.createContext({
                contextSize: options.ctxSize,
                sequences: options.parallel,
                threads: options.threads,
                // llama.cpp reads a quantized V cache only in its flash-attention kernel.
                flashAttention: quantizedCache ? true : flashAttentionFor(options.flashAttention, model),
                // A batch that holds an image whole: llama.cpp decodes some models' images non-causally, in one micro-batch
                // (node-llama-cpp's n_ubatch is its batch size), and aborts when an image is larger (images are sized to fit it).
                batchSize: Math.min(options.projectorPath != null ? visionBatchSize : 512, options.ctxSize * options.parallel),
                ignoreMemorySafetyChecks: options.contextSizedByPlan === true,
                ...kvCacheType !== "f16" ? {experimentalKvCacheKeyType: ggmlTypeName(kvCacheType), experimentalKvCacheValueType: ggmlTypeName(kvCacheType)} : {}
            });
            const chatWrapperType = options.chatTemplate != null ? chatWrapperTypeFor(options.chatTemplate) : undefined;
            const loaded = new LoadedModel(options, model, context, new ChatFormat(model, chatWrapperType));
            try {
                if (options.projectorPath != null)
                    await loaded.#loadProjector(llama, options.projectorPath, options.projectorOnGpu ?? true);
                if (options.draftModelPath != null)
                    await loaded.#loadDraftModel(llama, options.draftModelPath, options);
            } catch (error) {
                await loaded.dispose();
                throw error;
            }
            return loaded;
        } catch (error) {
            await model.dispose();
            throw error;
        }
    }

    /**
     * Loads the model's projector and lets the decode loop evaluate its images. A projector this build cannot use (no
     * multimodal library in the addon) leaves the model text-only, and its image requests are refused saying why.
     */
    async #loadProjector(llama: Llama, path: string, onGpu: boolean): Promise<void> {
        const vision = visionAddonFor(llama);
        if ("reason" in vision) {
            this.#visionUnavailable = vision.reason;
            return;
        }
        const target = nativeDecodeLoopTarget(this.model, this.context);
        const projector = await ImageProjector.load(vision, target.model, path, {useGpu: onGpu && llama.gpu !== false, threads: this.#threads, batchSize: this.context.batchSize});
        this.#loop.setProjector({
            native: projector.native,
            evaluate: (chunk, sequence, position) => vision.evaluateImage(target.context, target.model, target.expected, projector.native, chunk, sequence, position)
        });
        this.#projector = projector;
    }

    /** Loads the draft model where it can draft: on the native loop, for a model that does not see images. */
    async #loadDraftModel(llama: Llama, path: string, options: LoadModelOptions): Promise<void> {
        if (!(this.#loop instanceof NativeDecodeLoop))
            this.draftModelUnavailable = "the JavaScript decode loop does not draft with a draft model";
        else if (this.#projector != null || options.projectorPath != null)
            this.draftModelUnavailable = "a model that sees images does not draft";
        else
            this.#draftModel = await loadDraftModel(llama, this.#loop, {
                path, gpuLayers: options.draftGpuLayers ?? 0, ctxSize: options.ctxSize, parallel: options.parallel,
                batchSize: this.context.batchSize, threads: options.threads, flashAttention: options.flashAttention,
                ...this.#speculation.draftMinProbability != null ? {minProbability: this.#speculation.draftMinProbability} : {}
            });
    }

    /** Reads the GGUF header only, to fail fast on a file that is not a model before anything is loaded. */
    static async checkFile(path: string): Promise<void> {
        await readGgufHeader(path);
    }

    get name(): string {
        return this.names[0]!;
    }

    /**
     * How it drafts, and its drafts' tokens so far: drafted and kept. `off` for a model that sees images (see the native
     * loop's CreateDrafter).
     */
    get speculation(): SpeculationSettings & DraftTally & {draftModelName?: string} {
        const mode = this.#projector == null ? this.#speculation.mode : "off";
        // The JavaScript loop drafts from predictions and n-grams only: it has no draft model.
        const drafting = this.#draftModel != null && this.decodeLoop.kind === "native" && (mode === "draft" || mode === "auto");
        return {
            mode,
            draftMax: this.#speculation.draftMax,
            ngram: this.#speculation.ngram,
            ...this.#drafts,
            ...drafting ? {draftModelName: this.#draftModel!.name} : {}
        };
    }

    /** A chat rendered in the model's own format, with the tools the tool choice allows and its reasoning switch. */
    chatPrompt(messages: readonly ChatMessage[], options: Pick<GenerationOptions, "tools" | "reasoning"> = {}): Prompt {
        const tools = options.tools;
        for (const tool of tools?.definitions ?? [])
            if (!/^[^\s]{1,128}$/u.test(tool.name))
                throw new InvalidRequestError(`The tool name "${tool.name}" must be 1 to 128 characters without spaces`, "tools");
        const offered = tools != null ? callableTools(tools.definitions, tools.choice) : [];
        const turn = this.chatFormat.render(messages, {tools: offered, reasoning: options.reasoning});
        const images = messages.flatMap((message) => "images" in message ? message.images ?? [] : []);
        return {tokens: turn.tokens, stops: turn.stops, turn, ...images.length > 0 ? {images} : {}};
    }

    /** A raw prompt: text, or token ids (checked against the vocabulary). */
    textPrompt(prompt: string | readonly number[]): Prompt {
        const tokens = typeof prompt === "string" ? this.model.tokenize(prompt, false) : this.#checkTokenIds(prompt, "prompt");
        const bos = this.model.tokens.bos;
        if (bos != null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos)
            tokens.unshift(bos);
        return {tokens, stops: []};
    }

    #checkTokenIds(ids: readonly number[], param: string): Token[] {
        const vocabularySize = this.#vocabularySize;
        if (ids.some((id) => !Number.isInteger(id) || id < 0 || id >= vocabularySize))
            throw new InvalidRequestError(`Token ids must be whole numbers from 0 to ${vocabularySize - 1}`, param);
        return [...ids] as Token[];
    }

    detokenize(ids: readonly number[]): string {
        return this.model.detokenize(this.#checkTokenIds(ids, "prompt"));
    }

    /**
     * Checks a request against the prompt and builds its grammars, then waits for a slot.
     * Rejects with a 4xx error for a request that cannot run, or {@link QueueFullError} when the queue is full.
     */
    async start(prompt: Prompt, options: GenerationOptions, promptParam = "messages"): Promise<Generation> {
        const job = await this.#prepare(await this.#withImages(prompt, promptParam), options, promptParam);
        const queuedAt = performance.now();
        const lease = await this.scheduler.acquire(job.promptTokens, options.signal, options.deadline);
        job.queueMs = performance.now() - queuedAt;
        return this.#run(lease, job, options.onDone);
    }

    /** A prompt's length as llama.cpp counts it, its images' tokens included (each made into tokens by the projector). */
    async promptTokenCount(prompt: Prompt, param = "messages"): Promise<number> {
        const placed = await this.#withImages(prompt, param);
        return promptTokenCount(placed.tokens, placed.placed ?? []);
    }

    /** Whether the model sees images, or why not. */
    get vision(): {available: true} | {available: false, reason: string} {
        if (this.#projector != null)
            return {available: true};
        return {available: false, reason: this.#visionUnavailable ?? "no projector"};
    }

    /** A prompt with its images' tokens in place: each image made into tokens by the projector (once per image while it is in use). */
    async #withImages(prompt: Prompt, param: string): Promise<Prompt & {placed?: PlacedImage[]}> {
        const images = prompt.images ?? [];
        const turn = prompt.turn;
        if (images.length === 0 || turn == null)
            return prompt;
        const projector = this.#projector;
        if (projector == null)
            throw new ImagesNotSupportedError(this.name, param, this.#visionUnavailable);
        const projected = await Promise.all(images.map((image) => projector.project(image, param)));
        const placed = placeImages(turn, projected);
        return {
            ...prompt,
            tokens: placed.tokens,
            placed: placed.images,
            turn: {...turn, tokens: placed.tokens, imageMarks: [], rerender: (response) => {
                const again = placeImages(turn.rerender(response), projected);
                return {tokens: again.tokens, imageMarks: [], placed: again.images};
            }}
        };
    }

    async #prepare(prompt: Prompt & {placed?: PlacedImage[]}, options: GenerationOptions, promptParam: string): Promise<PreparedGeneration> {
        const room = this.ctxSizePerSlot - prompt.tokens.length;
        if (room < 1)
            throw new ContextOverflowError(prompt.tokens.length, this.ctxSizePerSlot, promptParam, {model: this.name});
        if (prompt.tokens.length === 0)
            throw new InvalidRequestError("The prompt is empty", promptParam);

        const job: PreparedGeneration = {
            promptTokens: prompt.tokens,
            ...prompt.placed != null ? {images: prompt.placed} : {},
            maxNewTokens: options.maxTokens,
            contextTokens: this.ctxSizePerSlot,
            sampling: options.sampling,
            ignoreEos: options.ignoreEos,
            stops: [...prompt.stops, ...options.stop],
            logprobsTop: options.logprobs?.top,
            ...this.#speculation.mode !== "off" && this.#projector == null ? {speculation: {
                ...this.#speculation, mode: this.#speculation.mode,
                ...this.#draftModel != null && this.#speculation.mode !== "ngram" ? {draftModel: true} : {}
            }} : {},
            ...options.prediction != null ? {prediction: this.model.tokenize(options.prediction, false, "trimLeadingSpace")} : {},
            signal: options.signal,
            deadline: options.deadline,
            queueMs: 0,
            prefixSources: this.#prefixSources
        };
        const format = await this.#formatGrammar(options.responseFormat);
        if (format != null) {
            job.grammar = format;
            job.stops = [...job.stops, ...stopTriggerStrings(format.stopGenerationTriggers)];
        }
        job.turn = prompt.turn;
        const tools = prompt.turn?.tools ?? [];
        const call = prompt.turn?.syntax.call;
        if (options.tools != null && tools.length > 0 && call != null)
            job.tools = await this.#toolGrammars(tools, call, options.tools);
        if (job.grammar != null || job.tools != null)
            job.markupTokens = this.#markupTokens ??= markupTokens(this.model);
        return job;
    }

    async #toolGrammars(tools: readonly ToolDefinition[], call: CallSyntax, request: NonNullable<GenerationOptions["tools"]>): Promise<ToolGrammars> {
        // A name, then a newline that ends it (the format's own text follows it, injected).
        const names = `root ::= ${call.optionalPrefixSpace ? "[ ]? " : ""}(${tools.map((tool) => JSON.stringify(tool.name)).join(" | ")}) "\\n"`;
        const params = new Map<string, LlamaGrammar>();
        for (const tool of tools) {
            const schema = tool.parameters != null && Object.keys(tool.parameters).length > 0 ? tool.parameters : {type: "object", properties: {}};
            try {
                params.set(tool.name, await this.#jsonSchemaGrammar(schema, "tools"));
            } catch (error) {
                if (!(error instanceof InvalidRequestError))
                    throw error;
                // Agents offer dozens of tools; one schema the grammar cannot enforce (an unknown format, `not`) must not
                // fail every request. That tool's arguments are then any JSON object, as llama-server leaves them.
                params.set(tool.name, await this.#jsonSchemaGrammar({type: "object"}, "tools"));
            }
        }
        return {
            mode: request.choice === "auto" ? "auto" : "forced",
            parallel: request.parallel !== false,
            names: await this.#cachedGrammar(names, () => this.model.llama.createGrammar({grammar: names, stopGenerationTriggers: [LlamaText("\n")]})),
            params
        };
    }

    #run(lease: SlotLease, job: PreparedGeneration, onRequestDone: ((report: GenerationReport) => void) | undefined): Generation {
        let started = false;
        const name = this.names[0]!;
        const onModelDone = this.#onGenerationDone;
        const onDone = onModelDone == null && onRequestDone == null ? undefined : (report: GenerationReport) => {
            onModelDone?.(report);
            onRequestDone?.(report);
        };
        const total = this.#drafts;
        const loop = this.#loop;
        const events = async function* (model: LlamaModel): AsyncGenerator<GenerationEvent> {
            started = true;
            const usage: Usage = {promptTokens: job.promptTokens.length, completionTokens: 0, cachedPromptTokens: 0, reasoningTokens: 0};
            const drafts: DraftTally = {drafted: 0, accepted: 0};
            try {
                for await (const event of prefetch(generateOnSlot(model, loop, lease, job, usage, drafts), lease.release)) {
                    if (event.type === "done") {
                        total.drafted += drafts.drafted;
                        total.accepted += drafts.accepted;
                        onDone?.({model: name, usage: event.usage, timings: event.timings, ...drafts.drafted > 0 ? {drafts} : {}});
                    }
                    yield event;
                }
            } catch (error) {
                // A client that went away is no failure of the generation; anything else is reported with what it did.
                if (!(error instanceof RequestAbortedError))
                    onDone?.({model: name, usage, ...drafts.drafted > 0 ? {drafts} : {}});
                throw error;
            }
        };
        return {
            events: events(this.model),
            // Once running, the slot is returned when generation has stopped, never while it evaluates.
            release: () => {
                if (!started)
                    lease.release();
            }
        };
    }

    #formatGrammar(format: ResponseFormat | undefined): Promise<LlamaGrammar> | undefined {
        if (format == null || format.type === "text")
            return undefined;
        if (format.type === "json_object")
            return this.#cachedGrammar("json", () => this.model.llama.getGrammarFor("json"));
        return this.#jsonSchemaGrammar(format.schema, "response_format");
    }

    /** A grammar for JSON that validates against a client's schema, compiled by Hearth (a 400 names what it cannot enforce). */
    #jsonSchemaGrammar(schema: unknown, param: string): Promise<LlamaGrammar> {
        const grammar = compileJsonSchema(schema, param);
        return this.#cachedGrammar(grammar, async () => {
            try {
                // The same stop as node-llama-cpp's JSON schema grammars: generateOnSlot ends arguments there.
                return await this.model.llama.createGrammar({grammar, stopGenerationTriggers: [LlamaText(jsonGrammarStop)], trimWhitespaceSuffix: true});
            } catch (error) {
                throw new InvalidRequestError(`This JSON schema cannot be turned into a grammar: ${(error as Error).message}`, param);
            }
        });
    }

    #cachedGrammar(key: string, create: () => Promise<LlamaGrammar>): Promise<LlamaGrammar> {
        let grammar = this.#grammars.get(key);
        if (grammar == null) {
            grammar = create();
            grammar.catch(() => this.#grammars.delete(key));
            this.#grammars.set(key, grammar);
            if (this.#grammars.size > grammarCacheSize)
                this.#grammars.delete(this.#grammars.keys().next().value!);
        }
        return grammar;
    }

    /**
     * Tokens one input to embed may have: a slot's context, at most 8,192 (what embedding models are trained on). The
     * embedding context is created on first use, outside the load's plan, so an automatic 128k-token slot must not
     * give it a 128k-token KV cache too.
     */
    get embeddingContextSize(): number {
        return Math.min(this.ctxSizePerSlot, maxEmbeddingContextSize);
    }

    /** Embeds inputs one after another on a context of its own, so embedding never takes a chat slot. */
    embed(input: string | readonly number[], param = "input"): Promise<{vector: readonly number[], tokens: number}> {
        const run = async () => {
            this.#embeddingContext ??= this.model.createEmbeddingContext({contextSize: this.embeddingContextSize, threads: this.#threads});
            const context = await this.#embeddingContext;
            const tokens = typeof input === "string" ? this.model.tokenize(input, false) : this.#checkTokenIds(input, param);
            if (tokens.length > this.embeddingContextSize)
                throw new ContextOverflowError(tokens.length, this.embeddingContextSize, param, {generates: false});
            if (tokens.length === 0)
                throw new InvalidRequestError("Cannot embed an empty input", param);
            const embedding = await context.getEmbeddingFor(tokens);
            return {vector: embedding.vector, tokens: tokens.length};
        };
        const result = this.#embeddingQueue.then(run, run);
        this.#embeddingQueue = result.catch(() => undefined);
        return result;
    }

    async dispose(): Promise<void> {
        const embeddingContext = this.#embeddingContext;
        this.#embeddingContext = undefined;
        await (await embeddingContext?.catch(() => undefined))?.dispose();
        await this.#loop.close();
        this.#prefixSources.cache.drop(this);
        this.#projector?.close();
        await this.#draftModel?.dispose();
        this.#draftModel = undefined;
        await this.context.dispose();
        await this.model.dispose();
    }
}

/**
 * What llama.cpp requires of a quantized K/V cache, checked before it is asked (its refusal reaches node-llama-cpp
 * only as "Failed to create context"): flash attention, and attention heads a whole number of quantization blocks.
 */
function checkQuantizedKvCache(name: string, type: KvCacheType, model: LlamaModel, flashAttention: FlashAttentionSetting): void {
    if (flashAttention === "off")
        throw new UnsupportedKvCacheError(name, type, "a quantized KV cache needs flash attention, and --flash-attn is off");
    const architecture = model.fileInfo.architectureMetadata as {attention?: {key_length?: number, value_length?: number}};
    const widths = [attentionHeadSize(model), architecture.attention?.value_length].filter((width) => width != null);
    const misfit = widths.find((width) => width % KV_CACHE_QUANT_BLOCK !== 0);
    if (misfit != null)
        throw new UnsupportedKvCacheError(name, type, `its attention heads are ${misfit} wide, not a multiple of the cache's ${KV_CACHE_QUANT_BLOCK}-element blocks`);
}
