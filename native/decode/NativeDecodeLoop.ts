import {existsSync, readFileSync} from "node:fs";
import {createRequire} from "node:module";
import {dirname, join} from "node:path";
import type {Llama, LlamaContext, LlamaModel, Token} from "node-llama-cpp";
import {addonFolder, bindingFolderKey, manifestPath} from "../addon/addonPath.js";
import type {AddonManifest} from "../addon/addonPath.js";
import {nativeBindingsOf, nativeDecodeLoopTarget} from "../addonAccess.js";
import {TokenQueue, penaltyWindow} from "./SlotDecoder.js";
import type {GenerateRequest, KvSequence, ProjectorBinding, SavedSequence, SlotDecoder, TokenStream} from "./SlotDecoder.js";
import {DRAFT_MIN_PROBABILITY} from "./speculation.js";
import type {DraftRequest} from "./speculation.js";

/** The addon's loop (native/addon/decodeLoop.cpp). */
type AddonLoop = {
    start(id: number, sequence: number, position: number, tokens: Uint32Array, options: Record<string, unknown>): void,
    /** Stops the generation of that id, if it still runs. */
    stop(id: number): void,
    /** JavaScript has taken `count` more tokens of generation `id`: the loop samples at most 64 ahead of that. */
    ack(id: number, count: number): void,
    /**
     * The edits of a sequence's cache, made between batches in the order asked: each returns its result when it was made
     * at once (the loop was idle), else undefined and an edited event follows. truncate and copy: the positions kept;
     * save: 1 when saved; restore: the positions kept.
     */
    truncate(requestId: number, sequence: number, keep: number): number | undefined,
    copy?(requestId: number, sequence: number, source: number, keep: number): number | undefined,
    save?(requestId: number, sequence: number, state: AddonSequenceState, maxBytes: number): number | undefined,
    restore?(requestId: number, sequence: number, state: AddonSequenceState, keep: number): number | undefined,
    keepAlive(alive: boolean): void,
    /** The projector whose image chunks generations may carry (`images` in start's options). */
    setProjector(projector: AddonProjector): void,
    /** A draft model's context whose sequences mirror this one's (native/addon/draftModel.h); throws when its vocabulary does not match. */
    setDraftModel?(context: object, model: object, expected: ContextExpectation, minProbability: number): void,
    close(): void,
    info(): {sequences: number, batchSize: number}
};

/** One part of an image as libmtmd tokenizes it: the text tokens it puts around the image, and the image's own chunk. */
export type AddonImagePart =
    | {type: "text", tokens: Uint32Array}
    | {type: "image", tokens: number, positions: number, nonCausal: boolean, id: string, chunk: object};

/** A model's projector in the addon (native/addon/projector.cpp). */
export type AddonProjector = {
    load(): Promise<void>,
    info(): {vision: boolean, audio: boolean, mrope: boolean},
    /** An encoded file (`data`), or RGB pixels decoded in JavaScript with the image's id (its sha256). */
    tokenize(image: {data: Uint8Array} | {width: number, height: number, pixels: Uint8Array, id: string}): Promise<AddonImagePart[]>,
    close(): void
};

/** What the addon offers for images: projectors, and image evaluation for the JavaScript decode loop. */
export type VisionAddon = {
    Projector: new (model: object, path: string, options: {useGpu: boolean, threads: number, imageMinTokens?: number, imageMaxTokens?: number}) => AddonProjector,
    /** Encodes an image chunk and decodes it into a sequence at `position`; resolves with the position after it. */
    evaluateImage(context: object, model: object, expected: ContextExpectation, projector: AddonProjector, chunk: object, sequence: number, position: number): Promise<number>
};

/** A sequence's state saved in the addon's memory (native/addon/sequenceState.cpp). */
export type AddonSequenceState = {size(): number, free(): void};

/** What the addon offers for copying, saving and restoring sequences; the JavaScript decode loop calls the functions between batches. */
export type SequenceStateAddon = {
    SequenceState: new () => AddonSequenceState,
    copySequence(context: object, model: object, expected: ContextExpectation, target: number, source: number, keep: number): number,
    saveSequence(context: object, model: object, expected: ContextExpectation, sequence: number, state: AddonSequenceState, maxBytes: number): boolean,
    restoreSequence(context: object, model: object, expected: ContextExpectation, sequence: number, state: AddonSequenceState, keep: number): number
};

