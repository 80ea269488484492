import {literal} from "./gbnf.js";

/** The largest integer magnitude generated (15 digits, inside the doubles' exact integers). */
export const integerLimit = 999_999_999_999_999;
/**
 * The largest integer part of a number generated with a fraction: 9 digits and at most 6 decimals
 * stay below 16 significant digits, so the double read back never rounds onto a bound.
 */
const fractionIntegerLimit = 999_999_999;
/** A fraction that is never zero: the value lies strictly between two integers. */
const fraction = "\".\" [0-9]{0,5} [1-9]";

/** Digit strings of one length from `a` to `b` (same length, a <= b), as GBNF. */
function sameLength(a: string, b: string): string {
    if (a === b)
        return literal(a);
    if (a.length === 1)
        return `[${a}-${b}]`;
    if (a[0] === b[0])
        return `${literal(a[0]!)} (${sameLength(a.slice(1), b.slice(1))})`;
    const rest = a.length - 1;
    const restZeros = /^0*$/.test(a.slice(1));
    const restNines = /^9*$/.test(b.slice(1));
    const midFrom = restZeros ? Number(a[0]) : Number(a[0]) + 1;
    const midTo = restNines ? Number(b[0]) : Number(b[0]) - 1;
    const parts: string[] = [];
    if (!restZeros)
        parts.push(`${literal(a[0]!)} (${sameLength(a.slice(1), "9".repeat(rest))})`);
    if (midFrom <= midTo)
        parts.push(`[${midFrom}-${midTo}] [0-9]${rest === 1 ? "" : `{${rest}}`}`);
    if (!restNines)
        parts.push(`${literal(b[0]!)} (${sameLength("0".repeat(rest), b.slice(1))})`);
    return parts.join(" | ");
}

/** Decimal digits, without leading zeros, of exactly the integers from `from` to `to` (0 <= from <= to). */
function naturalRange(from: number, to: number): string {
    const parts: string[] = [];
    for (let digits = String(from).length; digits <= String(to).length; digits++) {
        const low = Math.max(from, digits === 1 ? 0 : 10 ** (digits - 1));
        const high = Math.min(to, 10 ** digits - 1);
        if (low <= high)
            parts.push(sameLength(String(low), String(high)));
    }
    // Parenthesized, so a sign before it or a fraction after it applies to every alternative.
    return `(${parts.join(" | ")})`;
}

/** JSON integers from `from` to `to`, exactly; undefined when there are none. */
export function integerRange(from: number, to: number): string | undefined {
    from = Math.max(from, -integerLimit);
    to = Math.min(to, integerLimit);
    if (from > to)
        return undefined;
    const parts: string[] = [];
    if (from < 0)
        parts.push(`"-" ${naturalRange(Math.max(1, -Math.min(to, -1)), -from)}`);
    if (to >= 0)
        parts.push(naturalRange(Math.max(from, 0), to));
    return parts.length === 1 ? parts[0]! : `(${parts.join(" | ")})`;
}

/** A bound of a number: its value and whether the value itself is excluded. */
export interface Bound {
    value: number,
    exclusive: boolean
}

/** The least and greatest integers inside the bounds. */
export function integerBounds(low: Bound | undefined, high: Bound | undefined): [number, number] {
    const from = low == null ? -integerLimit : low.exclusive ? Math.floor(low.value) + 1 : Math.ceil(low.value);
    const to = high == null ? integerLimit : high.exclusive ? Math.ceil(high.value) - 1 : Math.floor(high.value);
    return [from, to];
}

/**
 * JSON numbers inside the bounds, as GBNF; undefined when the grammar holds none. Integers in range
 * are all there; a value with a fraction (up to 6 decimals, never ending in 0) is generated only when
 * both integers around it are in range (`I.F` lies strictly between I and I+1), so every value is
 * provably inside and a few near a non-integer bound are left out. No exponents.
 */
export function numberRange(low: Bound | undefined, high: Bound | undefined): string | undefined {
    const parts: string[] = [];
    const [from, to] = integerBounds(low, high);
    const integers = integerRange(from, to);
    if (integers != null)
        parts.push(integers);
    // Positive I.F lies in (I, I+1): needs I >= low and I + 1 <= high.
    const positiveFrom = Math.max(0, low == null ? 0 : Math.ceil(low.value));
    const positiveTo = Math.min(fractionIntegerLimit, high == null ? fractionIntegerLimit : Math.floor(high.value) - 1);
    if (positiveFrom <= positiveTo)
        parts.push(`${naturalRange(positiveFrom, positiveTo)} ${fraction}`);
    // -I.F lies in (-(I+1), -I): needs -(I+1) >= low and -I <= high.
    const negativeFrom = Math.max(0, high == null ? 0 : Math.ceil(-high.value));
    const negativeTo = Math.min(fractionIntegerLimit, low == null ? fractionIntegerLimit : Math.floor(-low.value) - 1);
    if (negativeFrom <= negativeTo)
        parts.push(`"-" ${naturalRange(negativeFrom, negativeTo)} ${fraction}`);
    if (parts.length === 0)
        return undefined;
    return parts.length === 1 ? parts[0]! : `(${parts.join(" | ")})`;
}
