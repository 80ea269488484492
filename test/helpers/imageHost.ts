import {createServer} from "node:http";
import type {AddressInfo} from "node:net";

export type ImageHost = {url: string, requests: string[], close(): Promise<void>};

/**
 * A web server on loopback that remote image URLs point at: `/red.png` serves `image` (and `/redirect` redirects
 * there), `/slow.png` sends half of it and then nothing, `/huge.png` says it has 21 MiB, `/huge-unsized.png` streams
 * more than 20 MiB without saying how much, `/loop` redirects to itself, `/text` is plain text; anything else is a 404.
 */
export async function startImageHost(image: Uint8Array): Promise<ImageHost> {
    const requests: string[] = [];
    const server = createServer((request, response) => {
        const path = request.url ?? "/";
        requests.push(path);
        switch (path) {
            case "/red.png":
                response.writeHead(200, {"content-type": "image/png", "content-length": image.length}).end(image);
                return;
            case "/redirect":
                response.writeHead(302, {location: "/red.png"}).end();
                return;
            case "/loop":
                response.writeHead(301, {location: "/loop"}).end();
                return;
            case "/slow.png":
                response.writeHead(200, {"content-type": "image/png", "content-length": image.length});
                response.write(image.subarray(0, image.length >> 1));
                return;
            case "/huge.png":
                response.writeHead(200, {"content-type": "image/png", "content-length": 21 * 1024 * 1024});
                response.write(image);
                return;
            case "/huge-unsized.png": {
                response.writeHead(200, {"content-type": "image/png"});
                const chunk = new Uint8Array(1024 * 1024);
                let sent = 0;
                const pump = () => {
                    while (sent < 22 && !response.destroyed) {
                        sent++;
                        if (!response.write(chunk)) {
                            response.once("drain", pump);
                            return;
                        }
                    }
                    response.end();
                };
                pump();
                return;
            }
            case "/text":
                response.writeHead(200, {"content-type": "text/plain"}).end("not an image");
                return;
            default:
                response.writeHead(404).end();
        }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        requests,
        close: () => new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
        })
    };
}