/**
 * `drafts` (the end of a generation that drafted): tokens drafted from a prediction, of them accepted, then the same for
 * n-grams and for the draft model.
 */
type AddonEvent = {kind: number, sequence: number, value: number, count: number, logprob?: number, top?: number[], message?: string, drafts?: number[]};

/** What JavaScript knows of a context; the addon refuses a context whose own numbers differ. */
export type ContextExpectation = {contextSize: number, sequences: number, batchSize: number};

type Addon = Partial<VisionAddon> & Partial<SequenceStateAddon> & {
    DecodeLoop: new (context: object, model: object, expected: ContextExpectation, onEvents: (events: AddonEvent[]) => void) => AddonLoop,
    /** The node-llama-cpp version it was compiled for and the libllama file it is bound to. */
    buildInfo(): {nodeLlamaCpp: string, libllama: string},
    gpuDevices(): GpuDevice[]
};

/** A GPU (or integrated GPU) device of ggml's backend registry. */
export type GpuDevice = {
    /** Its position among the GPU devices, in ggml's order. */
    index: number,
    /** ggml's name for it, such as `Vulkan0` or `CUDA0`. */
    name: string,
    /** The driver's name for it, such as `NVIDIA GeForce RTX 4090` or `llvmpipe (LLVM 15.0.6, 256 bits)`. */
    description: string,
    freeBytes: number,
    totalBytes: number,
    /** The largest buffer its buffer type allocates (ggml's max size); absent when it has no limit. */
    maxBufferBytes?: number,
    /**
     * The largest tensor it runs operations on; absent when it has no limit (CUDA). ggml aborts the process when a
     * tensor already in the device's memory, such as a layer's K or V cache, is larger (Vulkan: 128 MiB on lavapipe,
     * its storage-buffer range), so memory planning keeps every such tensor within it.
     */
    maxTensorBytes?: number
};

const EventKind = {token: 0, end: 1, edited: 2, failed: 3} as const;

export type NativeDecodeLoopStatus = {available: true} | {available: false, reason: string};

/** `auto`: the native loop where it is built, else the JavaScript one; `javascript`: always the JavaScript one. */
export type DecodeLoopSetting = "auto" | "javascript";

/**
 * Which file each native addon module object came from. node-llama-cpp loads its binary (CPU, Vulkan, CUDA
 * or a source build) with require() and keeps only the module object, and with `--gpu auto` a binary it tried
 * and passed over stays mapped in the process; the file that made the module object a Llama runs on is what
 * tells which libllama is live. Recorded from Node.js's process.dlopen, which require() calls for every
 * native addon; this module is imported before node-llama-cpp starts (loadBackend imports it).
 */
const bindingFiles = new WeakMap<object, string>();
{
    const dlopen = process.dlopen.bind(process);
    process.dlopen = (module: {exports?: unknown}, filename: string, ...flags: unknown[]) => {
        (dlopen as (...args: unknown[]) => void)(module, filename, ...flags);
        if (typeof module.exports === "object" && module.exports != null)
            bindingFiles.set(module.exports, filename);
    };
}

/** The copy of the addon for each node-llama-cpp module object, or why there is none. */
const bound = new WeakMap<object, {addon: Addon} | {reason: string}>();
/** The copy for the backend started last (see nativeDecodeLoopStatus), for the device list. */
let current: Addon | undefined;

function readManifest(): AddonManifest | undefined {
    try {
        return JSON.parse(readFileSync(manifestPath(), "utf8")) as AddonManifest;
    } catch {
        return undefined;
    }
}

/** The version of the node-llama-cpp that runs (its package.json, beside its dist/ folder). */
function installedNodeLlamaCppVersion(): string {
    const entry = createRequire(import.meta.url).resolve("node-llama-cpp");
    let folder = dirname(entry);
    while (!existsSync(join(folder, "package.json")) && dirname(folder) !== folder)
        folder = dirname(folder);
    return (JSON.parse(readFileSync(join(folder, "package.json"), "utf8")) as {version: string}).version;
}

/**
 * Loads the copy of the addon built for the binary a Llama runs on, once per binary. A copy links to its
 * libllama by soname, so it loads only after node-llama-cpp has loaded that libllama (getLlama).
 */
