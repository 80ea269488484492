import assert from "node:assert/strict";
import {describe, it} from "node:test";
import {Ajv2020} from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import fc from "fast-check";
import OpenAI from "openai";
import {useTestServer} from "./helpers/testServer.js";

const model = "stories260K";
const server = useTestServer();
const ajv = new Ajv2020({strict: false, allErrors: true});
addFormats.default(ajv);

/** Generates under `schema` at temperature 1 and checks the reply with ajv; returns the parsed value. */
async function generate(schema: Record<string, unknown>, seed: number): Promise<unknown> {
    const response = await server.client.chat.completions.create({
        model, messages: [{role: "user", content: "Tell me a story"}], max_tokens: 600, temperature: 1, seed,
        response_format: {type: "json_schema", json_schema: {name: "out", schema}}
    });
    const choice = response.choices[0]!;
    const text = choice.message.content!;
    assert.equal(choice.finish_reason, "stop", `finished before max_tokens: ${text}`);
    const value = JSON.parse(text) as unknown;
    const validate = ajv.compile(schema);
    assert.ok(validate(value), `${text} does not match ${JSON.stringify(schema)}: ${ajv.errorsText(validate.errors)}`);
    return value;
}

const order = {
    type: "object",
    properties: {
        id: {type: "string", pattern: "^ORD-[0-9]{4}$"},
        quantity: {type: "integer", minimum: 1, maximum: 12},
        price: {type: "number", exclusiveMinimum: 0, maximum: 99.5},
        shipped: {type: "string", format: "date"},
        contact: {type: "string", format: "email"},
        note: {type: "string", maxLength: 10}
    },
    required: ["id", "quantity", "price", "shipped", "contact"],
    additionalProperties: false
};

describe("JSON schema generation", () => {
    it("accepts minimum, maximum, pattern and format, and the output keeps to them", async () => {
        for (const seed of [1, 2, 3, 4, 5]) {
            const value = await generate(order, seed) as {id: string, quantity: number, price: number};
            assert.match(value.id, /^ORD-\d{4}$/);
            assert.ok(value.quantity >= 1 && value.quantity <= 12);
        }
    });

    it("constrains tool arguments the same way", async () => {
        const response = await server.client.chat.completions.create({
            model, messages: [{role: "user", content: "Book it"}], temperature: 1, seed: 7, max_tokens: 300,
            tools: [{type: "function", function: {name: "book", parameters: order}}], tool_choice: {type: "function", function: {name: "book"}}
        });
        const call = response.choices[0]!.message.tool_calls![0]!;
        assert.ok(call.type === "function");
        const validate = ajv.compile(order);
        assert.ok(validate(JSON.parse(call.function.arguments)), call.function.arguments);
    });

    it("constrains Ollama's format schema", async () => {
        const response = await fetch(`${server.url}/api/chat`, {
            method: "POST",
            headers: {"content-type": "application/json"},
            body: JSON.stringify({model, messages: [{role: "user", content: "Order"}], format: order, stream: false, options: {temperature: 1, seed: 3}})
        });
        assert.equal(response.status, 200);
        const body = await response.json() as {message: {content: string}};
        assert.ok(ajv.compile(order)(JSON.parse(body.message.content)), body.message.content);
    });

    it("refuses a schema that only refers to itself with a 400, not a 500", async () => {
        await assert.rejects(server.client.chat.completions.create({
            model, messages: [{role: "user", content: "x"}], max_tokens: 5,
            response_format: {type: "json_schema", json_schema: {name: "out", schema: {$defs: {a: {anyOf: [{$ref: "#/$defs/a"}, {type: "null"}]}}, $ref: "#/$defs/a"}}}
        }), (error: unknown) => error instanceof OpenAI.BadRequestError && error.param === "response_format");
    });

    it("refuses a keyword no grammar enforces with a 400 naming it", async () => {
        const schema = {type: "object", properties: {tags: {type: "array", items: {type: "string"}, uniqueItems: true}}};
        await assert.rejects(server.client.chat.completions.create({
            model, messages: [{role: "user", content: "x"}], max_tokens: 5,
            response_format: {type: "json_schema", json_schema: {name: "out", schema}}
        }), (error: unknown) => {
            assert.ok(error instanceof OpenAI.BadRequestError);
            assert.equal(error.param, "response_format");
            assert.match(error.message, /"uniqueItems"/);
            return true;
        });
    });
});

/**
 * Anchored patterns built from a small set of pieces, each bounded so a tiny model finishes them (an
 * unanchored pattern lets the string run on, like a string without maxLength; the grammar tests cover it).
 */
