import assert from "node:assert/strict";
import {before, describe, it} from "node:test";
import {Ajv2020} from "ajv/dist/2020.js";
import fc from "fast-check";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";
import type {Llama} from "node-llama-cpp";
import {InvalidRequestError} from "../native/errors.js";
import {compileJsonSchema, jsonGrammarStop} from "../native/jsonSchema/index.js";

let llama: Llama;
before(async () => {
    llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
});

/**
 * Whether the grammar compiled from `schema` takes `text` whole (then its stop), checked by llama.cpp's
 * own grammar matcher (node-llama-cpp's `_testText`, which feeds the text code point by code point).
 */
async function accepts(schema: unknown, text: string, stop = jsonGrammarStop): Promise<boolean> {
    const grammar = await llama.createGrammar({grammar: compileJsonSchema(schema, "response_format")});
    return (grammar as unknown as {_testText(text: string): boolean})._testText(text + stop);
}

async function check(schema: unknown, good: readonly string[], bad: readonly string[]): Promise<void> {
    for (const text of good)
        assert.ok(await accepts(schema, text), `should take ${text}`);
    for (const text of bad)
        assert.ok(!await accepts(schema, text), `should refuse ${text}`);
}

function refuses(schema: unknown, keyword: RegExp): void {
    assert.throws(() => compileJsonSchema(schema, "response_format"), (error: unknown) => {
        assert.ok(error instanceof InvalidRequestError);
        assert.equal(error.param, "response_format");
        assert.match(error.message, keyword);
        return true;
    });
}

