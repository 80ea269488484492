import {charClass, literal, repeatSuffix} from "./gbnf.js";
import type {CodeRanges} from "./gbnf.js";

type RegexNode =
    | {kind: "chars", ranges: CodeRanges, negated: boolean}
    | {kind: "seq", items: RegexNode[]}
    | {kind: "alt", options: RegexNode[]}
    | {kind: "repeat", node: RegexNode, min: number, max: number | undefined};

/** Thrown for a pattern outside the subset; the compiler turns it into a 400 naming the pattern. */
export class UnsupportedPatternError extends Error {}

const digit: CodeRanges = [[0x30, 0x39]];
const word: CodeRanges = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
/** JavaScript's `\s` exactly, so that `\S` and `[^\s]` leave out all of it. */
const space: CodeRanges = [[0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x1680, 0x1680], [0x2000, 0x200a], [0x2028, 0x2029],
    [0x202f, 0x202f], [0x205f, 0x205f], [0x3000, 0x3000], [0xfeff, 0xfeff]];
const lineBreaks: CodeRanges = [[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]];
const controlEscapes: Record<number, string> = {0x08: "\\b", 0x09: "\\t", 0x0a: "\\n", 0x0c: "\\f", 0x0d: "\\r"};
const singleEscapes: Record<string, number> = {n: 0x0a, r: 0x0d, t: 0x09, f: 0x0c, v: 0x0b, 0: 0};

/**
 * Parses the regular expression subset OpenAI's structured outputs document (anchors `^` and `$`,
 * literals, character classes, `\d` `\w` `\s` and their negations, `.`, groups, alternation and the
 * quantifiers `*` `+` `?` `{n}` `{n,}` `{n,m}`) into a tree. Anything else throws.
 */
class RegexParser {
    #at = 0;

    constructor(readonly source: string) {}

