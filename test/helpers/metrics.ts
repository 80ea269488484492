/** The samples of one metric in Prometheus' text format whose labels include `labels`. */
function* samples(text: string, name: string, labels: Record<string, string>): Generator<number> {
    for (const line of text.split("\n")) {
        if (line.startsWith("#") || !line.startsWith(name))
            continue;
        const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        if (match == null || match[1] !== name)
            continue;
        const present = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [pair[1], pair[2]]));
        if (Object.entries(labels).every(([key, value]) => present[key] === value))
            yield Number(match[3]);
    }
}

/** The value of one sample in Prometheus' text format (the first that matches), or undefined when it is not there. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
    for (const value of samples(text, name, labels))
        return value;
    return undefined;
}

/** The sum of every sample of a metric whose labels include `labels` (0 when there is none). */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
    let sum = 0;
    for (const value of samples(text, name, labels))
        sum += value;
    return sum;
}
