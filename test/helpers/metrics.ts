/** The value of one sample in Prometheus' text format, or undefined when it is not there. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
    for (const line of text.split("\n")) {
        if (line.startsWith("#") || !line.startsWith(name))
            continue;
        const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
        if (match == null || match[1] !== name)
            continue;
        const present = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((pair) => [pair[1], pair[2]]));
        if (Object.entries(labels).every(([key, value]) => present[key] === value))
            return Number(match[3]);
    }
    return undefined;
}
