/**
 * A token bucket per client: `perMinute` requests a minute, refilled continuously, with a burst of at most
 * `perMinute`. A refused request learns how many seconds until it would be let in.
 */
export class RateLimiter {
    readonly perMinute: number;
    readonly #buckets = new Map<string, {tokens: number, updatedMs: number}>();

    constructor(perMinute: number) {
        this.perMinute = perMinute;
    }

    /** Takes one request's token for `client`; `retryAfterSeconds` when none is left. */
    take(client: string, nowMs = Date.now()): {allowed: true} | {allowed: false, retryAfterSeconds: number} {
        const refillPerMs = this.perMinute / 60_000;
        const bucket = this.#buckets.get(client) ?? {tokens: this.perMinute, updatedMs: nowMs};
        bucket.tokens = Math.min(this.perMinute, bucket.tokens + (nowMs - bucket.updatedMs) * refillPerMs);
        bucket.updatedMs = nowMs;
        this.#buckets.set(client, bucket);
        if (this.#buckets.size > 10_000)
            this.#forgetFull(nowMs);
        if (bucket.tokens >= 1) {
            bucket.tokens -= 1;
            return {allowed: true};
        }
        return {allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / refillPerMs / 1000))};
    }

    /** Clients whose bucket has refilled are the same as new ones; forgetting them bounds the memory many clients take. */
    #forgetFull(nowMs: number): void {
        for (const [client, bucket] of this.#buckets)
            if (bucket.tokens + (nowMs - bucket.updatedMs) * this.perMinute / 60_000 >= this.perMinute)
                this.#buckets.delete(client);
    }
}
