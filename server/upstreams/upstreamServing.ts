import type {UpstreamPool} from "./UpstreamPool.js";

/** The upstreams, and how to tell a model served here (whose name wins over an upstream's). */
export type UpstreamsHere = {pool: UpstreamPool, isLocal(model: string): boolean};

/**
 * The pool whose upstreams serve `model`, when a request for it goes to them: an upstream lists it and no local
 * model has its name. The one rule for forwarded and translated requests alike.
 */
export function upstreamServing(upstreams: UpstreamsHere | undefined, model: string): UpstreamPool | undefined {
    // The pool is asked first: it is a lookup in memory, where a local name may need the library's database.
    return upstreams != null && upstreams.pool.serves(model) && !upstreams.isLocal(model) ? upstreams.pool : undefined;
}