function addonFor(llama: Llama): {addon: Addon} | {reason: string} {
    let bindings: object;
    try {
        bindings = nativeBindingsOf(llama);
    } catch (error) {
        return {reason: (error as Error).message};
    }
    const known = bound.get(bindings);
    if (known != null)
        return known;
    const result = loadAddonFor(bindingFiles.get(bindings));
    bound.set(bindings, result);
    return result;
}

function loadAddonFor(bindingFile: string | undefined): {addon: Addon} | {reason: string} {
    if (bindingFile == null)
        return {reason: "the file of the node-llama-cpp binary in use is unknown (node-llama-cpp started before Hearth's decode loop module was loaded)"};
    const manifest = readManifest();
    if (manifest == null)
        return {reason: "it was not built (npm run build builds it where a C++ compiler is available)"};
    const installed = installedNodeLlamaCppVersion();
    if (manifest.nodeLlamaCpp !== installed)
        return {reason: `it was built for node-llama-cpp ${manifest.nodeLlamaCpp}, and ${installed} is installed (run npm run build)`};
    const bindingFolder = bindingFolderKey(dirname(bindingFile));
    const entry = manifest.addons.find((built) => built.bindingFolder === bindingFolder);
    if (entry == null)
        return {reason: `it was not built for node-llama-cpp's binary in ${bindingFolder} (run npm run build after building or installing a binary)`};
    const path = join(addonFolder(), entry.addon);
    if (!existsSync(path))
        return {reason: `its copy for ${bindingFolder} is missing (run npm run build)`};
    let addon: Addon;
    try {
        addon = createRequire(import.meta.url)(path) as Addon;
    } catch (error) {
        return {reason: `it did not load: ${(error as Error).message.split("\n")[0]}`};
    }
    const info = addon.buildInfo();
    if (info.nodeLlamaCpp !== installed)
        return {reason: `it was compiled for node-llama-cpp ${info.nodeLlamaCpp}, and ${installed} is installed (run npm run build)`};
    if (bindingFolderKey(dirname(info.libllama)) !== bindingFolder)
        return {reason: `it is bound to ${info.libllama}, not to the libllama of node-llama-cpp's binary in ${bindingFolder}`};
    return {addon};
}

/** The addon's image support for the binary a Llama runs on, or why there is none. */
export function visionAddonFor(llama: Llama): VisionAddon | {reason: string} {
    const result = addonFor(llama);
    if (!("addon" in result))
        return {reason: `Hearth's native addon is not available: ${result.reason}`};
    const {Projector, evaluateImage} = result.addon;
    if (Projector == null || evaluateImage == null)
        return {reason: "Hearth's native addon was built without llama.cpp's multimodal library (run npm run build where a C++ compiler is available)"};
    return {Projector, evaluateImage};
}

/** The addon's sequence state functions for the binary a Llama runs on; undefined where the addon is not loaded. */
export function sequenceStateAddonFor(llama: Llama): SequenceStateAddon | undefined {
    const result = addonFor(llama);
    if (!("addon" in result))
        return undefined;
    const {SequenceState, copySequence, saveSequence, restoreSequence} = result.addon;
    if (SequenceState == null || copySequence == null || saveSequence == null || restoreSequence == null)
        return undefined;
    return {SequenceState, copySequence, saveSequence, restoreSequence};
}

/** A state the addon saved, as the decode loops hand it out. */
export function savedSequence(state: AddonSequenceState): SavedSequence {
    return {bytes: state.size(), handle: state, free: () => state.free()};
}

/** Sets what a sequence's cache holds, in JavaScript's view (no spread: a slot may hold more tokens than a call takes arguments). */
export function replaceTokens(sequence: KvSequence, tokens: readonly Token[]): void {
    sequence.contextTokens.length = 0;
    for (const token of tokens)
        sequence.contextTokens.push(token);
}

/** Whether models will decode on the native loop on a started backend (each model's context is checked when it loads). */
export function nativeDecodeLoopStatus(llama: Llama, setting: DecodeLoopSetting = "auto"): NativeDecodeLoopStatus {
    if (setting === "javascript")
        return {available: false, reason: "chosen with --decode-loop javascript"};
    const result = addonFor(llama);
    current = "addon" in result ? result.addon : undefined;
    return "addon" in result ? {available: true} : {available: false, reason: result.reason};
}

