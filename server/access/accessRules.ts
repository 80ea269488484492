import {isIP} from "node:net";

/** The pure rules of access control: which hosts, origins and clients are let in. `accessControl` applies them. */

/** The host name of a `Host` header, lower case, without its port or a trailing dot; `[::1]` gives `::1`. */
export function hostName(hostHeader: string): string {
    const host = hostHeader.trim().toLowerCase();
    if (host.startsWith("["))
        return host.slice(1, host.indexOf("]") > 0 ? host.indexOf("]") : undefined);
    const colons = host.split(":").length - 1;
    const name = colons === 1 ? host.slice(0, host.indexOf(":")) : host;
    return name.endsWith(".") ? name.slice(0, -1) : name;
}

function isLocalName(name: string): boolean {
    return name === "localhost" || name.endsWith(".localhost");
}

function isLoopbackAddress(name: string): boolean {
    return name === "::1" || /^127\.\d+\.\d+\.\d+$/.test(name) || /^::ffff:127\./.test(name);
}

/**
 * Whether a request for `Host` may be answered. A DNS-rebinding page reaches this server under its own
 * host name, so names are refused unless they are `localhost` or configured; IP addresses cannot be
 * rebound and are accepted.
 */
export function hostAllowed(hostHeader: string | undefined, allowedHosts: readonly string[]): boolean {
    // HTTP/1.0 clients may send no Host; browsers always send one.
    if (hostHeader == null || hostHeader === "")
        return true;
    const name = hostName(hostHeader);
    return isIP(name) !== 0 || isLocalName(name) || allowedHosts.includes(name);
}

/** Whether a client connected from this machine. */
export function isLoopbackClient(remoteAddress: string | undefined): boolean {
    return remoteAddress != null && isLoopbackAddress(remoteAddress);
}

/**
 * The `Access-Control-Allow-Origin` value for a page at `origin`, or undefined when that page may not call
 * the API. Pages on localhost and the app's own origin may; others only when configured, and `*`
 * configured answers `*`. Credentials are never allowed, so no origin is ever reflected with them.
 */
export function allowedOrigin(origin: string, hostHeader: string | undefined, configured: readonly string[]): string | undefined {
    let url: URL;
    try {
        url = new URL(origin);
    } catch {
        return undefined;
    }
    if (url.origin === "null")
        return configured.includes("*") ? "*" : undefined;
    const web = url.protocol === "http:" || url.protocol === "https:";
    if (web && (isLocalName(url.hostname) || isLoopbackAddress(url.hostname.replace(/^\[|\]$/g, ""))))
        return url.origin;
    if (web && hostHeader != null && url.host === hostHeader.toLowerCase())
        return url.origin;
    if (configured.includes(url.origin))
        return url.origin;
    return configured.includes("*") ? "*" : undefined;
}

/** The key a request carries, from `Authorization: Bearer KEY` or `x-api-key: KEY`. */
export function presentedKey(headers: {authorization?: string, "x-api-key"?: string | string[]}): string | undefined {
    const authorization = headers.authorization?.trim();
    if (authorization != null && /^bearer\s+/i.test(authorization))
        return authorization.replace(/^bearer\s+/i, "").trim() || undefined;
    const apiKey = headers["x-api-key"];
    const value = Array.isArray(apiKey) ? apiKey[0] : apiKey;
    return value?.trim() || undefined;
}

/** Paths that serve data or do work, and so need a key when keys are in use; `/health`, `/ready` and the app's files do not. */
export function needsKey(path: string): boolean {
    return path.startsWith("/v1/") || path === "/v1" || path.startsWith("/api/") || path === "/api" || path === "/metrics";
}

