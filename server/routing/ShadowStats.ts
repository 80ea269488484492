import {Counter, Gauge, Histogram} from "prom-client";
import type {Registry} from "prom-client";

/** One side of a compared pair: how long its reply took and how many tokens it generated. */
export type SideSample = {latencyMs: number, completionTokens: number | undefined};

/** How many latencies each side keeps for its median. */
const KEPT_SAMPLES = 1000;

class Side {
    #latencies: number[] = [];
    #latencySumMs = 0;
    #count = 0;
    #tokens = 0;
    #tokenCount = 0;

    add({latencyMs, completionTokens}: SideSample): void {
        this.#latencies.push(latencyMs);
        if (this.#latencies.length > KEPT_SAMPLES)
            this.#latencies.shift();
        this.#latencySumMs += latencyMs;
        this.#count += 1;
        if (completionTokens != null) {
            this.#tokens += completionTokens;
            this.#tokenCount += 1;
        }
    }

    toJSON() {
        const sorted = [...this.#latencies].sort((a, b) => a - b);
        const round = (value: number) => Math.round(value * 10) / 10;
        return {
            latency_ms_mean: this.#count > 0 ? round(this.#latencySumMs / this.#count) : null,
            latency_ms_p50: sorted.length > 0 ? round(sorted[Math.floor((sorted.length - 1) / 2)]!) : null,
            completion_tokens_mean: this.#tokenCount > 0 ? round(this.#tokens / this.#tokenCount) : null
        };
    }
}

/** A route's shadow comparison so far, as `/api/routes` shows it (since the server started). */
export class ShadowSummary {
    inFlight = 0;
    sent = 0;
    dropped = 0;
    failed = 0;
    compared = 0;
    agreed = 0;
    #similaritySum = 0;
    readonly primary = new Side();
    readonly shadow = new Side();

    addComparison(agreed: boolean, similarity: number, primary: SideSample, shadow: SideSample): void {
        this.compared += 1;
        if (agreed)
            this.agreed += 1;
        this.#similaritySum += similarity;
        this.primary.add(primary);
        this.shadow.add(shadow);
    }

    toJSON() {
        return {
            in_flight: this.inFlight, sent: this.sent, dropped: this.dropped, failed: this.failed, compared: this.compared, agreed: this.agreed,
            agreement: this.compared > 0 ? Math.round(this.agreed / this.compared * 1000) / 1000 : null,
            similarity_mean: this.compared > 0 ? Math.round(this.#similaritySum / this.compared * 1000) / 1000 : null,
            primary: this.primary.toJSON(),
            shadow: this.shadow.toJSON()
        };
    }
}

/** The `/metrics` series of routes and their shadows, in the server's registry. */
export class RouteMetrics {
    readonly #requests: Counter<"route" | "model">;
    readonly #shadows: Counter<"route" | "shadow" | "outcome">;
    readonly #agreement: Counter<"route" | "agree">;
    readonly #similarity: Histogram<"route">;
    readonly #latency: Histogram<"route" | "side">;
    readonly #tokens: Counter<"route" | "side">;

    constructor(registry: Registry, inFlight: () => Iterable<[string, number]>) {
        const registers = [registry];
        this.#requests = new Counter({name: "hearth_route_requests_total", help: "Requests for each route, by the model it sent them to", labelNames: ["route", "model"], registers});
        this.#shadows = new Counter({
            name: "hearth_shadow_requests_total", help: "Shadow copies of each route's requests, by outcome (compared, failed, dropped when the shadow's queue was full, uncompared when the primary reply failed)",
            labelNames: ["route", "shadow", "outcome"], registers
        });
        this.#agreement = new Counter({name: "hearth_shadow_comparisons_total", help: "Compared pairs of primary and shadow replies, by whether their final texts are equal", labelNames: ["route", "agree"], registers});
        this.#similarity = new Histogram({
            name: "hearth_shadow_similarity", help: "Similarity of the primary and shadow replies (word bigrams' Dice coefficient, or embeddings' cosine), 0 to 1",
            labelNames: ["route"], buckets: [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1], registers
        });
        this.#latency = new Histogram({
            name: "hearth_shadow_latency_seconds", help: "Duration of compared replies, primary and shadow, from the request to the end of the reply",
            labelNames: ["route", "side"], buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers
        });
        this.#tokens = new Counter({name: "hearth_shadow_completion_tokens_total", help: "Tokens generated in compared replies, primary and shadow", labelNames: ["route", "side"], registers});
        new Gauge({name: "hearth_shadow_in_flight", help: "Shadow copies of each route's requests running now", labelNames: ["route"], registers, collect() {
            this.reset();
            for (const [route, count] of inFlight())
                this.set({route}, count);
        }});
    }

    routed(route: string, model: string): void {
        this.#requests.inc({route, model});
    }

    shadow(route: string, shadow: string, outcome: "compared" | "failed" | "dropped" | "uncompared"): void {
        this.#shadows.inc({route, shadow, outcome});
    }

    compared(route: string, agreed: boolean, similarity: number, primary: SideSample, shadow: SideSample): void {
        this.#agreement.inc({route, agree: String(agreed)});
        this.#similarity.observe({route}, similarity);
        this.#latency.observe({route, side: "primary"}, primary.latencyMs / 1000);
        this.#latency.observe({route, side: "shadow"}, shadow.latencyMs / 1000);
        if (primary.completionTokens != null)
            this.#tokens.inc({route, side: "primary"}, primary.completionTokens);
        if (shadow.completionTokens != null)
            this.#tokens.inc({route, side: "shadow"}, shadow.completionTokens);
    }
}