/**
 * The GPU and integrated GPU devices that ggml sees, in its order, with their free and total memory: those
 * of `llama`'s binary, else those of the backend started last (whose decode loop status was asked);
 * undefined when no copy of the addon is loaded for it.
 */
export function nativeGpuDevices(llama?: Llama): GpuDevice[] | undefined {
    if (llama == null)
        return current?.gpuDevices();
    const result = addonFor(llama);
    return "addon" in result ? result.addon.gpuDevices() : undefined;
}

/** A process that exits with models loaded (process.exit) stops their loop threads before Node.js tears down. */
const openLoops = new Set<NativeDecodeLoop>();
/** Tokens taken between two acknowledgements to the native loop (which samples at most 64 ahead of them). */
const ackEvery = 8;
process.on("exit", () => {
    for (const loop of openLoops)
        void loop.close();
});

type Running = {
    sequence: KvSequence,
    queue: TokenQueue,
    /** What goes into the sequence, in order: the input, then each sampled token. */
    tokens: Token[]
};

/**
 * Hearth's decode loop on a native thread: decoding and sampling every slot of a context in one loop
 * that never waits for JavaScript (see native/addon/decodeLoop.cpp). JavaScript gets each token as it
 * is sampled, turns it into text and streams it while the next batch decodes; a stop string or a closed
 * client stops the sequence after the batch in flight.
 */
export class NativeDecodeLoop implements SlotDecoder {
    readonly #loop: AddonLoop;
    readonly #running = new Map<number, Running>();
    readonly #edits = new Map<number, {done(value: number): void, reject(error: Error): void}>();
    readonly #addon: Addon;
    /**
     * Sequences that took a copy no decode has made yet: llama.cpp copies a sequence's buffer at the next decode, so
     * until then their state can be neither saved nor overwritten by a restore (which the pending copy would undo).
     */
    readonly #copied = new Set<number>();
    #nextEdit = 0;
    #nextGeneration = 0;
    #closed = false;
    #keptAlive = false;

    private constructor(addon: Addon, model: LlamaModel, context: LlamaContext, expectation: Partial<ContextExpectation>) {
        const target = nativeDecodeLoopTarget(model, context);
        this.#addon = addon;
        this.#loop = new addon.DecodeLoop(target.context, target.model, {...target.expected, ...expectation}, (events) => this.#onEvents(events));
        const info = this.#loop.info();
        const batchSize = expectation.batchSize ?? target.expected.batchSize;
        if (info.sequences !== context.totalSequences || info.batchSize !== batchSize) {
            this.#loop.close();
            throw new Error(`the native loop sees ${info.sequences} sequences and a batch of ${info.batchSize}, not ${context.totalSequences} and ${batchSize}`);
        }
        openLoops.add(this);
    }

    /**
     * The native loop for a context, or the reason there is none. `expectation` replaces what JavaScript
     * tells the addon about the context; only tests pass it, to see a context that fails the addon's checks refused.
     */
    static create(model: LlamaModel, context: LlamaContext, expectation: Partial<ContextExpectation> = {}): NativeDecodeLoop | {reason: string} {
        const result = addonFor(model.llama);
        if (!("addon" in result))
            return result;
        try {
            return new NativeDecodeLoop(result.addon, model, context, expectation);
        } catch (error) {
            return {reason: (error as Error).message};
        }
    }