describe("JSON schema grammar", () => {
    it("writes objects compactly, a space after the colon allowed, as node-llama-cpp's grammars did", async () => {
        const city = {type: "object", properties: {city: {type: "string"}}, required: ["city"]};
        await check(city, ["{\"city\": \"Paris\"}", "{\"city\":\"Paris\"}", "{\n  \"city\": \"Paris\"\n}"],
            ["{}", "{\"city\": 3}", "{\"city\": \"Paris\", \"x\": 1}", "{\"city\":  \"Paris\"}", "{\n\n\n\n\"city\": \"a\"}"]);
        assert.ok(!await accepts(city, "{\"city\": \"Paris\"}", ""), "the grammar ends with its stop text");
    });

    it("generates required properties first and lets the optional ones be left out, in order", async () => {
        const schema = {type: "object", properties: {a: {type: "integer"}, b: {type: "boolean"}, c: {type: "null"}}, required: ["b"]};
        await check(schema, ["{\"b\": true}", "{\"b\": false, \"a\": 1}", "{\"b\": true, \"a\": 1, \"c\": null}", "{\"b\": true, \"c\": null}"],
            ["{}", "{\"a\": 1, \"b\": true}", "{\"b\": true, \"c\": null, \"a\": 1}"]);
        const none = {type: "object", properties: {a: {type: "integer"}, c: {type: "null"}}};
        await check(none, ["{}", "{\"a\": 1}", "{\"c\": null}", "{\"a\": 1, \"c\": null}"], ["{,}", "{\"c\": null, \"a\": 1}"]);
        await check({type: "object", properties: {}}, ["{}"], ["{\"a\": 1}"]);
        await check({type: "object", additionalProperties: {type: "integer"}}, ["{}", "{\"x\": 1, \"y\": 2}"], ["{\"x\": \"a\"}"]);
        await check({type: "object"}, ["{\"x\": [1, {\"y\": null}]}"], ["[]"]);
    });

    it("bounds integers exactly, by digit ranges", async () => {
        await check({type: "integer", minimum: -15, maximum: 123}, ["-15", "-9", "0", "7", "99", "100", "123"], ["-16", "124", "-0", "07", "1.5", "1e2"]);
        await check({type: "integer", exclusiveMinimum: 9, exclusiveMaximum: 1000}, ["10", "999"], ["9", "1000"]);
        await check({type: "integer", minimum: 2.5}, ["3", "123456"], ["2", "-1"]);
        await check({type: "integer", maximum: -3}, ["-3", "-40"], ["-2", "0"]);
        // The sign applies to every digit-range alternative, not the first alone.
        await check({type: "integer", minimum: -805, maximum: -102}, ["-805", "-300", "-102"], ["300", "550", "-806", "-101"]);
        await check({type: "number", minimum: -805, maximum: -102}, ["-300.5", "-805"], ["300.5", "-805.5", "-101.5"]);
        await check({type: "integer", minimum: 0, maximum: 100, multipleOf: 25}, ["0", "25", "100"], ["5", "125"]);
        // Over a wide range, the multiples nearest zero: a subset, every one valid.
        await check({type: "integer", multipleOf: 3}, ["0", "3", "-6", "300"], ["4", "-1"]);
        await check({type: "integer", minimum: 1000000, multipleOf: 7}, ["1000006"], ["1000000", "7"]);
    });

    it("keeps numbers provably inside their bounds", async () => {
        const schema = {type: "number", exclusiveMinimum: 0, maximum: 2.5};
        await check(schema, ["0.5", "1", "2", "1.99", "0.000001"], ["0", "-0.5", "2.4", "3", "0.50"]);
        await check({type: "number", minimum: -1, exclusiveMaximum: 1}, ["-1", "-0.5", "0", "0.75"], ["1", "-1.5", "1.5"]);
        await check({type: "number"}, ["-12.5", "0", "3"], ["01", "1.", ".5", "+1"]);
    });

    it("matches patterns of the documented subset inside the string", async () => {
        await check({type: "string", pattern: "^[A-Z]{2}-\\d{3}$"}, ["\"AB-123\""], ["\"AB-12\"", "\"ab-123\"", "\"AB-1234\""]);
        await check({type: "string", pattern: "ab"}, ["\"ab\"", "\"xxabyy\""], ["\"xxa\""]);
        await check({type: "string", pattern: "^(a*){2}b{1,2}?$"}, ["\"aab\"", "\"b\"", "\"bb\""], ["\"a\"", "\"bbb\""]);
        await check({type: "string", pattern: "^(cat|dog)s?$"}, ["\"cat\"", "\"dogs\""], ["\"cow\"", "\"cats!\""]);
        await check({type: "string", pattern: "^[^a-z]+$"}, ["\"AB 1\"", "\"\\\"\""], ["\"Ab\"", "\"\""]);
        await check({type: "string", pattern: "^\\w+\\s\\w+$"}, ["\"a b\"", "\"a\\tb\""], ["\"a  b\""]);
        await check({type: "string", pattern: "^a.c$"}, ["\"abc\"", "\"a-c\""], ["\"a\\nc\""]);
        await check({type: "string", pattern: "^\\S[^]$"}, ["\"ab\"", "\"a\\n\""], ["\"\u3000b\"", "\"\u00a0b\""]);
        await check({type: "string", pattern: "^[\\]a-]+$"}, ["\"]a-\""], ["\"b\""]);
    });

    it("writes each format in a form ajv-formats accepts", async () => {
        await check({type: "string", format: "date"}, ["\"2024-02-28\"", "\"2024-12-31\""], ["\"2024-02-30\"", "\"2024-04-31\"", "\"2024-13-01\""]);
        await check({type: "string", format: "date-time"}, ["\"2024-05-06T07:08:09Z\"", "\"2024-05-06T23:59:59.5+02:00\""], ["\"2024-05-06T24:00:00Z\"", "\"2024-05-06T07:08:09\""]);
        await check({type: "string", format: "ipv4"}, ["\"192.168.0.1\""], ["\"256.1.1.1\"", "\"01.1.1.1\""]);
        await check({type: "string", format: "uuid"}, ["\"123e4567-e89b-12d3-a456-426614174000\""], ["\"123e4567\""]);
        await check({type: "string", format: "email"}, ["\"a.b@example.com\""], ["\"a@b\"", "\"a..b@example.com\""]);
        await check({type: "string", format: "uri", minLength: 1, maxLength: 2083}, ["\"https://example.com/a/b.html\""], ["\"example.com\""]);
        await check({type: "string", format: "duration"}, ["\"P1Y2M\"", "\"PT5M\"", "\"P3W\""], ["\"P\"", "\"PT\""]);
    });

    it("bounds string lengths and array sizes, with prefixItems", async () => {
        await check({type: "string", maxLength: 1e9}, ["\"\"", "\"abc\""], []);
        await check({type: "string", minLength: 2, maxLength: 3}, ["\"ab\"", "\"abc\"", "\"a\\\"\""], ["\"a\"", "\"abcd\""]);
        const array = {type: "array", items: {type: "integer", minimum: 0, maximum: 9}, minItems: 1, maxItems: 3};
        await check(array, ["[1]", "[1, 2, 3]", "[ 1,2 ]"], ["[]", "[1, 2, 3, 4]", "[10]"]);
        const tuple = {type: "array", prefixItems: [{type: "string"}, {type: "boolean"}], items: false};
        await check(tuple, ["[\"a\", true]"], ["[\"a\"]", "[\"a\", true, 1]", "[true, \"a\"]"]);
    });

    it("follows $ref through $defs and definitions, recursion included, and merges allOf", async () => {
        const list = {
            $defs: {node: {type: "object", properties: {v: {type: "integer"}, next: {anyOf: [{$ref: "#/$defs/node"}, {type: "null"}]}}, required: ["v", "next"]}},
            $ref: "#/$defs/node"
        };
        await check(list, ["{\"v\": 1, \"next\": {\"v\": 2, \"next\": null}}"], ["{\"v\": 1}", "{\"v\": 1, \"next\": {\"v\": 2}}"]);
        await check({definitions: {n: {type: "integer", maximum: 3}}, type: "array", items: {$ref: "#/definitions/n"}}, ["[1, 3]"], ["[4]"]);
        const merged = {allOf: [{type: "object", properties: {a: {type: "string"}}, required: ["a"]}, {properties: {b: {type: "integer"}}, required: ["b"]}]};
        await check(merged, ["{\"a\": \"x\", \"b\": 2}"], ["{\"a\": \"x\"}"]);
    });

    it("takes type arrays, nullable, enum and const", async () => {
        await check({type: ["string", "null"], maxLength: 2}, ["\"ab\"", "null"], ["\"abc\"", "1"]);
        await check({enum: ["red", 2, null, {a: [1]}]}, ["\"red\"", "2", "null", "{\"a\":[1]}"], ["\"blue\"", "3"]);
        await check({type: "string", enum: ["red", 2]}, ["\"red\""], ["2"]);
        await check({const: "x"}, ["\"x\""], ["\"y\""]);
        await check({type: "integer", nullable: true}, ["1", "null"], ["\"1\""]);
        await check({type: "string", enum: ["a", "bbb", "cc"], maxLength: 2, pattern: "^[ab]"}, ["\"a\""], ["\"bbb\"", "\"cc\""]);
        await check({type: "integer", enum: [1, 5, 10], maximum: 5, multipleOf: 5}, ["5"], ["1", "10"]);
    });

    it("refuses, by name, what no grammar here enforces", () => {
        refuses({type: "object", properties: {a: {type: "string", not: {const: "x"}}}}, /"not"/);
        refuses({type: "array", items: {type: "integer"}, uniqueItems: true}, /"uniqueItems"/);
        refuses({type: "string", pattern: "^(?=a)b$"}, /"pattern": "\^\(\?=a\)b\$"/);
        refuses({type: "string", pattern: "(a)\\1"}, /"pattern"/);
        refuses({type: "string", pattern: "^[\\d-z]$"}, /"pattern"/);
        refuses({type: "string", pattern: "^[]$"}, /"pattern"/);
        refuses({type: "string", pattern: "\\bword"}, /"pattern"/);
        refuses({type: "string", format: "uri-template"}, /"format": "uri-template"/);
        refuses({type: "number", multipleOf: 0.01}, /"multipleOf"/);
        refuses({type: "integer", minimum: 5, maximum: 4}, /No integer/);
        refuses({$ref: "https://example.com/schema.json"}, /"\$ref"/);
        refuses([], /must be an object/);
        refuses({$ref: "#/%E0"}, /not a valid JSON pointer/);
        let deep: Record<string, unknown> = {type: "string"};
        for (let level = 0; level < 100; level++)
            deep = {type: "array", items: deep};
        refuses(deep, /nests deeper/);
        refuses({type: "string", minLength: 20000}, /"minLength"/);
    });

    it("ignores annotations, also on a property named like a keyword", async () => {
        const schema = {$schema: "https://json-schema.org/draft/2020-12/schema", title: "T", description: "d", type: "object", strict: true, discriminator: {propertyName: "pattern"},
            properties: {pattern: {type: "string", default: "x", examples: ["y"], deprecated: true}}, required: ["pattern"]};
        await check(schema, ["{\"pattern\": \"z\"}"], ["{}"]);
    });
});

