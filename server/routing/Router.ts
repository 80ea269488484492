import {createHash, randomBytes} from "node:crypto";
import type {Registry} from "prom-client";
import {checkRoute, RouteSpecError} from "./routeSpec.js";
import type {RouteSpec, RouteTarget} from "./routeSpec.js";
import type {RouteStore} from "./RouteStore.js";
import {RouteMetrics, ShadowSummary} from "./ShadowStats.js";
import type {SideSample} from "./ShadowStats.js";

export type RouteSource = "startup" | "stored";

export type RouterOptions = {
    /** Where `/metrics` series go. */
    registry: Registry,
    /** Routes given at start (`--route`, `--shadow`): served for this run, never stored. */
    startup?: readonly RouteSpec[],
    /** Routes set while running, kept across restarts; one of a startup route's name replaces it. */
    store?: RouteStore,
    /** Shadow copies of one route's requests that may run at once; past that, copies are dropped. Defaults to 4. */
    shadowMaxInFlight?: number
};

/** A route as the router keeps it: its spec, where it came from, and what it has done since the server started. */
type RouteState = {
    spec: RouteSpec,
    source: RouteSource,
    requests: Map<string, number>,
    shadow: ShadowSummary,
    /** Smooth weighted round robin's running score per target, for requests without a session. */
    turns: Map<string, number>
};

/** A route that cannot be changed as asked (a startup route deleted, a name that is not a route). */
export class RouteChangeError extends Error {
    override readonly name = "RouteChangeError";
}

/**
 * The routes: names that clients ask for, each sending its requests to one of several models (local or an
 * upstream's) by weight, sticky per session, and optionally a copy of each to a shadow model whose reply is compared
 * with the one the client got. It picks and keeps the score; the hooks of `routeRequests` do the HTTP.
 */
export class Router {
    /** Sent by Hearth's own shadow copies (`x-hearth-shadow`), so they are not routed, shadowed or rate-limited again. */
    readonly shadowToken = randomBytes(24).toString("hex");
    readonly shadowMaxInFlight: number;
    readonly #startup = new Map<string, RouteSpec>();
    readonly #routes = new Map<string, RouteState>();
    readonly #store: RouteStore | undefined;
    readonly #metrics: RouteMetrics;

    constructor({registry, startup = [], store, shadowMaxInFlight = 4}: RouterOptions) {
        this.#store = store;
        this.shadowMaxInFlight = shadowMaxInFlight;
        this.#metrics = new RouteMetrics(registry, () => [...this.#routes.values()].map((state) => [state.spec.name, state.shadow.inFlight] as [string, number]));
        for (const spec of startup) {
            this.#startup.set(spec.name, spec);
            this.#install(spec, "startup");
        }
        for (const spec of store?.list() ?? [])
            this.#install(spec, "stored");
    }

    get(name: string): RouteSpec | undefined {
        return this.#routes.get(name)?.spec;
    }

