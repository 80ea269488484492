import assert from "node:assert/strict";

/** An upstream as `GET /api/upstreams` lists it. */
export type UpstreamView = {
    id: string, url: string, name: string, source: string, has_key: boolean, health: string, models: string[], in_flight: number, failures: number
};

/** The upstreams a Hearth server lists, with their health; `headers` carry a key where the server needs one. */
export async function upstreamsOf(server: {url: string}, headers: Record<string, string> = {}): Promise<UpstreamView[]> {
    const response = await fetch(`${server.url}/api/upstreams`, {headers});
    assert.equal(response.status, 200);
    return (await response.json() as {upstreams: UpstreamView[]}).upstreams;
}
