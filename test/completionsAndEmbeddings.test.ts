import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {useTestServer} from "./helpers/testServer.js";

const model = "stories260K";
const server = useTestServer();

describe("POST /v1/completions", () => {
    it("continues a prompt: Once upon a time, there was a little girl named Lily", async () => {
        const response = await server.client.completions.create({model, prompt: "Once upon a time", max_tokens: 20, temperature: 0});
        assert.equal(response.object, "text_completion");
        assert.match(response.choices[0]!.text, /^, there was a little girl named Lily/);
        assert.equal(response.choices[0]!.finish_reason, "length");
        assert.equal(response.usage!.completion_tokens, 20);
    });

    it("echoes the prompt, takes token arrays and several prompts", async () => {
        const plain = await server.client.completions.create({model, prompt: "Once upon a time", max_tokens: 10, temperature: 0});
        const echoed = await server.client.completions.create({model, prompt: "Once upon a time", max_tokens: 10, temperature: 0, echo: true});
        assert.equal(echoed.choices[0]!.text, "Once upon a time" + plain.choices[0]!.text);

        const tokens = [403, 407, 261, 378];
        const fromTokens = await server.client.completions.create({model, prompt: tokens, max_tokens: 5, temperature: 0});
        assert.equal(fromTokens.usage!.prompt_tokens, tokens.length + 1, "the BOS token is added");

        const several = await server.client.completions.create({model, prompt: ["Once upon a time", "The dog"], max_tokens: 5, temperature: 0, n: 2});
        assert.deepEqual(several.choices.map((choice) => choice.index), [0, 1, 2, 3]);
        assert.equal(several.choices[0]!.text, several.choices[1]!.text, "greedy choices of one prompt agree");
        assert.notEqual(several.choices[0]!.text, several.choices[2]!.text);
    });

    it("streams text chunks and log probabilities", async () => {
        const whole = await server.client.completions.create({model, prompt: "Once upon a time", max_tokens: 12, temperature: 0, logprobs: 2});
        const logprobs = whole.choices[0]!.logprobs!;
        assert.equal(logprobs.tokens!.length, 12);
        assert.equal(logprobs.tokens!.join(""), whole.choices[0]!.text);
        assert.equal(Object.keys(logprobs.top_logprobs![0]!).length, 2);

        const stream = await server.client.completions.create({model, prompt: "Once upon a time", max_tokens: 12, temperature: 0, stream: true});
        let text = "";
        let finishReason: string | null = null;
        for await (const chunk of stream) {
            text += chunk.choices[0]?.text ?? "";
            finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
        }
        assert.equal(text, whole.choices[0]!.text);
        assert.equal(finishReason, "length");
    });

    it("stops at a stop string and names it in stop_reason (vLLM's field), streamed and not", async () => {
        const base = {model, prompt: "Once upon a time", max_tokens: 20, temperature: 0};
        const whole = await server.client.completions.create({...base, stop: ["girl"]});
        assert.equal(whole.choices[0]!.text, ", there was a little ");
        assert.equal(whole.choices[0]!.finish_reason, "stop");
        assert.equal((whole.choices[0] as {stop_reason?: unknown}).stop_reason, "girl");
        const stream = await server.client.completions.create({...base, stop: ["zzzz", "girl"], stream: true});
        let stopReason: unknown;
        for await (const chunk of stream)
            if (chunk.choices[0]?.finish_reason != null)
                stopReason = (chunk.choices[0] as {stop_reason?: unknown}).stop_reason;
        assert.equal(stopReason, "girl");
        const unstopped = await server.client.completions.create(base);
        assert.equal((unstopped.choices[0] as {stop_reason?: unknown}).stop_reason, null);
    });
});

describe("POST /v1/embeddings", () => {
    it("embeds text as unit vectors, as floats or base64", async () => {
        const floats = await server.client.embeddings.create({model, input: "A cat sat on the mat", encoding_format: "float"});
        const vector = floats.data[0]!.embedding;
        assert.equal(floats.object, "list");
        assert.equal(vector.length, 64);
        assert.ok(Math.abs(Math.hypot(...vector) - 1) < 1e-4);
        assert.ok(floats.usage.prompt_tokens > 0);

        // The SDK asks for base64 by default and decodes it.
        const decoded = await server.client.embeddings.create({model, input: "A cat sat on the mat"});
        decoded.data[0]!.embedding.forEach((value, index) => assert.ok(Math.abs(value - vector[index]!) < 1e-6));
    });

    it("embeds several inputs and token arrays; different texts differ", async () => {
        const response = await server.client.embeddings.create({model, input: ["A cat", "The stock market fell sharply"], encoding_format: "float"});
        assert.deepEqual(response.data.map((item) => item.index), [0, 1]);
        assert.notDeepEqual(response.data[0]!.embedding, response.data[1]!.embedding);
        const tokens = await server.client.embeddings.create({model, input: [[403, 407, 261]], encoding_format: "float"});
        assert.equal(tokens.data[0]!.embedding.length, 64);
        assert.equal(tokens.usage.prompt_tokens, 3);
    });
});

describe("GET /v1/models", () => {
    it("lists the served models in OpenAI's shape", async () => {
        const list = await server.client.models.list();
        assert.deepEqual(list.data.map((entry) => entry.id), [model]);
        const entry = list.data[0]!;
        assert.equal(entry.object, "model");
        assert.equal(entry.owned_by, "hearth");
        assert.ok(Number.isInteger(entry.created) && entry.created > 1_600_000_000);
        assert.equal((await server.client.models.retrieve(model)).id, model);
    });
});
