import type {FastifyReply} from "fastify";
import type {Engine} from "../../native/Engine.js";
import type {ModelLease} from "../../native/engineTypes.js";
import {ContextOverflowError, DeadlineError, RequestAbortedError} from "../../native/errors.js";
import type {Generation, GenerationReport, LoadedModel, Prompt} from "../../native/LoadedModel.js";
import type {GenerationEvent} from "../../native/types.js";
import type {ImageReader} from "../images/index.js";
import {recordGeneration} from "../observability/requestContext.js";
import {presetOptions, withPreset} from "../presets/applyPreset.js";
import type {ResolvedPreset} from "../presets/resolvePreset.js";
import type {UpstreamsHere} from "../upstreams/upstreamServing.js";
import type {Run} from "./answer.js";
import type {ContextWarnings} from "./ContextWarnings.js";
import {Reply} from "./Reply.js";
import {requireProjector} from "./requireProjector.js";
import type {RequestOptions} from "./toGenerationOptions.js";
import {RunLifecycle} from "./RunLifecycle.js";

/** One generation a request asks for: the `n` choices of a chat, or each prompt of a completion. */
export type GenerationInput = {prompt: Prompt, options: RequestOptions, /** The request field an overlong prompt is blamed on. */ promptParam?: string};

export type RunRequest = {
    model: string,
    /** How long the model stays loaded after this request (Ollama's `keep_alive`); undefined: the server's setting. */
    keepAliveMs?: number,
    /**
     * Where the request's images are (`messages`, `input`, `images`), when its prompt has any: a model without a
     * projector is refused before it is loaded or queued for them.
     */
    imagesParam?: string,
    /**
     * The generations to run, given the loaded model (which renders the prompts, and counts their images' tokens with
     * its projector, which is asynchronous). They all start, or none does.
     */
    inputs(model: LoadedModel): readonly GenerationInput[] | Promise<readonly GenerationInput[]>
};

/** What every run of the server shares: the engine, and what ends generations early but properly. */
export type GenerationContext = {
    engine: Engine,
    /** Fires when the server starts to shut down. */
    shutdown: AbortSignal,
    /** A generation running longer ends early; `0` is no limit. */
    requestTimeoutMs: number,
    /**
     * The upstreams whose models the routes that translate their API (`/v1/messages`, `/api/chat`…) serve too: a
     * model that an upstream serves and no local model is asked of it as an OpenAI chat completion (`UpstreamRun`).
     */
    upstreams?: UpstreamsHere,
    /** Where a prompt that did not fit its slot is told of, once per model. */
    contextWarnings?: ContextWarnings,
    /** Reads the images requests send (base64, data URIs, and remote URLs where the server allows them). */
    images: ImageReader,
    /** The preset a model name stands for, resolved to its model; undefined for a name that is no preset. */
    presets?: (name: string) => ResolvedPreset | undefined
};

/**
 * A request's generations from start to release: it owns the model lease, the slot of each generation, their
 * cancellation (the client going away aborts them; the request timeout or a shutdown ends them early, as if their
 * tokens ran out) and their release, which happens in one place, {@link release}, whoever calls it first: the
 * reader at the end of the events, the reply's connection closing, or a failed start.
 */
export class GenerationRun implements Run {
    /** When the request began to be served, for Ollama's `total_duration`. */
    readonly startedMs = performance.now();
    /** How long getting the model (loading it, on first use) took. */
    loadMs = 0;
    /** Each generation's reply so far, updated before each of its events is yielded. */
    replies: readonly Reply[] = [];
    readonly #context: GenerationContext;
    readonly #reply: FastifyReply;
    readonly #clientGone = new AbortController();
    readonly #deadline = new AbortController();
    readonly #lifecycle: RunLifecycle;
    #lease: ModelLease | undefined;
    #generations: Generation[] = [];

