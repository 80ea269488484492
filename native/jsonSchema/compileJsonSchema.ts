import {InvalidRequestError} from "../errors.js";
import {formatLengths, formats} from "./formats.js";
import {literal, repeatSuffix} from "./gbnf.js";
import {integerBounds, integerLimit, integerRange, numberRange} from "./numberRange.js";
import type {Bound} from "./numberRange.js";
import {regexToGbnf, UnsupportedPatternError} from "./regexToGbnf.js";

type Schema = Record<string, unknown>;

/** The text that ends generation under a compiled grammar, as node-llama-cpp's JSON schema grammars end. */
export const jsonGrammarStop = "\n\n\n\n";

/** Keywords that only describe a schema; generation ignores them and the output still matches. */
const annotations = new Set(["title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
    "readOnly", "writeOnly", "strict", "$defs", "definitions", "$anchor", "contentMediaType", "discriminator"]);
/** Keywords the grammar enforces. */
const enforced = new Set(["type", "enum", "const", "nullable", "properties", "required", "additionalProperties", "minProperties",
    "maxProperties", "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "pattern", "format", "minLength", "maxLength", "anyOf", "oneOf", "allOf", "$ref"]);
const typeKeywords: Record<string, readonly string[]> = {
    number: ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"],
    string: ["pattern", "format", "minLength", "maxLength"],
    object: ["properties", "required", "additionalProperties", "minProperties", "maxProperties"],
    array: ["items", "prefixItems", "minItems", "maxItems"]
};
/**
 * Repetition counts above this are not written into a grammar (llama.cpp expands them into rules): a
 * larger maximum generates at most this many (a subset, all valid); a larger minimum is refused.
 */
const repetitionLimit = 10_000;
/** How deeply schemas may nest, `$ref`s followed included, before the schema is refused. */
const depthLimit = 64;
/** Multiples of `multipleOf` are listed one by one; from a range holding more, those nearest zero. */
const multipleOfLimit = 512;

/** Shared rules, written once into every grammar that uses them. */
const baseRules: Record<string, string> = {
    // Whitespace stays short: nothing, a space, or one line break and a little indentation.
    ws: "([ ] | [\\n] [ \\t]{0,16})?",
    char: "[^\"\\\\\\x00-\\x1f\\x7f] | \"\\\\\" [\"\\\\/bfnrt]",
    string: "\"\\\"\" char* \"\\\"\"",
    number: numberRange(undefined, undefined)!,
    value: "object | array | string | number | \"true\" | \"false\" | \"null\"",
    object: "\"{\" ws (string \":\" [ ]? value (\",\" ws string \":\" [ ]? value)*)? ws \"}\"",
    array: "\"[\" ws (value (\",\" ws value)*)? ws \"]\""
};
const baseDependencies: Record<string, readonly string[]> = {
    string: ["char"], value: ["object", "array", "string", "number"], object: ["ws", "string", "value"], array: ["ws", "value"]
};

function isSchema(value: unknown): value is Schema {
    return value != null && typeof value === "object" && !Array.isArray(value);
}

function sameJson(a: unknown, b: unknown): boolean {
    return JSON.stringify(a) === JSON.stringify(b);
}

/** What JSON type a value has, `integer` for whole numbers. */
function jsonType(value: unknown): string {
    if (value === null)
        return "null";
    if (Array.isArray(value))
        return "array";
    if (typeof value === "number")
        return Number.isInteger(value) ? "integer" : "number";
    return typeof value;
}

class SchemaCompiler {
    readonly #rules = new Map<string, string>();
    readonly #names = new Map<string, string>();
    readonly #refs = new Map<string, string>();
    #depth = 0;

    constructor(readonly root: unknown, readonly param: string) {}

    compile(): string {
        const value = this.value(this.root, "root-value");
        const lines = [`root ::= ${value} ${literal(jsonGrammarStop)} [\\n]*`];
        for (const [name, body] of this.#rules)
            lines.push(`${name} ::= ${body}`);
        return lines.join("\n") + "\n";
    }

    fail(message: string): never {
        throw new InvalidRequestError(message, this.param);
    }

    /** A rule named after `hint` with `body`, shared with any rule of the same body. */
    rule(hint: string, body: string): string {
        const existing = this.#names.get(body);
        if (existing != null)
            return existing;
        const name = this.#reserve(hint);
        this.#rules.set(name, body);
        this.#names.set(body, name);
        return name;
    }

    #reserve(hint: string): string {
        const base = hint.replace(/[^a-zA-Z0-9]+/g, "-").replace(/^-+|-+$/g, "").toLowerCase().slice(0, 40) || "r";
        let name = /^[a-z]/.test(base) ? base : `r-${base}`;
        for (let counter = 2; this.#rules.has(name) || name === "root" || baseRules[name] != null; counter++)
            name = `${base}-${counter}`;
        this.#rules.set(name, "");
        return name;
    }

    /** A shared rule such as `string` or `value`, with the rules it uses. */
    base(name: string): string {
        if (!this.#rules.has(name)) {
            this.#rules.set(name, baseRules[name]!);
            for (const dependency of baseDependencies[name] ?? [])
                this.base(dependency);
        }
        return name;
    }

    /** A GBNF expression for the JSON texts that validate against `schema`. */
    value(schema: unknown, hint: string): string {
        if (this.#depth >= depthLimit)
            this.fail(`The JSON schema nests deeper than ${depthLimit} levels`);
        this.#depth++;
        try {
            return this.#value(schema, hint);
        } finally {
            this.#depth--;
        }
    }

    #value(schema: unknown, hint: string): string {
        if (schema === true)
            return this.base("value");
        if (schema === false)
            this.fail("The JSON schema `false` matches no value");
        if (!isSchema(schema))
            this.fail("Each JSON schema must be an object or a boolean");
        const unsupported = Object.keys(schema).filter((key) => !annotations.has(key) && !enforced.has(key));
        if (unsupported.length > 0)
            this.fail(`The JSON schema uses ${unsupported.map((key) => `"${key}"`).join(", ")}, which constrained generation cannot enforce. ` +
                "Remove those keywords (and check the values yourself), or describe the constraint in the prompt.");
        const keys = Object.keys(schema).filter((key) => !annotations.has(key));
        if (keys.length === 0)
            return this.base("value");
        if (typeof schema.$ref === "string") {
            if (keys.length === 1)
                return this.#ref(schema.$ref);
            const {$ref, ...rest} = schema;
            return this.value({allOf: [this.resolve($ref as string), rest]}, hint);
        }
        if (schema.$ref != null)
            this.fail("\"$ref\" must be a string");
        if (schema.allOf != null) {
            const {allOf, ...rest} = schema;
            if (!Array.isArray(allOf))
                this.fail("\"allOf\" must be an array");
            return this.value(this.merge([rest, ...allOf]), hint);
        }
        const branches = schema.anyOf ?? schema.oneOf;
        if (branches != null) {
            if (schema.anyOf != null && schema.oneOf != null)
                this.fail("A schema with both \"anyOf\" and \"oneOf\" is not supported");
            if (!Array.isArray(branches) || branches.length === 0)
                this.fail("\"anyOf\" and \"oneOf\" must be non-empty arrays");
            const {anyOf: _anyOf, oneOf: _oneOf, ...rest} = schema;
            const hasRest = Object.keys(rest).some((key) => !annotations.has(key));
            const options = branches.map((branch, index) => this.value(hasRest ? this.merge([rest, branch]) : branch, `${hint}-${index}`));
            return this.rule(hint, [...new Set(options)].join(" | "));
        }
        const options = this.#typed(schema, hint);
        if (schema.nullable === true && !options.includes("\"null\""))
            options.push("\"null\"");
        if (options.length === 0)
            this.fail("The JSON schema matches no value (its type, enum and const leave nothing)");
        return options.length === 1 && !options[0]!.includes(" ") ? options[0]! : this.rule(hint, options.join(" | "));
    }

    #typed(schema: Schema, hint: string): string[] {
        let types: string[];
        if (schema.type == null)
            types = Object.entries(typeKeywords).filter(([, keywords]) => keywords.some((key) => key in schema)).map(([type]) => type);
        else {
            types = Array.isArray(schema.type) ? schema.type.map(String) : [String(schema.type)];
            const known = ["null", "boolean", "integer", "number", "string", "array", "object"];
            const unknown = types.filter((type) => !known.includes(type));
            if (unknown.length > 0)
                this.fail(`Unknown JSON schema type ${unknown.map((type) => `"${type}"`).join(", ")}`);
            if (types.includes("number"))
                types = types.filter((type) => type !== "integer");
        }
        if (schema.enum != null || schema.const !== undefined) {
            let values: unknown[] = schema.enum != null ? (Array.isArray(schema.enum) ? schema.enum : this.fail("\"enum\" must be an array")) : [schema.const];
            if (schema.enum != null && schema.const !== undefined)
                values = values.filter((value) => sameJson(value, schema.const));
            if (schema.type != null)
                values = values.filter((value) => types.includes(jsonType(value)) || (jsonType(value) === "integer" && types.includes("number")));
            values = values.filter((value) => this.#withinLimits(value, schema));
            return [...new Set(values.map((value) => literal(JSON.stringify(value))))];
        }
        if (types.length === 0)
            return [this.base("value")];
        return types.map((type) => this.#ofType(type, schema, `${hint}-${type}`));
    }

    /** Whether an `enum` or `const` value keeps to the schema's string and number keywords beside it. */
    #withinLimits(value: unknown, schema: Schema): boolean {
        if (typeof value === "string") {
            const length = [...value].length;
            if (typeof schema.minLength === "number" && length < schema.minLength)
                return false;
            if (typeof schema.maxLength === "number" && length > schema.maxLength)
                return false;
            if (typeof schema.pattern === "string") {
                try {
                    return new RegExp(schema.pattern, "u").test(value);
                } catch {
                    this.fail(`"pattern": ${JSON.stringify(schema.pattern)} is not a valid regular expression`);
                }
            }
        } else if (typeof value === "number") {
            const low = this.#bound(schema, "minimum", "exclusiveMinimum");
            const high = this.#bound(schema, "maximum", "exclusiveMaximum");
            if (low != null && (value < low.value || (low.exclusive && value === low.value)))
                return false;
            if (high != null && (value > high.value || (high.exclusive && value === high.value)))
                return false;
            if (typeof schema.multipleOf === "number" && !Number.isInteger(value / schema.multipleOf))
                return false;
        }
        return true;
    }

    #ofType(type: string, schema: Schema, hint: string): string {
        switch (type) {
            case "null":
                return "\"null\"";
            case "boolean":
                return this.rule("boolean", "\"true\" | \"false\"");
            case "integer":
            case "number":
                return this.#number(type, schema, hint);
            case "string":
                return this.#string(schema, hint);
            case "array":
                return this.#array(schema, hint);
            default:
                return this.#object(schema, hint);
        }
    }

    #bound(schema: Schema, inclusive: "minimum" | "maximum", exclusive: "exclusiveMinimum" | "exclusiveMaximum"): Bound | undefined {
        const bounds: Bound[] = [];
        const value = schema[inclusive];
        const exclusiveValue = schema[exclusive];
        if (value != null && typeof value !== "number")
            this.fail(`"${inclusive}" must be a number`);
        if (typeof exclusiveValue === "number")
            bounds.push({value: exclusiveValue, exclusive: true});
        else if (exclusiveValue != null && typeof exclusiveValue !== "boolean")
            this.fail(`"${exclusive}" must be a number`);
        if (typeof value === "number")
            bounds.push({value, exclusive: exclusiveValue === true}); // draft 4's boolean form
        const tighter = inclusive === "minimum" ? (a: Bound, b: Bound) => a.value > b.value || (a.value === b.value && a.exclusive)
            : (a: Bound, b: Bound) => a.value < b.value || (a.value === b.value && a.exclusive);
        return bounds.reduce<Bound | undefined>((best, bound) => best == null || tighter(bound, best) ? bound : best, undefined);
    }

    #number(type: string, schema: Schema, hint: string): string {
        const low = this.#bound(schema, "minimum", "exclusiveMinimum");
        const high = this.#bound(schema, "maximum", "exclusiveMaximum");
        const multipleOf = schema.multipleOf;
        if (multipleOf != null) {
            if (typeof multipleOf !== "number" || !(multipleOf > 0))
                this.fail("\"multipleOf\" must be a positive number");
            if (!Number.isInteger(multipleOf))
                this.fail(`"multipleOf": ${multipleOf} is not supported: only whole-number steps can be enforced exactly`);
            const [from, to] = integerBounds(low, high);
            let lowIndex = Math.ceil(Math.max(from, -integerLimit) / multipleOf);
            let highIndex = Math.floor(Math.min(to, integerLimit) / multipleOf);
            if (lowIndex > highIndex)
                this.fail("No integer satisfies the schema's \"multipleOf\" within its bounds");
            // Multiples are listed one by one; over a wide range, only those nearest zero (a subset, all valid).
            if (highIndex - lowIndex + 1 > multipleOfLimit) {
                if (lowIndex > 0)
                    highIndex = lowIndex + multipleOfLimit - 1;
                else if (highIndex < 0)
                    lowIndex = highIndex - multipleOfLimit + 1;
                else {
                    lowIndex = Math.max(lowIndex, -multipleOfLimit / 2);
                    highIndex = Math.min(highIndex, lowIndex + multipleOfLimit - 1);
                }
            }
            const first = lowIndex * multipleOf;
            const count = highIndex - lowIndex + 1;
            const values = Array.from({length: count}, (_, index) => literal(String(first + index * multipleOf)));
            return this.rule(hint, values.join(" | "));
        }
        const range = type === "integer" ? integerRange(...integerBounds(low, high)) : numberRange(low, high);
        if (range == null)
            this.fail(`No ${type} the grammar can write satisfies the schema's bounds (numbers are integers, or decimals strictly between two integers in range)`);
        return low == null && high == null && type === "number" ? this.base("number") : this.rule(hint, range);
    }

    #string(schema: Schema, hint: string): string {
        const minLength = this.#count(schema, "minLength") ?? 0;
        const maxLength = this.#count(schema, "maxLength");
        if (maxLength !== undefined && maxLength < minLength)
            this.fail("\"maxLength\" is below \"minLength\"");
        const quote = literal("\"");
        const fitsLength = (min: number, max: number | undefined) => min >= minLength && (maxLength === undefined || (max !== undefined && max <= maxLength));
        if (schema.pattern != null && schema.format != null)
            this.fail("A string schema with both \"pattern\" and \"format\" is not supported");
        if (schema.format != null) {
            const format = String(schema.format);
            if (formats[format] == null)
                this.fail(`"format": "${format}" is not supported (supported: ${Object.keys(formats).join(", ")})`);
            if (!fitsLength(...formatLengths[format]!))
                this.fail(`"format": "${format}" together with "minLength"/"maxLength" is not supported`);
            return this.rule(`format-${format}`, `${quote} ${formats[format]} ${quote}`);
        }
        if (schema.pattern != null) {
            if (typeof schema.pattern !== "string")
                this.fail("\"pattern\" must be a string");
            let translated: ReturnType<typeof regexToGbnf>;
            try {
                translated = regexToGbnf(schema.pattern);
            } catch (error) {
                if (!(error instanceof UnsupportedPatternError))
                    throw error;
                this.fail(`"pattern": ${JSON.stringify(schema.pattern)} is outside the supported regular expression subset (${error.message}). ` +
                    "Supported: anchors ^ $, literals, [...] classes, \\d \\w \\s, groups, | and the quantifiers * + ? {n} {n,} {n,m}.");
            }
            if (!fitsLength(translated.minLength, translated.maxLength))
                this.fail(`"pattern": ${JSON.stringify(schema.pattern)} together with "minLength"/"maxLength" is supported only when every match fits the lengths`);
            this.base("char");
            return this.rule(hint, `${quote} ${translated.gbnf} ${quote}`);
        }
        if (minLength === 0 && maxLength === undefined)
            return this.base("string");
        this.base("char");
        return this.rule(`string-${minLength}-${maxLength ?? "n"}`, `${quote} char${repeatSuffix(minLength, maxLength)} ${quote}`);
    }

    #count(schema: Schema, key: string): number | undefined {
        const value = schema[key];
        if (value == null)
            return undefined;
        if (typeof value !== "number" || !Number.isInteger(value) || value < 0)
            this.fail(`"${key}" must be a non-negative integer`);
        if (value > repetitionLimit) {
            if (key.startsWith("min"))
                this.fail(`"${key}" above ${repetitionLimit} is not supported`);
            return repetitionLimit;
        }
        return value;
    }

    #array(schema: Schema, hint: string): string {
        const minItems = this.#count(schema, "minItems") ?? 0;
        let maxItems = this.#count(schema, "maxItems");
        if (schema.uniqueItems === true && (maxItems === undefined || maxItems > 1))
            this.fail("\"uniqueItems\" is not supported (except with \"maxItems\" of at most 1)");
        const prefix = schema.prefixItems ?? [];
        if (!Array.isArray(prefix))
            this.fail("\"prefixItems\" must be an array");
        if (Array.isArray(schema.items))
            this.fail("\"items\" as an array (draft 4 tuples) is not supported; use \"prefixItems\"");
        const items = schema.items === undefined ? true : schema.items;
        if (items === false)
            maxItems = Math.min(maxItems ?? prefix.length, prefix.length);
        if (maxItems !== undefined && maxItems < minItems)
            this.fail("The array schema allows no length (\"minItems\", \"maxItems\" and \"items\" conflict)");
        const comma = `"," ${this.base("ws")}`;
        // Prefix items are positional: generate as many as fit, then the rest from `items`.
        const prefixCount = Math.min(prefix.length, maxItems ?? prefix.length);
        const parts = prefix.slice(0, prefixCount).map((item, index) => this.value(item, `${hint}-${index}`));
        let body: string;
        if (prefixCount < prefix.length || (items === false)) {
            if (prefixCount < minItems)
                this.fail("The array schema allows no length");
            body = parts.join(` ${comma} `);
        } else {
            const extraMin = Math.max(0, minItems - prefixCount);
            const extraMax = maxItems === undefined ? undefined : maxItems - prefixCount;
            if (extraMax === 0)
                body = parts.join(` ${comma} `);
            else {
                const item = this.value(items, `${hint}-item`);
                if (parts.length > 0)
                    body = `${parts.join(` ${comma} `)} (${comma} ${item})${repeatSuffix(extraMin, extraMax)}`;
                else {
                    const rest = `(${comma} ${item})${repeatSuffix(Math.max(0, extraMin - 1), extraMax === undefined ? undefined : extraMax - 1)}`;
                    body = extraMin > 0 ? `${item} ${rest}` : `(${item} ${rest})?`;
                }
            }
        }
        return this.rule(hint, `"[" ${this.base("ws")} ${body === "" ? "" : `${body} ${this.base("ws")} `}"]"`);
    }

    #object(schema: Schema, hint: string): string {
        const properties = schema.properties ?? {};
        if (!isSchema(properties))
            this.fail("\"properties\" must be an object");
        const required = schema.required ?? [];
        if (!Array.isArray(required) || required.some((name) => typeof name !== "string"))
            this.fail("\"required\" must be an array of strings");
        const additional = schema.additionalProperties;
        const ws = this.base("ws");
        const minProperties = this.#count(schema, "minProperties") ?? 0;
        const maxProperties = this.#count(schema, "maxProperties");
        if (schema.properties == null && required.length === 0 && additional !== false) {
            // Any keys: a map of values of `additionalProperties` (any JSON when it is absent or true).
            const entry = `${this.base("string")} ":" [ ]? ${this.value(additional ?? true, `${hint}-value`)}`;
            const rest = `("," ${ws} ${entry})${repeatSuffix(Math.max(0, minProperties - 1), maxProperties === undefined ? undefined : maxProperties - 1)}`;
            if (maxProperties === 0)
                return this.rule(hint, `"{" ${ws} "}"`);
            return this.rule(hint, `"{" ${ws} ${minProperties > 0 ? `${entry} ${rest}` : `(${entry} ${rest})?`} ${ws} "}"`);
        }
        // Declared properties only: leaving out keys that `additionalProperties` would allow still matches.
        const schemas = new Map<string, unknown>(Object.entries(properties));
        for (const name of required as string[])
            if (!schemas.has(name)) {
                if (additional === false)
                    this.fail(`The object schema requires "${name}", which "additionalProperties": false forbids`);
                schemas.set(name, additional ?? true);
            }
        const names = [...schemas.keys()];
        const mandatory = names.filter((name) => required.includes(name));
        let optional = names.filter((name) => !required.includes(name));
        // Required ones first, in declaration order; then the optional ones, each of which may be left out.
        while (mandatory.length < minProperties && optional.length > 0)
            mandatory.push(optional.shift()!);
        if (mandatory.length < minProperties)
            this.fail("\"minProperties\" asks for more properties than the schema declares");
        if (maxProperties !== undefined) {
            if (mandatory.length > maxProperties)
                this.fail("\"maxProperties\" is below the number of required properties");
            optional = optional.slice(0, maxProperties - mandatory.length);
        }
        const entry = (name: string) => `${literal(JSON.stringify(name))} ":" [ ]? ${this.value(schemas.get(name), `${hint}-${name}`)}`;
        const comma = `"," ${ws}`;
        let body: string;
        if (mandatory.length > 0)
            body = [mandatory.map(entry).join(` ${comma} `), ...optional.map((name) => `(${comma} ${entry(name)})?`)].join(" ");
        else if (optional.length > 0) {
            // Any ordered subset of the optional ones: the first present one, then each later one or not.
            const entries = optional.map(entry);
            const firsts = entries.map((first, index) => [first, ...entries.slice(index + 1).map((later) => `(${comma} ${later})?`)].join(" "));
            body = `(${firsts.join(" | ")})?`;
        } else
            body = "";
        return this.rule(hint, `"{" ${ws} ${body === "" ? "" : `${body} ${ws} `}"}"`);
    }

    /** The schema a `$ref` points at (a JSON pointer into the root schema). */
    resolve(ref: string): unknown {
        if (!ref.startsWith("#"))
            this.fail(`"$ref": "${ref}" is not supported: only references inside the schema ("#/$defs/...") are`);
        let target: unknown = this.root;
        for (const raw of ref.slice(1).split("/").slice(1)) {
            let key: string;
            try {
                key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
            } catch {
                this.fail(`"$ref": "${ref}" is not a valid JSON pointer`);
            }
            target = target != null && typeof target === "object" ? (target as Record<string, unknown>)[key] : undefined;
            if (target === undefined)
                this.fail(`"$ref": "${ref}" points at nothing in the schema`);
        }
        return target;
    }

    #ref(ref: string): string {
        const known = this.#refs.get(ref);
        if (known != null)
            return known;
        const target = this.resolve(ref);
        const name = this.#reserve(`ref-${ref.split("/").pop()}`);
        this.#refs.set(ref, name);
        // Rule names are taken before the body is built, so a schema may refer to itself.
        const body = this.value(target, `${name}-value`);
        this.#rules.set(name, body);
        return name;
    }

    /** One schema that holds what all of `parts` require (`allOf`). */
    merge(parts: readonly unknown[]): Schema {
        const flat: Schema[] = [];
        const add = (part: unknown, depth: number) => {
            if (depth > 32)
                this.fail("\"allOf\" and \"$ref\" nest too deeply");
            if (part === true)
                return;
            if (!isSchema(part))
                this.fail(part === false ? "An \"allOf\" part is `false`, which matches no value" : "Each \"allOf\" part must be a schema");
            let rest: Schema = part;
            if (typeof rest.$ref === "string") {
                const {$ref, ...others} = rest;
                add(this.resolve($ref as string), depth + 1);
                rest = others;
            }
            if (Array.isArray(rest.allOf)) {
                const {allOf, ...others} = rest;
                for (const inner of allOf as unknown[])
                    add(inner, depth + 1);
                rest = others;
            }
            flat.push(rest);
        };
        for (const part of parts)
            add(part, 0);
        const merged: Schema = {};
        const closed: Schema[] = [];
        for (const part of flat) {
            if (part.additionalProperties === false)
                closed.push(part);
            for (const [key, value] of Object.entries(part)) {
                if (annotations.has(key))
                    continue;
                const existing = merged[key];
                if (existing === undefined)
                    merged[key] = value;
                else if (key === "properties" && isSchema(existing) && isSchema(value)) {
                    const properties: Schema = {...existing};
                    for (const [name, propertySchema] of Object.entries(value))
                        properties[name] = properties[name] === undefined || sameJson(properties[name], propertySchema)
                            ? propertySchema : {allOf: [properties[name], propertySchema]};
                    merged[key] = properties;
                } else if (key === "required" && Array.isArray(existing) && Array.isArray(value))
                    merged[key] = [...new Set([...existing, ...value])];
                else if (sameJson(existing, value))
                    continue;
                else if (["minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties"].includes(key) && typeof existing === "number" && typeof value === "number")
                    merged[key] = Math.max(existing, value);
                else if (["maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties"].includes(key) && typeof existing === "number" && typeof value === "number")
                    merged[key] = Math.min(existing, value);
                else if (key === "type") {
                    const list = (types: unknown) => Array.isArray(types) ? types.map(String) : [String(types)];
                    const other = list(value);
                    merged[key] = list(existing).flatMap((type) => other.includes(type) ? [type]
                        : type === "number" && other.includes("integer") ? ["integer"] : type === "integer" && other.includes("number") ? ["integer"] : []);
                } else if (key === "enum" && Array.isArray(existing) && Array.isArray(value))
                    merged[key] = existing.filter((item) => value.some((other) => sameJson(item, other)));
                else if (key === "additionalProperties" && (existing === false || value === false))
                    merged[key] = false;
                else
                    this.fail(`"allOf" parts disagree on "${key}", which cannot be merged`);
            }
        }
        // A part closed by "additionalProperties": false allows only its own properties.
        if (closed.length > 0 && isSchema(merged.properties)) {
            const allowed = closed.map((part) => new Set(Object.keys(isSchema(part.properties) ? part.properties : {})));
            const properties = Object.fromEntries(Object.entries(merged.properties).filter(([name]) => allowed.every((set) => set.has(name))));
            for (const name of (merged.required ?? []) as string[])
                if (properties[name] === undefined)
                    this.fail(`"allOf" requires "${name}", which one of its parts forbids ("additionalProperties": false)`);
            merged.properties = properties;
        }
        return merged;
    }
}

/**
 * Compiles a client's JSON schema into a GBNF grammar whose text is JSON that validates against it,
 * followed by the stop text {@link jsonGrammarStop}. A keyword the grammar cannot enforce is refused
 * with an InvalidRequestError for `param` that names it: the promise is that output always matches.
 */
export function compileJsonSchema(schema: unknown, param: string): string {
    if (!isSchema(schema))
        throw new InvalidRequestError("The JSON schema must be an object", param);
    const grammar = new SchemaCompiler(schema, param).compile();
    if (grammar.length > 1_000_000)
        throw new InvalidRequestError("The JSON schema makes a grammar too large to run (over 1 MB)", param);
    return grammar;
}
