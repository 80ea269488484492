import assert from "node:assert/strict";
import {describe, it} from "node:test";
import OpenAI from "openai";
import {hearthBin, spawnHearth as run} from "./helpers/spawnHearth.js";
import {testModel} from "./helpers/testModels.js";

describe("hearth serve", () => {
    it("prints its URL, answers /health at once, serves the model under its file name and alias, and exits 0 on SIGTERM", async () => {
        const modelPath = await testModel("derived/stories260K-chatml.gguf");
        const server = run(["serve", "--model", modelPath, "--alias", "tiny", "--port", "0", "--threads", "1", "--parallel", "2"]);
        const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        const health = await (await fetch(`${url}/health`)).json() as {status: string};
        assert.ok(["loading", "ok"].includes(health.status));
        await server.waitForOutput(/Ready/);
        assert.deepEqual(await (await fetch(`${url}/health`)).json(), {status: "ok"});

        const client = new OpenAI({baseURL: `${url}/v1`, apiKey: "x"});
        const ids = (await client.models.list()).data.map((entry) => entry.id);
        assert.deepEqual(ids, ["stories260K-chatml", "tiny"]);
        const reply = await client.chat.completions.create({model: "tiny", messages: [{role: "user", content: "Hi"}], max_tokens: 5});
        assert.equal(reply.usage!.completion_tokens, 5);

        server.child.kill("SIGTERM");
        assert.equal((await server.exited).code, 0);
    });

    it("serves a model without a template as a chat model with --chat-template chatml", async () => {
        const modelPath = await testModel("stories260K.gguf");
        const server = run(["serve", "--model", modelPath, "--port", "0", "--threads", "1", "--chat-template", "chatml"]);
        const [, url] = await server.waitForOutput(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
        await server.waitForOutput(/Ready/);
        const client = new OpenAI({baseURL: `${url}/v1`, apiKey: "x"});
        const plain = await client.chat.completions.create({model: "stories260K", messages: [{role: "user", content: "Hi"}], max_tokens: 3});
        // ChatML wraps "Hi" in <|im_start|>user … <|im_end|> markers, which this 512-token vocabulary spells out.
        assert.ok(plain.usage!.prompt_tokens > 20, `${plain.usage!.prompt_tokens} prompt tokens`);
        server.child.kill("SIGINT");
        assert.equal((await server.exited).code, 0);
    });

    it("refuses a missing model file, a bad flag and an unavailable backend with a clear message", async () => {
        const missing = await run(["serve", "--model", "/nonexistent/model.gguf", "--port", "0"]).exited;
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /no model file at \/nonexistent\/model\.gguf/);

        const notGguf = await run(["serve", "--model", hearthBin, "--port", "0"]).exited;
        assert.equal(notGguf.code, 2);
        assert.match(notGguf.stderr, /not a GGUF model file/);

        const badFlag = await run(["serve", "--parallel", "many"]).exited;
        assert.equal(badFlag.code, 2);
        assert.match(badFlag.stderr, /--parallel must be a whole number/);

        // Metal exists only on macOS, so forcing it here always fails, fast and by name.
        if (process.platform !== "darwin") {
            const metal = await run(["serve", "--gpu", "metal", "--port", "0"]).exited;
            assert.equal(metal.code, 1);
            assert.match(metal.stderr, /The Metal backend is not available on this machine: .*Use --gpu auto/);
        }
    });
});
