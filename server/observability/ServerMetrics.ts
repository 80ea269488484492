import {Counter, Gauge, Histogram, Registry, collectDefaultMetrics} from "prom-client";
import type {DownloadManager} from "../../models/DownloadManager.js";
import type {Engine} from "../../native/Engine.js";
import type {GenerationReport} from "../../native/LoadedModel.js";
import type {PromptCacheStats} from "../../native/decode/PromptCache.js";

/**
 * The numbers `/metrics` serves in Prometheus' text format. Each server has its own registry, so two
 * servers in one process (the tests) never mix their counts. Gauges of the engine are read at scrape time.
 */
export class ServerMetrics {
    readonly registry = new Registry();
    readonly #requests = new Counter({name: "hearth_http_requests_total", help: "HTTP requests by method, route and status", labelNames: ["method", "route", "status"], registers: [this.registry]});
    readonly #durations = new Histogram({
        name: "hearth_http_request_duration_seconds", help: "Time from request to the end of its response (streams included)",
        labelNames: ["method", "route"], buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers: [this.registry]
    });
    readonly #inFlight = new Gauge({name: "hearth_http_requests_in_flight", help: "Requests being answered now", registers: [this.registry]});
    readonly #timeToFirstToken = new Histogram({
        name: "hearth_time_to_first_token_seconds", help: "From admission to a slot (after any queueing) to the first generated token",
        labelNames: ["model"], buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [this.registry]
    });
    readonly #queueTime = new Histogram({
        name: "hearth_queue_wait_seconds", help: "Time a generation waited for a free slot",
        labelNames: ["model"], buckets: [0, 0.01, 0.05, 0.25, 1, 5, 15, 60], registers: [this.registry]
    });
    readonly #generatedTokens = new Counter({name: "hearth_generated_tokens_total", help: "Tokens generated", labelNames: ["model"], registers: [this.registry]});
    readonly #draftTokens = new Counter({
        name: "hearth_draft_tokens_total", help: "Tokens drafted by speculative decoding, by whether the sampler kept them and where they came from (prediction, ngram, draft: the draft model)",
        labelNames: ["model", "outcome", "source"], registers: [this.registry]
    });
    readonly #promptTokens = new Counter({name: "hearth_prompt_tokens_total", help: "Prompt tokens of generations (cached ones included)", labelNames: ["model"], registers: [this.registry]});
    readonly #tokensPerSecond = new Histogram({
        name: "hearth_generation_tokens_per_second", help: "Decode speed of each generation, after its first token",
        labelNames: ["model"], buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500], registers: [this.registry]
    });

    constructor({engine, downloads}: {engine: Engine, downloads: DownloadManager}) {
        collectDefaultMetrics({register: this.registry});
        const perModel = (name: string, help: string, read: (model: Engine["models"][number]) => number) => new Gauge({
            name, help, labelNames: ["model"], registers: [this.registry],
            collect() {
                this.reset();
                for (const model of engine.models)
                    this.set({model: model.names[0]!}, read(model));
            }
        });
        perModel("hearth_queue_depth", "Requests waiting for a free slot", (model) => model.scheduler.queuedRequests);
        perModel("hearth_busy_slots", "Slots generating now", (model) => model.scheduler.busySlots);
        perModel("hearth_slots", "Slots (parallel sequences) of a loaded model", (model) => model.scheduler.slots.length);
        new Gauge({name: "hearth_loaded_models", help: "Models loaded now", registers: [this.registry], collect() {
            this.set(engine.models.length);
        }});
        const promptCache = (name: string, help: string, read: (stats: PromptCacheStats) => number, Metric: typeof Gauge | typeof Counter) => new Metric({
            name, help, registers: [this.registry],
            collect() {
                this.reset();
                this.inc(read(engine.promptCache.stats));
            }
        });
        promptCache("hearth_prompt_cache_bytes", "Bytes of slot states held in the RAM prompt cache (--cache-ram)", (stats) => stats.bytes, Gauge);
        promptCache("hearth_prompt_cache_entries", "Slot states held in the RAM prompt cache", (stats) => stats.entries, Gauge);
        promptCache("hearth_prompt_cache_saves_total", "Slot states saved to the RAM prompt cache before another conversation overwrote them", (stats) => stats.saves, Counter);
        promptCache("hearth_prompt_cache_hits_total", "Prompts whose prefix was restored from the RAM prompt cache", (stats) => stats.hits, Counter);
        promptCache("hearth_prompt_cache_copies_total", "Prompts whose prefix was copied from another slot instead of evaluated", (stats) => stats.copies, Counter);
        new Counter({name: "hearth_download_bytes_total", help: "Bytes received by the app's model downloads", registers: [this.registry], collect() {
            this.reset();
            this.inc(downloads.bytesReceived);
        }});
    }

    requestStarted(): void {
        this.#inFlight.inc();
    }

    requestFinished(method: string, route: string, status: number, durationMs: number): void {
        this.#inFlight.dec();
        this.#requests.inc({method, route, status: String(status)});
        this.#durations.observe({method, route}, durationMs / 1000);
    }

    generationDone({model, usage, timings, drafts}: GenerationReport): void {
        this.#generatedTokens.inc({model}, usage.completionTokens);
        for (const [source, counts] of Object.entries(drafts?.bySource ?? {})) {
            this.#draftTokens.inc({model, outcome: "accepted", source}, counts.accepted);
            this.#draftTokens.inc({model, outcome: "rejected", source}, counts.drafted - counts.accepted);
        }
        this.#promptTokens.inc({model}, usage.promptTokens);
        // A generation that failed counts its tokens, and nothing in the timing histograms.
        if (timings == null)
            return;
        this.#timeToFirstToken.observe({model}, timings.promptMs / 1000);
        this.#queueTime.observe({model}, timings.queueMs / 1000);
        if (timings.generationMs > 0 && usage.completionTokens > 1)
            this.#tokensPerSecond.observe({model}, (usage.completionTokens - 1) / (timings.generationMs / 1000));
    }

    text(): Promise<string> {
        return this.registry.metrics();
    }
}
