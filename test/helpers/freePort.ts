import {createServer} from "node:net";
import type {AddressInfo} from "node:net";

/** A port free on loopback now, for a server a test starts (and may restart) at a fixed address. */
export async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const {port} = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
}
