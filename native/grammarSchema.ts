import {InvalidRequestError} from "./errors.js";

/** Keywords that only describe a schema; generation ignores them and the output still matches. */
const annotations = new Set(["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly", "writeOnly", "required", "strict"]);
/** Keywords the grammar enforces. */
const enforced = new Set(["type", "properties", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "minProperties", "maxProperties", "enum", "const", "oneOf", "anyOf", "$defs", "definitions", "$ref", "format", "minLength", "maxLength"]);

/**
 * Checks a client's JSON schema and rewrites it into the subset node-llama-cpp turns into a grammar
 * (`anyOf` becomes `oneOf`, `definitions` becomes `$defs`). A keyword the grammar cannot enforce,
 * such as `pattern` or `minimum`, is refused with a 400 that names it: the promise is that output
 * always matches the schema, so it is not silently ignored.
 */
export function toGrammarSchema(schema: unknown, param: string): Record<string, unknown> {
    const unsupported = new Set<string>();
    const convert = (node: unknown, isPropertyMap = false): unknown => {
        if (Array.isArray(node))
            return node.map((item) => convert(item));
        if (node == null || typeof node !== "object")
            return node;
        const out: Record<string, unknown> = {};
        for (const [key, value] of Object.entries(node)) {
            if (isPropertyMap) {
                out[key] = convert(value);
                continue;
            }
            if (annotations.has(key))
                continue;
            if (!enforced.has(key)) {
                unsupported.add(key);
                continue;
            }
            const target = key === "anyOf" ? "oneOf" : key === "definitions" ? "$defs" : key;
            if (key === "$ref" && typeof value === "string")
                out[target] = value.replace("#/definitions/", "#/$defs/");
            else if (key === "enum" || key === "const")
                out[target] = value;
            else
                out[target] = convert(value, key === "properties" || key === "$defs" || key === "definitions");
        }
        return out;
    };
    if (schema == null || typeof schema !== "object" || Array.isArray(schema))
        throw new InvalidRequestError("The JSON schema must be an object", param);
    const converted = convert(schema) as Record<string, unknown>;
    if (unsupported.size > 0)
        throw new InvalidRequestError(
            `The JSON schema uses ${[...unsupported].map((key) => `"${key}"`).join(", ")}, which constrained generation cannot enforce. ` +
            "Remove those keywords (and check the values yourself), or describe the constraint in the prompt.", param);
    if (Object.keys(converted).length === 0)
        return {type: "object", additionalProperties: true};
    return converted;
}
