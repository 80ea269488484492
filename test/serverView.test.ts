import assert from "node:assert/strict";
import {describe, it} from "node:test";
import OpenAI from "openai";
import {useTestServer} from "./helpers/testServer.js";

/** `/api/server`: what the Server view shows about where the API listens and what it is doing. */

type ServerInfo = {base_url: string, port: number, lan: boolean, metrics: {requestsInFlight: number, requestsTotal: number}};
type Logged = {id: number, method: string, path: string, status: number};

describe("the Server view's data", () => {
    const server = useTestServer();

    it("gives the base_url tools use, and shows requests a client stopped as finished", async () => {
        const info = await (await fetch(`${server.url}/api/server`)).json() as ServerInfo;
        assert.equal(info.base_url, `${server.url}/v1`);
        assert.equal(info.port, Number(new URL(server.url).port));
        assert.equal(info.lan, false);

        const client = new OpenAI({baseURL: info.base_url, apiKey: "unused"});
        const stream = await client.chat.completions.create({
            model: "stories260K", messages: [{role: "user", content: "Once upon a time"}], stream: true, max_tokens: 2000
        });
        let chunks = 0;
        // Leaving the loop stops the stream: the SDK aborts its request.
        for await (const _chunk of stream) {
            if (++chunks === 2)
                break;
        }
        assert.equal(chunks, 2);

        let after: ServerInfo | undefined;
        for (let attempt = 0; attempt < 100; attempt++) {
            after = await (await fetch(`${server.url}/api/server`)).json() as ServerInfo;
            if (after.metrics.requestsInFlight === 0)
                break;
            await new Promise((resolve) => setTimeout(resolve, 20));
        }
        assert.equal(after!.metrics.requestsInFlight, 0, "the stopped stream is no longer in flight");
        const log = (await (await fetch(`${server.url}/api/server/requests?after=0`)).json() as {requests: Logged[]}).requests;
        assert.ok(log.some((entry) => entry.method === "POST" && entry.path === "/v1/chat/completions"), JSON.stringify(log));
        assert.ok(!log.some((entry) => entry.path === "/api/server"), "the view's own polling is not logged");
    });
});