const pattern = fc.array(fc.constantFrom("[a-z]{1,4}", "\\d{2}", "(red|blue)", "-", "[A-F0-9]{2,3}", "x?", "\\w{1,3}", "[.]", "(ab|c){1,2}", "[^a-z\\s]{1,2}"),
    {minLength: 1, maxLength: 4}).map((pieces) => `^${pieces.join("")}$`);

const leaf: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
    fc.tuple(fc.integer({min: -1000, max: 1000}), fc.integer({min: 0, max: 2000}), fc.boolean(), fc.boolean())
        .map(([low, width, exclusiveLow, exclusiveHigh]) => ({
            type: "integer", [exclusiveLow ? "exclusiveMinimum" : "minimum"]: low, [exclusiveHigh ? "exclusiveMaximum" : "maximum"]: low + width + 2
        })),
    fc.tuple(fc.double({min: -100, max: 100, noNaN: true}), fc.double({min: 1.5, max: 300, noNaN: true}), fc.boolean())
        .map(([low, width, exclusive]) => ({type: "number", [exclusive ? "exclusiveMinimum" : "minimum"]: low, maximum: low + width})),
    fc.integer({min: 0, max: 5}).chain((min) => fc.integer({min, max: min + 8}).map((max) => ({type: "string", minLength: min, maxLength: max}))),
    pattern.map((source) => ({type: "string", pattern: source})),
    fc.constantFrom("date-time", "date", "time", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri").map((format) => ({type: "string", format})),
    fc.constant({type: "boolean"}),
    fc.constant({type: ["integer", "null"], minimum: 0, maximum: 9}),
    fc.uniqueArray(fc.oneof(fc.string({maxLength: 6}), fc.integer({min: -50, max: 50})), {minLength: 1, maxLength: 4}).map((values) => ({enum: values})),
    fc.integer({min: 1, max: 10}).map((step) => ({type: "integer", minimum: 0, maximum: 60, multipleOf: step})),
    fc.integer({min: 2, max: 1000}).map((step) => ({type: "integer", multipleOf: step}))
);

const names = ["a", "name", "count", "kind", "value", "the key"];
const schemaArbitrary: fc.Arbitrary<Record<string, unknown>> = fc.letrec<{node: Record<string, unknown>}>((tie) => ({
    node: fc.oneof({depthSize: "small", withCrossShrink: true},
        leaf,
        fc.tuple(tie("node"), fc.integer({min: 0, max: 2}), fc.integer({min: 0, max: 2}))
            .map(([items, min, extra]) => ({type: "array", items, minItems: min, maxItems: min + extra})),
        fc.uniqueArray(fc.constantFrom(...names), {minLength: 1, maxLength: 3}).chain((keys) => fc.tuple(
            fc.array(tie("node"), {minLength: keys.length, maxLength: keys.length}),
            fc.subarray(keys), fc.boolean()
        ).map(([schemas, required, closed]) => ({
            type: "object",
            properties: Object.fromEntries(keys.map((key, index) => [key, schemas[index]])),
            required,
            ...closed ? {additionalProperties: false} : {}
        }))),
        fc.array(tie("node"), {minLength: 2, maxLength: 3}).map((options) => ({anyOf: options})),
        fc.array(tie("node"), {minLength: 1, maxLength: 3}).map((prefixItems) => ({type: "array", prefixItems, items: false})),
        fc.tuple(tie("node"), tie("node")).map(([a, b]) => ({allOf: [
            {type: "object", properties: {a}, required: ["a"]},
            {type: "object", properties: {b}, required: ["b"]}
        ]}))
    )
})).node;

/** A schema, or the same schema reached through $defs and $ref, or a recursive list of it. */
const rootSchema = fc.tuple(schemaArbitrary, fc.constantFrom("plain", "ref", "list")).map(([schema, shape]): Record<string, unknown> => {
    if (shape === "ref")
        return {$defs: {item: schema}, type: "object", properties: {x: {$ref: "#/$defs/item"}}, required: ["x"]};
    if (shape === "list")
        return {
            $defs: {item: schema, list: {type: "object", properties: {head: {$ref: "#/$defs/item"}, tail: {anyOf: [{type: "null"}, {$ref: "#/$defs/list"}]}}, required: ["head", "tail"]}},
            $ref: "#/$defs/list"
        };
    return schema;
});

describe("JSON schema generation, property-based", () => {
    it("output generated under any schema of the supported set validates with ajv", async () => {
        let seed = 100;
        await fc.assert(fc.asyncProperty(rootSchema, async (schema) => {
            await generate(schema, seed++);
        }), {numRuns: 100, seed: 20261129});
    });
});
