import http from "node:http";
import https from "node:https";
import type {Registry} from "prom-client";
import type {UpstreamSpec} from "../config.js";
import {RequestAbortedError} from "../../native/errors.js";
import {NoUpstreamAvailableError, UpstreamError} from "./errors.js";
import {Upstream} from "./Upstream.js";
import type {BackoffSettings, UpstreamModel, UpstreamSource} from "./Upstream.js";
import {UpstreamCall} from "./UpstreamCall.js";
import type {ForwardRequest} from "./UpstreamCall.js";
import {UpstreamMetrics} from "./UpstreamMetrics.js";
import type {UpstreamStore} from "./UpstreamStore.js";

export type UpstreamPoolOptions = {
    /** Where `/metrics` series go. */
    registry: Registry,
    /** Upstreams given at start (`--upstream`): served for this run, never stored. */
    startup?: readonly UpstreamSpec[],
    /** Upstreams added while running, kept across restarts. */
    store?: UpstreamStore,
    /** An upstream silent this long (no reply headers, or no bytes mid-reply) fails with 504; `0` is no limit. Defaults to 5 minutes. */
    timeoutMs?: number,
    /** How often each upstream's model list is read again (which also checks it is up). Defaults to 30 s. */
    refreshMs?: number,
    /** How long a failed upstream stays out before it is checked again. Defaults to 1 s, doubling up to 60 s. */
    backoff?: BackoffSettings,
    log?: (level: "info" | "warn", message: string) => void
};

/** A model an upstream serves, as `/v1/models` lists it. */
export type UpstreamModelEntry = UpstreamModel & {upstreams: readonly Upstream[]};

/** An upstream that is already listed, added again. */
export class UpstreamExistsError extends Error {
    override readonly name = "UpstreamExistsError";
}

/**
 * The upstreams Hearth serves models from: their list, each one's models (read from its `/v1/models` every
 * {@link UpstreamPoolOptions.refreshMs} and whenever it fails), its health and its requests in flight. It picks the
 * upstream with the fewest requests in flight among those up that serve a model, takes one that fails out for a
 * growing back-off and checks it again after, and sends a request that failed before any of its reply was
 * passed on to another upstream once. {@link forward} is all a route (or a router of aliases) needs.
 */
export class UpstreamPool {
    readonly #upstreams = new Map<string, Upstream>();
    readonly #store: UpstreamStore | undefined;
    readonly #metrics: UpstreamMetrics;
    readonly #agents = {http: new http.Agent({keepAlive: true}), https: new https.Agent({keepAlive: true})};
    readonly #timeoutMs: number;
    readonly #refreshMs: number;
    readonly #backoff: BackoffSettings;
    readonly #log: NonNullable<UpstreamPoolOptions["log"]>;
    readonly #retryTimers = new Map<Upstream, NodeJS.Timeout>();
    readonly #refreshing = new Map<Upstream, Promise<void>>();
    #refreshTimer: NodeJS.Timeout | undefined;
    #picks = 0;
    #nextStartupId = 1;
    #disposed = false;

    constructor({registry, startup = [], store, timeoutMs = 5 * 60 * 1000, refreshMs = 30_000, backoff = {initialMs: 1000, maxMs: 60_000}, log = () => undefined}: UpstreamPoolOptions) {
        this.#store = store;
        this.#timeoutMs = timeoutMs;
        this.#refreshMs = refreshMs;
        this.#backoff = backoff;
        this.#log = log;
        this.#metrics = new UpstreamMetrics(registry, () => this.list());
        for (const spec of startup)
            this.#insert(new Upstream(`startup-${this.#nextStartupId++}`, spec, "startup"));
        for (const stored of store?.list() ?? [])
            if (!this.#findByUrl(stored.url))
                this.#insert(new Upstream(stored.id, stored, "stored"));
    }

    /** Reads every upstream's models now and every {@link UpstreamPoolOptions.refreshMs} after; resolves when the first round is done. */
    async start(): Promise<void> {
        this.#refreshTimer ??= setInterval(() => {
            for (const upstream of this.list())
                if (upstream.health !== "down")
                    void this.refresh(upstream);
        }, this.#refreshMs);
        this.#refreshTimer.unref();
        await Promise.all(this.list().map((upstream) => this.refresh(upstream)));
    }

