import {setTimeout as sleep} from "node:timers/promises";
import {after} from "node:test";
import {startTestServer} from "./testServer.js";
import type {TestServer} from "./testServer.js";

/** A starter of test servers for one test file: each started server is closed after the file's tests. */
export function fileServers(): (options: Parameters<typeof startTestServer>[0]) => Promise<TestServer> {
    const servers: TestServer[] = [];
    after(async () => {
        await Promise.all(servers.map((started) => started.close()));
    });
    return async (options) => {
        const started = await startTestServer(options);
        servers.push(started);
        return started;
    };
}

/** Waits until `condition` holds, checking every 5 ms; fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
        if (Date.now() > deadline)
            throw new Error("condition not met in time");
        await sleep(5);
    }
}