    generate(sequence: KvSequence, input: readonly Token[], request: GenerateRequest): TokenStream {
        const id = this.#nextGeneration++;
        let taken = 0;
        const queue = new TokenQueue(() => {
            if (this.#running.get(sequence.id)?.queue === queue)
                this.#loop.stop(id);
        }, () => {
            // The loop samples a bounded distance ahead of the reader; it hears what was taken every few tokens.
            if (++taken === ackEvery) {
                taken = 0;
                if (this.#running.get(sequence.id)?.queue === queue)
                    this.#loop.ack(id, ackEvery);
            }
        });
        if (this.#closed) {
            queue.fail(new Error("The model was unloaded"));
            return queue;
        }
        if (this.#running.has(sequence.id)) {
            queue.fail(new Error(`Sequence ${sequence.id} is already generating`));
            return queue;
        }
        const {sampling, grammar} = request;
        try {
            // An image's positions hold placeholders (negative) in JavaScript's view of the sequence; the loop skips them.
            const tokens = Uint32Array.from(input, (token) => token < 0 ? 0 : token);
            this.#loop.start(id, sequence.id, sequence.contextTokens.length, tokens, {
                ...(request.images != null && request.images.length > 0
                    ? {images: request.images.map(({offset, image}) => ({offset, positions: image.positions, chunk: image.chunk}))}
                    : {}),
                maxTokens: request.maxTokens,
                ignoreEos: request.ignoreEos,
                temperature: sampling.temperature ?? 0.8,
                topK: sampling.topK ?? 40,
                topP: sampling.topP ?? 0.95,
                minP: sampling.minP ?? 0.05,
                seed: sampling.seed ?? 0,
                repeatPenalty: sampling.repeatPenalty ?? 1,
                presencePenalty: sampling.presencePenalty ?? 0,
                frequencyPenalty: sampling.frequencyPenalty ?? 0,
                penaltyWindow,
                penaltyTokens: Uint32Array.from(request.history.filter((token) => token >= 0).slice(-penaltyWindow)),
                ...(grammar != null ? {grammar: grammar.grammar, grammarRoot: grammar.rootRuleName} : {}),
                ...(request.bannedTokens != null ? {bannedTokens: request.bannedTokens} : {}),
                ...(request.topLogprobs != null ? {topLogprobs: request.topLogprobs} : {}),
                ...(request.draft != null ? draftOptions(request.draft) : {})
            });
        } catch (error) {
            queue.fail(error);
            return queue;
        }
        this.#running.set(sequence.id, {sequence, queue, tokens: [...input]});
        this.#keepAlive();
        return queue;
    }

    setProjector(projector: ProjectorBinding): void {
        this.#loop.setProjector(projector.native);
    }

