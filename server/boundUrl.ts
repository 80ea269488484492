import type {Server} from "node:http";

/** The port a listening server actually bound (`--port 0` picks one). */
export function boundPort(server: Server): number {
    const address = server.address();
    return typeof address === "object" && address != null ? address.port : 0;
}

/** `http://host:port` of a listening server. */
export function boundUrl(server: Server, host: string): string {
    return `http://${host.includes(":") ? `[${host}]` : host}:${boundPort(server)}`;
}

/** Whether only programs on this machine can reach an address. */
export function isLoopback(host: string): boolean {
    return host === "localhost" || host === "::1" || /^127\./.test(host);
}