describe("JSON schema grammar, property-based against ajv and RegExp", () => {
    const ajv = new Ajv2020({strict: false});

    it("takes exactly the integers in bounds, and only numbers in bounds", async () => {
        const bounds = fc.tuple(fc.option(fc.double({min: -2000, max: 2000, noNaN: true})), fc.option(fc.double({min: -2000, max: 2000, noNaN: true})),
            fc.boolean(), fc.boolean(), fc.constantFrom("integer", "number"));
        const value = fc.oneof(fc.integer({min: -3000, max: 3000}), fc.double({min: -3000, max: 3000, noNaN: true}).map((x) => Math.round(x * 1000) / 1000));
        await fc.assert(fc.asyncProperty(bounds, fc.array(value, {minLength: 20, maxLength: 20}), async ([low, high, exclusiveLow, exclusiveHigh, type], values) => {
            const schema: Record<string, unknown> = {type};
            if (low != null)
                schema[exclusiveLow ? "exclusiveMinimum" : "minimum"] = low;
            if (high != null)
                schema[exclusiveHigh ? "exclusiveMaximum" : "maximum"] = high;
            let grammar;
            try {
                grammar = await llama.createGrammar({grammar: compileJsonSchema(schema, "p")});
            } catch {
                return; // no value the grammar can write: a 400, checked elsewhere
            }
            const validate = ajv.compile(schema);
            for (const candidate of values) {
                const text = JSON.stringify(candidate);
                const taken = (grammar as unknown as {_testText(text: string): boolean})._testText(text + jsonGrammarStop);
                if (taken)
                    assert.ok(validate(candidate), `${text} taken under ${JSON.stringify(schema)}`);
                else if (Number.isInteger(candidate))
                    assert.ok(!validate(candidate), `${text} refused under ${JSON.stringify(schema)}`);
            }
        }), {numRuns: 300, seed: 7});
    });

    it("translates patterns exactly: the grammar takes a string when the RegExp matches it", async () => {
        const piece = fc.constantFrom("a", "b", "[ab]", "[^a]", "\\d", "\\w", "\\s", ".", "-", "(a|b1)", "(?:ab)", "[a-c0-2]", "\\.", "\\D");
        const quantifier = fc.constantFrom("", "", "*", "+", "?", "{2}", "{1,}", "{0,2}", "{1,3}?");
        const pattern = fc.tuple(fc.boolean(), fc.array(fc.tuple(piece, quantifier).map(([p, q]) => p + q), {minLength: 1, maxLength: 4}), fc.boolean(),
            fc.option(fc.array(fc.tuple(piece, quantifier).map(([p, q]) => p + q), {minLength: 1, maxLength: 2})))
            .map(([start, pieces, end, other]) => `${start ? "^" : ""}${pieces.join("")}${end ? "$" : ""}${other == null ? "" : `|${other.join("")}`}`);
        const candidate = fc.string({unit: fc.constantFrom("a", "b", "1", "2", "c", "-", ".", " ", "\t", "\"", "\\", "\u00e9"), maxLength: 6});
        await fc.assert(fc.asyncProperty(pattern, fc.array(candidate, {minLength: 20, maxLength: 20}), async (source, strings) => {
            const grammar = await llama.createGrammar({grammar: compileJsonSchema({type: "string", pattern: source}, "p")});
            const regex = new RegExp(source, "u");
            for (const text of strings) {
                const taken = (grammar as unknown as {_testText(text: string): boolean})._testText(JSON.stringify(text) + jsonGrammarStop);
                assert.equal(taken, regex.test(text), `${JSON.stringify(text)} under /${source}/`);
            }
        }), {numRuns: 300, seed: 7});
    });
});