    parse(): RegexNode {
        // A JSON Schema pattern matches anywhere in the string unless anchored, per top-level alternative.
        const options: RegexNode[] = [];
        for (;;) {
            const anchoredStart = this.#eat("^");
            const items = this.#sequence(true);
            let anchoredEnd = false;
            if (this.#eat("$")) {
                anchoredEnd = true;
                if (this.#at < this.source.length && this.source[this.#at] !== "|")
                    throw new UnsupportedPatternError("`$` is supported only at the end");
            }
            const anything: RegexNode = {kind: "repeat", node: {kind: "chars", ranges: [], negated: true}, min: 0, max: undefined};
            options.push({kind: "seq", items: [...anchoredStart ? [] : [anything], ...items, ...anchoredEnd ? [] : [anything]]});
            if (this.#at >= this.source.length)
                break;
            if (!this.#eat("|"))
                throw new UnsupportedPatternError(`unexpected "${this.source[this.#at]}"`);
        }
        return options.length === 1 ? options[0]! : {kind: "alt", options};
    }

    #eat(char: string): boolean {
        if (this.source[this.#at] !== char)
            return false;
        this.#at++;
        return true;
    }

    #alternation(): RegexNode {
        const options = [{kind: "seq", items: this.#sequence(false)} as RegexNode];
        while (this.#eat("|"))
            options.push({kind: "seq", items: this.#sequence(false)});
        return options.length === 1 ? options[0]! : {kind: "alt", options};
    }

    #sequence(topLevel: boolean): RegexNode[] {
        const items: RegexNode[] = [];
        while (this.#at < this.source.length) {
            const char = this.source[this.#at]!;
            if (char === "|" || char === ")" || (topLevel && char === "$"))
                break;
            let atom: RegexNode;
            if (char === "(") {
                this.#at++;
                if (this.#eat("?")) {
                    if (this.#eat(":")) {
                        // a non-capturing group
                    } else if (this.source[this.#at] === "<" && /^<[A-Za-z_][A-Za-z0-9_]*>/.test(this.source.slice(this.#at)))
                        this.#at = this.source.indexOf(">", this.#at) + 1;
                    else
                        throw new UnsupportedPatternError("lookaround assertions are not supported");
                }
                atom = this.#alternation();
                if (!this.#eat(")"))
                    throw new UnsupportedPatternError("unbalanced parenthesis");
            } else if (char === "[") {
                this.#at++;
                atom = this.#charClass();
            } else if (char === ".") {
                this.#at++;
                atom = {kind: "chars", ranges: lineBreaks, negated: true};
            } else if (char === "\\") {
                this.#at++;
                atom = this.#escape(false);
            } else if ("^$*+?{}]".includes(char))
                throw new UnsupportedPatternError(`"${char}" is not supported here`);
            else {
                const code = this.source.codePointAt(this.#at)!;
                this.#at += code > 0xffff ? 2 : 1;
                atom = {kind: "chars", ranges: [[code, code]], negated: false};
            }
            items.push(this.#quantified(atom));
        }
        return items;
    }

    #quantified(atom: RegexNode): RegexNode {
        let node = atom;
        for (;;) {
            const char = this.source[this.#at];
            let min: number, max: number | undefined;
            if (char === "*" || char === "+" || char === "?") {
                this.#at++;
                [min, max] = char === "*" ? [0, undefined] : char === "+" ? [1, undefined] : [0, 1];
            } else if (char === "{") {
                const match = /^\{(\d+)(,(\d*))?\}/.exec(this.source.slice(this.#at));
                if (match == null)
                    throw new UnsupportedPatternError("malformed {n,m} quantifier");
                this.#at += match[0].length;
                min = Number(match[1]);
                max = match[2] == null ? min : match[3] === "" ? undefined : Number(match[3]);
                if (max !== undefined && max < min)
                    throw new UnsupportedPatternError("{n,m} with m < n");
                if (min > 1000 || (max ?? 0) > 1000)
                    throw new UnsupportedPatternError("repetition counts above 1000");
            } else
                return node;
            this.#eat("?"); // a lazy quantifier matches the same strings
            node = {kind: "repeat", node, min, max};
        }
    }

    #escape(inClass: boolean): RegexNode & {kind: "chars", set?: true} {
        const char = this.source[this.#at++];
        if (char == null)
            throw new UnsupportedPatternError("a trailing backslash");
        const classes: Record<string, CodeRanges> = {d: digit, w: word, s: space};
        if (classes[char.toLowerCase()] != null && "dwsDWS".includes(char))
            return {kind: "chars", ranges: classes[char.toLowerCase()]!, negated: char !== char.toLowerCase(), set: true};
        let code: number | undefined = singleEscapes[char];
        if (char === "0" && /\d/.test(this.source[this.#at] ?? ""))
            throw new UnsupportedPatternError("octal escapes are not supported");
        if (char === "x" || char === "u") {
            const match = (char === "x" ? /^[0-9a-fA-F]{2}/ : /^([0-9a-fA-F]{4}|\{[0-9a-fA-F]{1,6}\})/).exec(this.source.slice(this.#at));
            if (match == null)
                throw new UnsupportedPatternError(`malformed \\${char} escape`);
            this.#at += match[0].length;
            code = parseInt(match[0].replace(/[{}]/g, ""), 16);
        } else if (char === "b" && inClass)
            code = 0x08;
        else if (code == null) {
            if (/[A-Za-z0-9]/.test(char))
                throw new UnsupportedPatternError(`\\${char} is not supported`);
            code = char.codePointAt(0)!;
        }
        return {kind: "chars", ranges: [[code, code]], negated: false};
    }

    #charClass(): RegexNode {
        const negated = this.#eat("^");
        const ranges: [number, number][] = [];
        const complements: CodeRanges[] = [];
        for (;;) {
            if (this.#at >= this.source.length)
                throw new UnsupportedPatternError("unterminated character class");
            // As in JavaScript, "]" always closes: "[]" matches nothing and "[^]" any character.
            if (this.source[this.#at] === "]")
                break;
            const start = this.#classAtom();
            if (start.negated) {
                complements.push(start.ranges);
                continue;
            }
            if (this.source[this.#at] === "-" && this.source[this.#at + 1] !== "]" && this.#at + 1 < this.source.length) {
                this.#at++;
                const end = this.#classAtom();
                if (start.set === true || end.set === true)
                    throw new UnsupportedPatternError("a range to a class escape");
                const [from, to] = [start.ranges[0]![0], end.ranges[0]![0]];
                if (to < from)
                    throw new UnsupportedPatternError("a range out of order");
                ranges.push([from, to]);
            } else
                ranges.push(...start.ranges.map(([from, to]) => [from, to] as [number, number]));
        }
        this.#at++;
        // [\D] and the like: the complement of a set, united with the rest of the class.
        let set: CodeRanges = ranges;
        for (const complement of complements)
            set = union(set, complementOf(complement));
        return {kind: "chars", ranges: normalize(set), negated};
    }

    #classAtom(): {ranges: CodeRanges, negated: boolean, set?: true} {
        if (this.#eat("\\"))
            return this.#escape(true);
        if (this.source[this.#at] === "[")
            throw new UnsupportedPatternError("nested classes are not supported");
        const code = this.source.codePointAt(this.#at)!;
        this.#at += code > 0xffff ? 2 : 1;
        return {ranges: [[code, code]], negated: false};
    }
}

function normalize(ranges: CodeRanges): [number, number][] {
    const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
    const out: [number, number][] = [];
    for (const [from, to] of sorted) {
        const last = out[out.length - 1];
        if (last != null && from <= last[1] + 1)
            last[1] = Math.max(last[1], to);
        else
            out.push([from, to]);
    }
    return out;
}

function union(a: CodeRanges, b: CodeRanges): CodeRanges {
    return normalize([...a, ...b]);
}

function complementOf(ranges: CodeRanges): CodeRanges {
    const out: [number, number][] = [];
    let next = 0;
    for (const [from, to] of normalize(ranges)) {
        if (from > next)
            out.push([next, from - 1]);
        next = to + 1;
    }
    if (next <= 0x10ffff)
        out.push([next, 0x10ffff]);
    return out;
}

function contains(ranges: CodeRanges, code: number): boolean {
    return ranges.some(([from, to]) => from <= code && code <= to);
}

/** Characters that a JSON string cannot hold raw: they are written as escapes (or not at all). */
const jsonSpecial: CodeRanges = [[0x00, 0x1f], [0x22, 0x22], [0x5c, 0x5c], [0x7f, 0x7f]];

/** A character set as the JSON text that writes one of its characters inside a string. */
function charsToJson(ranges: CodeRanges, negated: boolean): string {
    const inSet = (code: number) => contains(ranges, code) !== negated;
    const options: string[] = [];
    if (negated)
        options.push(charClass(normalize([...ranges, ...jsonSpecial]), true));
    else {
        const raw = normalize(ranges).flatMap(([from, to]) => subtract([from, to], jsonSpecial));
        if (raw.length > 0)
            options.push(charClass(raw));
    }
    if (inSet(0x22))
        options.push(literal("\\\""));
    if (inSet(0x5c))
        options.push(literal("\\\\"));
    for (const [code, escape] of Object.entries(controlEscapes))
        if (inSet(Number(code)))
            options.push(literal(escape));
    if (options.length === 0)
        throw new UnsupportedPatternError("a class that matches no character a JSON string can hold");
    return options.length === 1 ? options[0]! : `(${options.join(" | ")})`;
}

function subtract(range: readonly [number, number], remove: CodeRanges): [number, number][] {
    let pieces: [number, number][] = [[range[0], range[1]]];
    for (const [from, to] of remove)
        pieces = pieces.flatMap(([a, b]): [number, number][] => {
            if (to < a || from > b)
                return [[a, b]];
            return [...a < from ? [[a, from - 1] as [number, number]] : [], ...b > to ? [[to + 1, b] as [number, number]] : []];
        });
    return pieces;
}

function toGbnf(node: RegexNode): string {
    switch (node.kind) {
        case "chars":
            return charsToJson(node.ranges, node.negated);
        case "seq":
            return node.items.length === 0 ? "\"\"" : node.items.length === 1 ? toGbnf(node.items[0]!) : `(${node.items.map(toGbnf).join(" ")})`;
        case "alt":
            return `(${node.options.map(toGbnf).join(" | ")})`;
        case "repeat":
            return `(${toGbnf(node.node)})${repeatSuffix(node.min, node.max)}`;
    }
}

/** The least and most characters (code points) a node matches; `undefined` for no limit. */
function lengthBounds(node: RegexNode): [number, number | undefined] {
    switch (node.kind) {
        case "chars":
            return [1, 1];
        case "seq":
            return node.items.map(lengthBounds).reduce<[number, number | undefined]>(
                ([min, max], [itemMin, itemMax]) => [min + itemMin, max === undefined || itemMax === undefined ? undefined : max + itemMax], [0, 0]);
        case "alt": {
            const bounds = node.options.map(lengthBounds);
            return [Math.min(...bounds.map(([min]) => min)), bounds.some(([, max]) => max === undefined) ? undefined : Math.max(...bounds.map(([, max]) => max!))];
        }
        case "repeat": {
            const [min, max] = lengthBounds(node.node);
            return [min * node.min, node.max === undefined || max === undefined ? (max === 0 ? 0 : undefined) : max * node.max];
        }
    }
}

/**
 * Translates a JSON Schema `pattern` into a GBNF expression for the inside of a JSON string (between
 * its quotes), with the least and most characters it matches. Throws UnsupportedPatternError for
 * syntax outside the subset.
 */
export function regexToGbnf(pattern: string): {gbnf: string, minLength: number, maxLength: number | undefined} {
    const node = new RegexParser(pattern).parse();
    const [minLength, maxLength] = lengthBounds(node);
    return {gbnf: toGbnf(node), minLength, maxLength};
}
