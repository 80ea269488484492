import {Counter, Gauge, Histogram} from "prom-client";
import type {Registry} from "prom-client";
import type {Upstream} from "./Upstream.js";

/** The per-upstream series of `/metrics`, in the server's registry, labelled by the upstream's name. */
export class UpstreamMetrics {
    readonly #requests: Counter<"upstream" | "status">;
    readonly #errors: Counter<"upstream" | "reason">;
    readonly #durations: Histogram<"upstream">;
    readonly #firstByte: Histogram<"upstream">;

    constructor(registry: Registry, upstreams: () => readonly Upstream[]) {
        const registers = [registry];
        this.#requests = new Counter({name: "hearth_upstream_requests_total", help: "Requests sent to each upstream, by the status it answered (error: none)", labelNames: ["upstream", "status"], registers});
        this.#errors = new Counter({name: "hearth_upstream_errors_total", help: "Failed requests to each upstream, by reason", labelNames: ["upstream", "reason"], registers});
        this.#durations = new Histogram({
            name: "hearth_upstream_request_duration_seconds", help: "Time from sending a request to an upstream to the end of its reply",
            labelNames: ["upstream"], buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers
        });
        this.#firstByte = new Histogram({
            name: "hearth_upstream_time_to_first_byte_seconds", help: "Time from sending a request to an upstream to the first byte of its reply body",
            labelNames: ["upstream"], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers
        });
        new Gauge({name: "hearth_upstream_in_flight", help: "Requests each upstream is answering now", labelNames: ["upstream"], registers, collect() {
            this.reset();
            for (const upstream of upstreams())
                this.set({upstream: upstream.name}, upstream.inFlight);
        }});
        new Gauge({name: "hearth_upstream_up", help: "Whether each upstream is up (1) or out after failing, or not yet checked (0)", labelNames: ["upstream"], registers, collect() {
            this.reset();
            for (const upstream of upstreams())
                this.set({upstream: upstream.name}, upstream.health === "up" ? 1 : 0);
        }});
    }

    answered(upstream: Upstream, status: number | "error", durationMs: number): void {
        this.#requests.inc({upstream: upstream.name, status: String(status)});
        this.#durations.observe({upstream: upstream.name}, durationMs / 1000);
    }

    failed(upstream: Upstream, reason: string): void {
        this.#errors.inc({upstream: upstream.name, reason});
    }

    firstByte(upstream: Upstream, ms: number): void {
        this.#firstByte.observe({upstream: upstream.name}, ms / 1000);
    }
}