    list(): Upstream[] {
        return [...this.#upstreams.values()];
    }

    get(id: string): Upstream | undefined {
        return this.#upstreams.get(id);
    }

    /** Adds an upstream (stored, unless `source` is startup) and reads its models; throws {@link UpstreamExistsError} for a URL already listed. */
    async add(spec: UpstreamSpec, source: UpstreamSource = "stored"): Promise<Upstream> {
        if (this.#findByUrl(spec.url) != null)
            throw new UpstreamExistsError(`The upstream ${spec.url} is already listed`);
        const id = source === "stored" && this.#store != null ? this.#store.add(spec).id : `startup-${this.#nextStartupId++}`;
        const upstream = this.#insert(new Upstream(id, spec, source));
        await this.refresh(upstream);
        return upstream;
    }

    /** Stops sending requests to an upstream (those running finish) and forgets it; false when there is none with that id. */
    remove(id: string): boolean {
        const upstream = this.#upstreams.get(id);
        if (upstream == null)
            return false;
        upstream.removed = true;
        this.#upstreams.delete(id);
        clearTimeout(this.#retryTimers.get(upstream));
        this.#retryTimers.delete(upstream);
        if (upstream.source === "stored")
            this.#store?.remove(id);
        return true;
    }

    /** Every model the upstreams serve, each once, with the upstreams that serve it (up or not). */
    models(): UpstreamModelEntry[] {
        const byName = new Map<string, UpstreamModelEntry & {upstreams: Upstream[]}>();
        for (const upstream of this.list())
            for (const model of upstream.models) {
                const entry = byName.get(model.id);
                if (entry == null)
                    byName.set(model.id, {...model, upstreams: [upstream]});
                else
                    entry.upstreams.push(upstream);
            }
        return [...byName.values()];
    }

    /** Whether some upstream lists `model` (it may be down now). */
    serves(model: string): boolean {
        return this.list().some((upstream) => upstream.serves(model));
    }

    /** Whether an upstream that lists `model` may be sent requests now (it is not out after a failure). */
    servesNow(model: string): boolean {
        return this.list().some((upstream) => upstream.available && upstream.serves(model));
    }

    /**
     * Sends a request to the upstream with the fewest requests in flight among those up that serve its model, and
     * resolves once its reply has begun (see {@link UpstreamCall.begin}); the caller passes the reply on and then
     * calls `release()`. A failure before that point is tried once more on another upstream.
     */
    async forward(request: ForwardRequest): Promise<UpstreamCall> {
        const tried = new Set<Upstream>();
        let lastError: unknown;
        for (let attempt = 0; attempt < 2; attempt++) {
            const upstream = this.#pick(request.model, tried);
            if (upstream == null)
                break;
            tried.add(upstream);
            const call = new UpstreamCall(upstream, request, {
                agents: this.#agents, timeoutMs: this.#timeoutMs, metrics: this.#metrics,
                onFailure: (failed, error) => this.#failed(failed, error)
            });
            try {
                await call.begin();
            } catch (error) {
                call.release();
                if (!(error instanceof UpstreamError))
                    throw error;
                lastError = error;
                continue;
            }
            if (call.statusCode === 404)
                void this.refresh(upstream);
            return call;
        }
        if (request.signal.aborted)
            throw new RequestAbortedError();
        if (lastError != null)
            throw lastError;
        throw new NoUpstreamAvailableError(request.model, this.#retryAfterSeconds(request.model));
    }

    /** Reads an upstream's `/v1/models`: it is up with those models, or down for its back-off. One read at a time per upstream. */
    refresh(upstream: Upstream): Promise<void> {
        let pending = this.#refreshing.get(upstream);
        if (pending == null) {
            pending = this.#readModels(upstream).finally(() => this.#refreshing.delete(upstream));
            this.#refreshing.set(upstream, pending);
        }
        return pending;
    }

    async #readModels(upstream: Upstream): Promise<void> {
        const url = `${upstream.url}/v1/models`;
        const signal = AbortSignal.timeout(Math.min(this.#timeoutMs || 10_000, 10_000));
        let models: UpstreamModel[];
        try {
            const response = await fetch(url, {headers: upstream.key != null ? {authorization: `Bearer ${upstream.key}`} : {}, signal});
            if (!response.ok)
                throw new Error(`GET /v1/models answered HTTP ${response.status}`);
            const body = await response.json() as {data?: unknown};
            if (!Array.isArray(body.data))
                throw new Error("GET /v1/models did not answer a list of models");
            models = body.data.flatMap((entry: {id?: unknown, created?: unknown}) => typeof entry?.id === "string"
                ? [{id: entry.id, created: typeof entry.created === "number" ? entry.created : undefined}]
                : []);
        } catch (error) {
            const message = error instanceof Error && error.name === "TimeoutError" ? "GET /v1/models timed out"
                : error instanceof SyntaxError ? "GET /v1/models did not answer JSON"
                : (error as Error & {cause?: {code?: string}}).cause?.code ?? (error as Error).message;
            if (!upstream.removed && !this.#disposed)
                this.#markDown(upstream, message);
            return;
        }
        if (upstream.removed || this.#disposed)
            return;
        const wasUp = upstream.health === "up";
        upstream.models = models;
        upstream.succeeded();
        if (!wasUp)
            this.#log("info", `upstream ${upstream.name} is up, serving ${models.map((model) => model.id).join(", ") || "no models"}`);
    }

    #failed(upstream: Upstream, error: UpstreamError): void {
        if (upstream.removed || this.#disposed)
            return;
        this.#markDown(upstream, error.message);
    }

    /** Takes an upstream out for its back-off, then reads its models again to see whether it is back. */
    #markDown(upstream: Upstream, message: string): void {
        if (upstream.health === "down" && this.#retryTimers.has(upstream))
            return;
        const delayMs = upstream.failed(message, this.#backoff);
        this.#log("warn", `upstream ${upstream.name} is out for ${Math.round(delayMs / 100) / 10} s: ${message}`);
        const timer = setTimeout(() => {
            this.#retryTimers.delete(upstream);
            void this.refresh(upstream);
        }, delayMs);
        timer.unref();
        this.#retryTimers.set(upstream, timer);
    }

    /** The least busy upstream that is up and serves `model`, not among `excluded`; equally busy ones take turns. */
    #pick(model: string, excluded: ReadonlySet<Upstream>): Upstream | undefined {
        let best: Upstream | undefined;
        for (const upstream of this.#upstreams.values()) {
            if (!upstream.available || excluded.has(upstream) || !upstream.serves(model))
                continue;
            if (best == null || upstream.inFlight < best.inFlight || (upstream.inFlight === best.inFlight && upstream.lastPicked < best.lastPicked))
                best = upstream;
        }
        if (best != null)
            best.lastPicked = ++this.#picks;
        return best;
    }

    #retryAfterSeconds(model: string): number {
        const now = Date.now();
        const waits = this.list().filter((upstream) => upstream.serves(model) && upstream.health === "down").map((upstream) => upstream.retryAtMs - now);
        return Math.max(1, Math.ceil(Math.min(...waits, 5000) / 1000));
    }

    #insert(upstream: Upstream): Upstream {
        this.#upstreams.set(upstream.id, upstream);
        return upstream;
    }

    #findByUrl(url: string): Upstream | undefined {
        return this.list().find((upstream) => upstream.url === url);
    }

    /** Stops checking upstreams and closes idle connections; requests in flight end with their callers. Idempotent. */
    dispose(): void {
        if (this.#disposed)
            return;
        this.#disposed = true;
        clearInterval(this.#refreshTimer);
        for (const timer of this.#retryTimers.values())
            clearTimeout(timer);
        this.#retryTimers.clear();
        this.#agents.http.destroy();
        this.#agents.https.destroy();
    }
}
