import type {FastifyReply, FastifyRequest} from "fastify";
import {DeadlineError, RequestAbortedError} from "../../native/errors.js";
import type {GenerationEvent} from "../../native/types.js";
import {ApiError} from "../errors.js";
import {Reply} from "../generation/index.js";
import type {GenerationContext, RequestOptions, Run} from "../generation/index.js";
import {RunLifecycle} from "../generation/RunLifecycle.js";
import {hopsOf, noteUpstreamFailure} from "./forwardToUpstreams.js";
import {toUpstreamRequest} from "./toUpstreamRequest.js";
import type {UpstreamPrompt} from "./toUpstreamRequest.js";
import type {UpstreamCall} from "./UpstreamCall.js";
import {UpstreamEventReader} from "./UpstreamEventReader.js";
import type {UpstreamPool} from "./UpstreamPool.js";

/** What to ask an upstream for: the model as the upstreams name it, and the request as the route read it. */
export type UpstreamRunRequest = {model: string, prompt: UpstreamPrompt, options: RequestOptions};

/**
 * A request answered by an upstream, read as the engine's events so the route's own encoder writes it: the
 * request goes out as an OpenAI chat completion (streamed, with its usage) and each chunk that comes back becomes
 * events of one generation. Like a local run it owns its call, its cancellation (the client going away cancels the
 * request upstream; the request timeout and the end of a shutdown's drain cancel it too: a reply already streaming
 * then ends as if its tokens ran out, one still waiting for its first byte with a 503) and
 * its release, which happens once, in {@link release}, whoever calls it first: the reader at the end of the events,
 * the reply's connection closing, or a failed start.
 */
export class UpstreamRun implements Run {
    readonly startedMs = performance.now();
    /** Nothing is loaded here; an upstream that loads the model spends that time before its first chunk. */
    readonly loadMs = 0;
    replies: readonly Reply[] = [];
    readonly #request: FastifyRequest;
    readonly #cancel = new AbortController();
    readonly #lifecycle: RunLifecycle;
    #deadline: ApiError | DeadlineError | undefined;
    #call: UpstreamCall | undefined;

    private constructor(context: GenerationContext, request: FastifyRequest, reply: FastifyReply) {
        this.#request = request;
        this.#lifecycle = new RunLifecycle(context, reply, {
            // The request timeout and the end of a shutdown's drain cancel the request upstream.
            onDeadline: (kind) => {
                this.#deadline ??= kind === "shutdown" ? new DeadlineError("shutdown") : new ApiError(503,
                    `The upstream's reply ran past the server's request timeout (${Math.round(context.requestTimeoutMs / 100) / 10} s) and was cut short. Retry, or ask for fewer tokens.`,
                    {code: "request_timeout"});
                this.#cancel.abort();
            },
            onClientGone: () => this.#cancel.abort(),
            free: () => this.#call?.release()
        });
    }

    /**
     * Sends the request to an upstream that serves the model and waits for its reply to begin. A failure before
     * then releases everything and is thrown, for the route's error handler to answer in its API's shape: the
     * upstream's own 4xx (`UpstreamRefusedError`), or the 502, 503 or 504 of an upstream that failed.
     */
    static async start(context: GenerationContext, pool: UpstreamPool, request: FastifyRequest, reply: FastifyReply, asked: UpstreamRunRequest): Promise<UpstreamRun> {
        const run = new UpstreamRun(context, request, reply);
        try {
            await run.#start(pool, asked);
            return run;
        } catch (error) {
            run.release();
            const failure = run.#failure(error);
            noteUpstreamFailure(request, reply, failure, asked.model);
            throw failure;
        }
    }

    async #start(pool: UpstreamPool, {model, prompt, options}: UpstreamRunRequest): Promise<void> {
        const hops = hopsOf(this.#request, model);
        this.#request.record.model = model;
        const {path, body} = toUpstreamRequest(prompt, options);
        const call = await pool.forward({model, path, body, signal: this.#cancel.signal, requestId: this.#request.id, hops});
        this.#call = call;
        if (this.#lifecycle.released) {
            call.release();
            throw new RequestAbortedError();
        }
        if (!call.streaming)
            throw call.refusal();
        this.replies = [new Reply()];
    }

    /** The reply's events as its chunks come, folded into {@link replies} first; the last is `done`. Ending early releases the run. */
    async* events(): AsyncGenerator<{index: number, event: GenerationEvent}> {
        const call = this.#call!;
        const reply = this.replies[0]!;
        const reader = new UpstreamEventReader(call.upstream.name, this.startedMs);
        const tagged = (event: GenerationEvent) => {
            reply.add(event);
            if (event.type === "done") {
                this.#request.record.promptTokens += event.usage.promptTokens;
                this.#request.record.completionTokens += event.usage.completionTokens;
            }
            return {index: 0, event};
        };
        try {
            for (const event of reader.push(call.first!))
                yield tagged(event);
            for await (const chunk of call.rest())
                for (const event of reader.push(chunk))
                    yield tagged(event);
            for (const event of reader.end())
                yield tagged(event);
        } catch (error) {
            // The deadline cut a reply short that had begun: it ends as a local one does, as if its tokens ran out.
            if (error instanceof RequestAbortedError && this.#deadline != null) {
                yield tagged(reader.cutShort());
                return;
            }
            throw this.#failure(error);
        } finally {
            this.release();
        }
    }

    /** Cancels the request upstream if its reply is not over, and frees the call. Idempotent. */
    release(): void {
        this.#lifecycle.release();
    }

    /** What a failure is to the client: a cancel that the deadline made is that deadline. */
    #failure(error: unknown): unknown {
        return error instanceof RequestAbortedError && this.#deadline != null ? this.#deadline : error;
    }
}