    names(): string[] {
        return [...this.#routes.keys()];
    }

    /** Sets a route (stored, so it outlives a restart); takes effect with the next request. Throws {@link RouteSpecError}. */
    set(spec: RouteSpec): void {
        const route = checkRoute(spec);
        for (const target of route.targets)
            if (target.model !== route.name && this.#routes.has(target.model))
                throw new RouteSpecError(`"${target.model}" is a route: a route sends requests to models, not to other routes.`, "targets");
        if (route.shadow != null && this.#routes.has(route.shadow))
            throw new RouteSpecError(`"${route.shadow}" is a route: a shadow is a model.`, "shadow");
        for (const other of this.#routes.values())
            if (other.spec.name !== route.name && (other.spec.targets.some((target) => target.model === route.name) || other.spec.shadow === route.name))
                throw new RouteSpecError(`The route "${other.spec.name}" sends requests to a model named "${route.name}": a route cannot take that name.`, "name");
        this.#store?.put(route);
        this.#install(route, "stored");
    }

    /** Removes a stored route (a startup route of the same name comes back); throws {@link RouteChangeError} for a startup route. */
    remove(name: string): boolean {
        const state = this.#routes.get(name);
        if (state == null)
            return false;
        if (state.source === "startup")
            throw new RouteChangeError(`The route "${name}" was given with --route when the server started; restart the server without it to remove it (PUT replaces it for now).`);
        this.#store?.remove(name);
        const startup = this.#startup.get(name);
        if (startup != null)
            this.#install(startup, "startup");
        else
            this.#routes.delete(name);
        return true;
    }

    /**
     * The model for one request to `name`: by weight among the targets `served` accepts (all, when none is), the same
     * one for the same `session` while the weights stay the same. Counted in `/metrics` and `/api/routes`.
     */
    pick(name: string, session: string | undefined, served: (model: string) => boolean): string {
        const state = this.#routes.get(name)!;
        const open = state.spec.targets.filter((target) => target.weight > 0 && served(target.model));
        const targets = open.length > 0 ? open : state.spec.targets.filter((target) => target.weight > 0);
        const model = session != null ? pickByWeight(targets, stickyPoint(name, session)) : takeTurn(targets, state.turns);
        state.requests.set(model, (state.requests.get(model) ?? 0) + 1);
        this.#metrics.routed(name, model);
        return model;
    }

    /** Takes a place for a shadow copy of a request to `name`; false (and counted as dropped) when its queue is full. */
    admitShadow(name: string): boolean {
        const state = this.#routes.get(name);
        const shadow = state?.spec.shadow;
        if (state == null || shadow == null)
            return false;
        if (state.shadow.inFlight >= this.shadowMaxInFlight) {
            state.shadow.dropped += 1;
            this.#metrics.shadow(name, shadow, "dropped");
            return false;
        }
        state.shadow.inFlight += 1;
        state.shadow.sent += 1;
        return true;
    }

    /** Ends a shadow copy admitted by {@link admitShadow}: compared with the primary reply, failed, or not compared (the primary failed). */
    shadowDone(name: string, shadowModel: string, outcome: {compared: {agreed: boolean, similarity: number, primary: SideSample, shadow: SideSample}} | "failed" | "uncompared"): void {
        const state = this.#routes.get(name);
        const summary = state?.shadow;
        if (summary != null)
            summary.inFlight = Math.max(0, summary.inFlight - 1);
        if (outcome === "failed" || outcome === "uncompared") {
            if (outcome === "failed" && summary != null)
                summary.failed += 1;
            this.#metrics.shadow(name, shadowModel, outcome);
            return;
        }
        const {agreed, similarity, primary, shadow} = outcome.compared;
        // A shadow changed or removed meanwhile is still counted in /metrics; the summary is of the route's current shadow.
        if (summary != null && state!.spec.shadow === shadowModel)
            summary.addComparison(agreed, similarity, primary, shadow);
        this.#metrics.shadow(name, shadowModel, "compared");
        this.#metrics.compared(name, agreed, similarity, primary, shadow);
    }

    /** What `/api/routes` shows. */
    list() {
        return [...this.#routes.values()].map((state) => this.#view(state));
    }

    view(name: string) {
        const state = this.#routes.get(name);
        return state != null ? this.#view(state) : undefined;
    }

    #view({spec, source, requests, shadow}: RouteState) {
        const total = spec.targets.reduce((sum, target) => sum + target.weight, 0);
        return {
            name: spec.name,
            source,
            targets: spec.targets.map((target) => ({model: target.model, weight: target.weight, share: total > 0 ? Math.round(target.weight / total * 1000) / 1000 : 0, requests: requests.get(target.model) ?? 0})),
            shadow: spec.shadow != null ? {model: spec.shadow, ...shadow.toJSON()} : null
        };
    }

    #install(spec: RouteSpec, source: RouteSource): void {
        const previous = this.#routes.get(spec.name);
        // Counts go on across a change of weights; the comparison starts again when the shadow model changes.
        const shadow = previous != null && previous.spec.shadow === spec.shadow ? previous.shadow : new ShadowSummary();
        if (previous != null && previous.shadow !== shadow)
            shadow.inFlight = previous.shadow.inFlight;
        this.#routes.set(spec.name, {spec, source, requests: previous?.requests ?? new Map(), shadow, turns: new Map()});
    }
}

/** A point in [0, 1) fixed by the route and the session: the same session lands on the same target while the weights stay. */
function stickyPoint(route: string, session: string): number {
    const digest = createHash("sha256").update(route).update("\0").update(session).digest();
    return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * Smooth weighted round robin (as nginx balances weighted servers): every target gains its weight, the one ahead
 * is chosen and loses the total. Each run of requests as long as the weights' sum lands exactly by weight, spread
 * out (90/10 sends the tenth request, not ten in a row, to the smaller one), with no chance of a lopsided run.
 */
function takeTurn(targets: readonly RouteTarget[], turns: Map<string, number>): string {
    let total = 0;
    let best: RouteTarget | undefined;
    for (const target of targets) {
        total += target.weight;
        const score = (turns.get(target.model) ?? 0) + target.weight;
        turns.set(target.model, score);
        if (best == null || score > turns.get(best.model)!)
            best = target;
    }
    turns.set(best!.model, turns.get(best!.model)! - total);
    return best!.model;
}

function pickByWeight(targets: readonly RouteTarget[], point: number): string {
    const total = targets.reduce((sum, target) => sum + target.weight, 0);
    let threshold = point * total;
    for (const target of targets) {
        threshold -= target.weight;
        if (threshold < 0)
            return target.model;
    }
    return targets.at(-1)!.model;
}
