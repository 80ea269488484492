/** GBNF text helpers shared by the JSON Schema compiler's parts. */

/** A GBNF string literal for `text`. */
export function literal(text: string): string {
    let out = "\"";
    for (const char of text) {
        const code = char.codePointAt(0)!;
        if (char === "\"" || char === "\\")
            out += "\\" + char;
        else if (char === "\n")
            out += "\\n";
        else if (char === "\r")
            out += "\\r";
        else if (char === "\t")
            out += "\\t";
        else if (code < 0x20 || code === 0x7f)
            out += "\\x" + code.toString(16).padStart(2, "0");
        else
            out += char;
    }
    return out + "\"";
}

/** One code point written inside a GBNF character class. */
export function classChar(code: number): string {
    if (code < 0x20 || code === 0x7f)
        return "\\x" + code.toString(16).padStart(2, "0");
    const char = String.fromCodePoint(code);
    return "\\]-^[".includes(char) ? "\\" + char : char;
}

/** Inclusive code point ranges. */
export type CodeRanges = readonly (readonly [number, number])[];

/** A GBNF character class matching `ranges` (or every code point outside them when `negated`). */
export function charClass(ranges: CodeRanges, negated = false): string {
    const body = ranges.map(([from, to]) => from === to ? classChar(from) : `${classChar(from)}-${classChar(to)}`).join("");
    return `[${negated ? "^" : ""}${body}]`;
}

/** A repetition suffix: `{n}`, `{n,}`, `{n,m}`, `*`, `+` or `?`. */
export function repeatSuffix(min: number, max: number | undefined): string {
    if (max === undefined)
        return min === 0 ? "*" : min === 1 ? "+" : `{${min},}`;
    if (min === 0 && max === 1)
        return "?";
    return min === max ? `{${min}}` : `{${min},${max}}`;
}
