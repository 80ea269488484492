/** One model a route sends requests to, and its share of them. */
export type RouteTarget = {model: string, weight: number};

/** A name that clients ask for, the models it sends their requests to by weight, and a model that gets a copy of each. */
export type RouteSpec = {
    name: string,
    targets: RouteTarget[],
    /** Every request for the route is also sent here, in the background, and the two replies are compared. */
    shadow?: string
};

/** Names of routes and models in routes: what a model name may be, without `=` or `,` (which the flags use). */
const NAME = /^[A-Za-z0-9][\w.:/@+-]{0,199}$/;
export const MAX_TARGETS = 16;

/** A route that cannot be served as written; the message says why, for a person. */
export class RouteSpecError extends Error {
    override readonly name = "RouteSpecError";
    /** The field of `/api/routes`' body it is about. */
    readonly field: string;

    constructor(message: string, field: string) {
        super(message);
        this.field = field;
    }
}

export function isRouteName(value: string): boolean {
    return NAME.test(value);
}

/**
 * `NAME=MODEL[:WEIGHT],MODEL[:WEIGHT]…` as `--route` takes it. A weight is the number after the last `:` (a model
 * name may itself hold `:`, as library names do, so `owner/repo:Q4_K_M` is a model and `owner/repo:Q4_K_M:10` that
 * model with weight 10); a target without one weighs 1.
 */
export function parseRouteText(text: string): RouteSpec {
    const equals = text.indexOf("=");
    if (equals <= 0)
        throw new RouteSpecError(`--route must be NAME=MODEL[:WEIGHT],MODEL[:WEIGHT]…, such as chat=stories260K:90,stories260K-Q8_0:10, got "${text}"`, "route");
    const name = text.slice(0, equals).trim();
    const targets = text.slice(equals + 1).split(",").map((part) => part.trim()).filter(Boolean).map((part) => {
        const match = /^(.+):(\d+(?:\.\d+)?)$/.exec(part);
        return match != null ? {model: match[1]!, weight: Number(match[2])} : {model: part, weight: 1};
    });
    return checkRoute({name, targets});
}

/** `NAME=MODEL` as `--shadow` takes it. */
export function parseShadowText(text: string): {name: string, shadow: string} {
    const equals = text.indexOf("=");
    const name = equals > 0 ? text.slice(0, equals).trim() : "";
    const shadow = equals > 0 ? text.slice(equals + 1).trim() : "";
    if (!isRouteName(name) || !isRouteName(shadow))
        throw new RouteSpecError(`--shadow must be NAME=MODEL, such as chat=stories260K-Q8_0, got "${text}"`, "shadow");
    return {name, shadow};
}

/** Checks a route whatever it came from (a flag or `/api/routes`); returns it with its names trimmed. */
export function checkRoute(route: RouteSpec): RouteSpec {
    const {name, targets, shadow} = route;
    if (!isRouteName(name))
        throw new RouteSpecError(`"${name}" is not a route name: use letters, digits and . _ - : / @ +, starting with a letter or digit, at most 200 characters.`, "name");
    if (targets.length === 0)
        throw new RouteSpecError(`The route "${name}" names no model to send requests to.`, "targets");
    if (targets.length > MAX_TARGETS)
        throw new RouteSpecError(`The route "${name}" names ${targets.length} models; at most ${MAX_TARGETS}.`, "targets");
    const seen = new Set<string>();
    for (const target of targets) {
        if (!isRouteName(target.model))
            throw new RouteSpecError(`"${target.model}" in the route "${name}" is not a model name.`, "targets");
        if (seen.has(target.model))
            throw new RouteSpecError(`The route "${name}" names "${target.model}" twice.`, "targets");
        seen.add(target.model);
        if (!Number.isFinite(target.weight) || target.weight < 0 || target.weight > 1_000_000)
            throw new RouteSpecError(`The weight of "${target.model}" in the route "${name}" must be a number from 0 to 1000000, got ${target.weight}.`, "targets");
    }
    if (targets.every((target) => target.weight === 0))
        throw new RouteSpecError(`Every weight in the route "${name}" is 0: at least one model must get requests.`, "targets");
    if (shadow != null && !isRouteName(shadow))
        throw new RouteSpecError(`"${shadow}" (the shadow of the route "${name}") is not a model name.`, "shadow");
    return {name, targets: targets.map((target) => ({model: target.model, weight: target.weight})), ...shadow != null ? {shadow} : {}};
}

/** `--route` and `--shadow` together: a shadow names a route given with `--route`. */
export function parseRouteFlags(routeTexts: readonly string[], shadowTexts: readonly string[]): RouteSpec[] {
    const routes = new Map<string, RouteSpec>();
    for (const text of routeTexts) {
        const route = parseRouteText(text);
        if (routes.has(route.name))
            throw new RouteSpecError(`the route "${route.name}" is given twice`, "route");
        routes.set(route.name, route);
    }
    for (const text of shadowTexts) {
        const {name, shadow} = parseShadowText(text);
        const route = routes.get(name);
        if (route == null)
            throw new RouteSpecError(`--shadow ${text} names the route "${name}", which no --route gives`, "shadow");
        if (route.shadow != null)
            throw new RouteSpecError(`the route "${name}" is given two shadows`, "shadow");
        route.shadow = shadow;
    }
    for (const route of routes.values())
        for (const target of route.targets)
            if (target.model !== route.name && routes.has(target.model))
                throw new RouteSpecError(`the route "${route.name}" sends requests to "${target.model}", which is a route too: name models, not routes`, "route");
    return [...routes.values()];
}
