import type {FastifyInstance} from "fastify";
import type {Engine} from "../../native/Engine.js";
import {acquireModel} from "../acquireModel.js";
import {normalizeVector} from "../normalizeVector.js";
import {InvalidRequestError} from "../../native/errors.js";
import {EmbeddingRequest} from "./schemas.js";
import {RUNS_ANY_MODEL} from "../routeConfig.js";


function toBase64(vector: readonly number[]): string {
    return Buffer.from(new Float32Array(vector).buffer).toString("base64");
}

export async function embeddingsRoutes(app: FastifyInstance, {engine}: {engine: Engine}): Promise<void> {
    app.post<{Body: EmbeddingRequest}>("/v1/embeddings", {schema: {body: EmbeddingRequest}, ...RUNS_ANY_MODEL}, async (request, reply) => {
        const body = request.body;
        const model = await acquireModel(engine, reply, body.model);
        const input = body.input;
        const inputs: (string | number[])[] = typeof input === "string" ? [input]
            : input.every((item) => typeof item === "number") ? [input as number[]]
            : input as (string | number[])[];
        if (inputs.length > 2048)
            throw new InvalidRequestError(`input has ${inputs.length} items; at most 2048 can be embedded in one request`, "input");

        const data = [];
        let promptTokens = 0;
        for (const [index, item] of inputs.entries()) {
            const {vector, tokens} = await model.embed(item, inputs.length > 1 ? `input.${index}` : "input");
            if (body.dimensions != null && body.dimensions !== vector.length)
                throw new InvalidRequestError(`This model's embeddings have ${vector.length} dimensions; dimensions=${body.dimensions} cannot be given`, "dimensions");
            promptTokens += tokens;
            const embedding = normalizeVector(vector);
            data.push({object: "embedding", index, embedding: body.encoding_format === "base64" ? toBase64(embedding) : embedding});
        }
        return {object: "list", data, model: body.model, usage: {prompt_tokens: promptTokens, total_tokens: promptTokens}};
    });
}