    private constructor(context: GenerationContext, reply: FastifyReply) {
        this.#context = context;
        this.#reply = reply;
        this.#lifecycle = new RunLifecycle(context, reply, {
            // The request timeout and a shutdown end the run's generations early.
            onDeadline: (kind) => this.#deadline.abort(kind === "shutdown" ? new DeadlineError("shutdown") : new DeadlineError("timeout", context.requestTimeoutMs)),
            onClientGone: () => this.#clientGone.abort(),
            free: () => this.#free()
        });
    }

    /** Gets the model and a slot for each generation; when any cannot start, releases everything and throws. */
    static async start(context: GenerationContext, reply: FastifyReply, request: RunRequest): Promise<GenerationRun> {
        const run = new GenerationRun(context, reply);
        try {
            await run.#start(request);
            return run;
        } catch (error) {
            run.release();
            if (error instanceof ContextOverflowError)
                context.contextWarnings?.promptTooLong(error, reply.log);
            throw error;
        }
    }

    get model(): LoadedModel {
        if (this.#lease == null)
            throw new Error("The run has no model: it has not started");
        return this.#lease.model;
    }

    async #start(request: RunRequest): Promise<void> {
        // A preset runs on its model, with its prompt and its settings as defaults; the routes know nothing of it.
        const preset = this.#context.presets?.(request.model);
        const name = preset?.model ?? request.model;
        if (request.imagesParam != null)
            requireProjector(this.#context.engine, name, request.imagesParam);
        this.#lease = await this.#context.engine.acquire(name, {keepAliveMs: request.keepAliveMs});
        this.loadMs = performance.now() - this.startedMs;
        this.#throwIfReleased();
        const model = this.#lease.model;
        const asked = await request.inputs(preset != null ? withPreset(model, preset) : model);
        const inputs = preset != null ? asked.map((input) => ({...input, options: presetOptions(preset, input.options)})) : asked;
        this.#throwIfReleased();
        const record = this.#reply.request.record;
        // Each generation's tokens count in the request's log line and audit entry.
        const cancellation = {signal: this.#clientGone.signal, deadline: this.#deadline.signal,
            onDone: (report: GenerationReport) => recordGeneration(record, report)};
        const started = await Promise.allSettled(inputs.map((input) => model.start(input.prompt, {...input.options, ...cancellation}, input.promptParam)));
        this.#generations = started.flatMap((result) => result.status === "fulfilled" ? [result.value] : []);
        const failed = started.find((result) => result.status === "rejected");
        if (failed != null)
            throw failed.reason;
        this.#throwIfReleased();
        this.replies = inputs.map(() => new Reply());
    }

    /** The client went away (and released the run) while it started: what the start got since is freed too. */
    #throwIfReleased(): void {
        if (!this.#lifecycle.released)
            return;
        this.#free();
        throw new RequestAbortedError();
    }

    /**
     * The generations' events as they come, each tagged with its generation's index and already added to its
     * {@link replies} entry. Ending early (a `break`, or an error) stops every generation and releases the run.
     */
    async* events(): AsyncGenerator<{index: number, event: GenerationEvent}> {
        const generations = this.#generations;
        const pending = new Map<number, Promise<{index: number, result: IteratorResult<GenerationEvent>}>>();
        const pull = (index: number) => {
            pending.set(index, generations[index]!.events.next().then((result) => ({index, result})));
        };
        generations.forEach((_, index) => pull(index));
        try {
            while (pending.size > 0) {
                const {index, result} = await Promise.race(pending.values());
                if (result.done) {
                    pending.delete(index);
                    continue;
                }
                pull(index);
                this.replies[index]!.add(result.value);
                yield {index, event: result.value};
            }
        } finally {
            // A next() still in flight may yet fail (the client went away); nobody reads it now.
            for (const promise of pending.values())
                promise.catch(() => undefined);
            this.release();
        }
    }

    /** Stops and frees everything the run holds. Idempotent. */
    release(): void {
        this.#lifecycle.release();
    }

    /** Frees what the run holds now; each part frees once, however often this runs. */
    #free(): void {
        for (const generation of this.#generations) {
            generation.release();
            // Finish each generator so its slot cleanup runs even if a next() is still in flight.
            void generation.events.return(undefined).catch(() => undefined);
        }
        this.#lease?.release();
    }
}
