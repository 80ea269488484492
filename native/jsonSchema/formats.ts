/**
 * GBNF for the inside of a JSON string in each supported `format`. Each is a subset of what the
 * format allows (as ajv-formats checks it in full mode), chosen so a small model writes usual values:
 * no leap days, no leap seconds, IPv6 in its full eight-group form, bounded label lengths.
 */
const hex = "[0-9a-fA-F]";
const octet = "(\"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9]? [0-9])";
const date = "[0-9]{4} \"-\" (\"02-\" (\"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8]) | (\"0\" [13-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | [12] [0-9] | \"30\") | (\"0\" [13578] | \"1\" [02]) \"-31\")";
const time = "([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] (\".\" [0-9]{1,3})? (\"Z\" | [+-] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9])";
const count = "[0-9]{1,4}";
const dateParts = `(${count} "Y" (${count} "M")? (${count} "D")? | ${count} "M" (${count} "D")? | ${count} "D")`;
const timeParts = `"T" (${count} "H" (${count} "M")? (${count} "S")? | ${count} "M" (${count} "S")? | ${count} "S")`;
const label = "[a-zA-Z0-9] ([a-zA-Z0-9-]{0,20} [a-zA-Z0-9])?";
const atom = "[a-zA-Z0-9_+-]{1,20}";

export const formats: Readonly<Record<string, string>> = {
    "date-time": `${date} "T" ${time}`,
    date,
    time,
    duration: `"P" (${dateParts} (${timeParts})? | ${timeParts} | ${count} "W")`,
    email: `${atom} ("." ${atom}){0,3} "@" (${label} "."){1,3} ${label}`,
    hostname: `${label} ("." ${label}){0,4}`,
    ipv4: `${octet} "." ${octet} "." ${octet} "." ${octet}`,
    ipv6: `${hex}{1,4} (":" ${hex}{1,4}){7}`,
    uuid: `${hex}{8} "-" ${hex}{4} "-" ${hex}{4} "-" ${hex}{4} "-" ${hex}{12}`,
    // Not in OpenAI's list, but Pydantic writes it for URL fields: an http(s) URL with a short path.
    uri: `"http" "s"? "://" ${label} ("." ${label}){0,4} ("/" [a-zA-Z0-9._~-]{0,20}){0,4}`
};

/** The most characters a value of each format has, for checking it against `maxLength`. */
export const formatLengths: Readonly<Record<string, [number, number]>> = {
    "date-time": [20, 35], date: [10, 10], time: [9, 18], duration: [3, 32], email: [5, 20 * 4 + 3 + 1 + 23 * 4 + 3],
    hostname: [1, 22 * 5 + 4], ipv4: [7, 15], ipv6: [15, 39], uuid: [36, 36], uri: [8, 8 + 22 * 5 + 4 + 21 * 4]
};