    /**
     * Lets a draft model's context draft for this loop's generations (those started with `draft.model`): its sequences
     * mirror this context's. Throws when its vocabulary does not match, or this build of the addon cannot draft with one.
     */
    setDraftModel(model: LlamaModel, context: LlamaContext, minProbability = DRAFT_MIN_PROBABILITY): void {
        if (this.#loop.setDraftModel == null)
            throw new Error("this build of Hearth's native addon cannot draft with a draft model (run npm run build)");
        const draft = nativeDecodeLoopTarget(model, context);
        this.#loop.setDraftModel(draft.context, draft.model, draft.expected, minProbability);
    }

    get sharesState(): boolean {
        return this.#addon.SequenceState != null && this.#loop.copy != null;
    }

    truncate(sequence: KvSequence, length: number): Promise<number> {
        if (length >= sequence.contextTokens.length)
            return Promise.resolve(sequence.contextTokens.length);
        // What lies past `length` is going: from now on nothing may be copied from it.
        sequence.contextTokens.length = length;
        return this.#edit((id) => this.#loop.truncate(id, sequence.id, length), (kept) => keep(sequence, kept));
    }

    copyPrefix(target: KvSequence, source: KvSequence, length: number): Promise<number> {
        // What the source holds now is in its cache, and stays there until an edit asked after this one.
        const tokens = source.contextTokens.slice(0, length);
        target.contextTokens.length = 0;
        return this.#edit((id) => this.#loop.copy!(id, target.id, source.id, tokens.length), (kept) => {
            replaceTokens(target, tokens.slice(0, kept));
            if (kept > 0)
                this.#copied.add(target.id);
            return kept;
        });
    }

    save(sequence: KvSequence, maxBytes: number): Promise<SavedSequence | undefined> {
        if (this.#copied.has(sequence.id) || !this.sharesState)
            return Promise.resolve(undefined);
        const state = new this.#addon.SequenceState!();
        return this.#edit((id) => this.#loop.save!(id, sequence.id, state, maxBytes), (saved) => {
            if (saved === 1)
                return savedSequence(state);
            state.free();
            return undefined;
        });
    }

    restore(sequence: KvSequence, state: SavedSequence, tokens: readonly Token[], length: number): Promise<number> {
        if (this.#copied.has(sequence.id))
            return this.truncate(sequence, 0);
        sequence.contextTokens.length = 0;
        return this.#edit((id) => this.#loop.restore!(id, sequence.id, state.handle as AddonSequenceState, length), (kept) => {
            replaceTokens(sequence, tokens.slice(0, kept));
            return kept;
        });
    }

    /** Asks the loop for an edit of a sequence's cache; `done` turns its result into the promise's. */
    #edit<T>(start: (id: number) => number | undefined, done: (value: number) => T): Promise<T> {
        if (this.#closed)
            return Promise.reject(new Error("The model was unloaded"));
        const id = this.#nextEdit++;
        let value: number | undefined;
        try {
            value = start(id);
        } catch (error) {
            return Promise.reject(error as Error);
        }
        if (value != null)
            return Promise.resolve(done(value));
        return new Promise((resolve, reject) => {
            this.#edits.set(id, {done: (result) => resolve(done(result)), reject});
            this.#keepAlive();
        });
    }

    async close(): Promise<void> {
        if (this.#closed)
            return;
        this.#closed = true;
        openLoops.delete(this);
        // Waits for the batch in flight; what was sampled after it is not delivered.
        this.#loop.close();
        for (const running of this.#running.values()) {
            running.sequence.contextTokens.length = 0;
            running.queue.fail(new Error("The model was unloaded"));
        }
        this.#running.clear();
        for (const edit of this.#edits.values())
            edit.reject(new Error("The model was unloaded"));
        this.#edits.clear();
    }

    /** Pending work keeps Node.js running; an idle loop does not. */
    #keepAlive(): void {
        const alive = this.#running.size + this.#edits.size > 0;
        if (!this.#closed && alive !== this.#keptAlive) {
            this.#keptAlive = alive;
            this.#loop.keepAlive(alive);
        }
    }

    #onEvents(events: AddonEvent[]): void {
        if (this.#closed)
            return;
        for (const event of events) {
            if (event.kind === EventKind.edited) {
                const edit = this.#edits.get(event.count);
                this.#edits.delete(event.count);
                edit?.done(event.value);
                continue;
            }
            // A token comes from a decode, which made every pending copy.
            if (event.kind === EventKind.token)
                this.#copied.clear();
            const running = this.#running.get(event.sequence);
            if (running == null)
                continue;
            if (event.kind === EventKind.token) {
                const token = event.value as Token;
                running.tokens.push(token);
                running.queue.push(event.logprob == null ? {token} : {
                    token,
                    logprob: event.logprob,
                    top: pairs(event.top ?? [])
                });
            } else if (event.kind === EventKind.end) {
                this.#running.delete(event.sequence);
                if (event.drafts != null) {
                    const [predictionDrafted = 0, predictionAccepted = 0, ngramDrafted = 0, ngramAccepted = 0, modelDrafted = 0, modelAccepted = 0] = event.drafts;
                    running.queue.drafts = {predictionDrafted, predictionAccepted, ngramDrafted, ngramAccepted, modelDrafted, modelAccepted};
                }
                // The cache holds the input and the sampled tokens that were fed back, in order.
                running.sequence.contextTokens.push(...running.tokens.slice(0, event.count));
                running.queue.end();
            } else if (event.kind === EventKind.failed) {
                this.#running.delete(event.sequence);
                // The loop dropped the sequence from the cache.
                running.sequence.contextTokens.length = 0;
                running.queue.fail(new Error(event.message ?? "Decoding failed"));
            }
        }
        this.#keepAlive();
    }
}

/** The addon's drafting options; tokens outside the vocabulary (an image's positions) become ones that match nothing. */
function draftOptions(draft: DraftRequest): Record<string, unknown> {
    return {
        // auto adapts its drafts' length and pauses where they fail; ngram and draft draft as much as they can each time.
        draftMode: draft.mode === "auto" ? 2 : 1,
        draftMax: draft.max,
        draftContext: Uint32Array.from(draft.context, (token) => token < 0 ? 0xFFFFFFFF : token),
        draftReplyStart: draft.replyStart,
        draftNgram: draft.ngram === false ? 0 : 1,
        draftModel: draft.model === true ? 1 : 0,
        ...draft.prediction != null ? {prediction: Uint32Array.from(draft.prediction)} : {}
    };
}

/** Shortens a sequence's cached tokens to what the cache kept. */
function keep(sequence: KvSequence, kept: number): number {
    sequence.contextTokens.length = Math.min(kept, sequence.contextTokens.length);
    return sequence.contextTokens.length;
}

function pairs(flat: readonly number[]): (readonly [Token, number])[] {
    const result: (readonly [Token, number])[] = [];
    for (let index = 1; index < flat.length; index += 2)
        result.push([flat[index - 1] as Token, flat[index]!]);
    return result;
}
