const UNIT_BYTES: Record<string, number> = {"": 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3};

/**
 * A size as a person writes it, in bytes: `128mb`, `1.5g`, `512KiB`, `1048576`. Units are binary, as nginx's
 * `client_max_body_size` and Express's body limits read them (`1mb` is 1,048,576 bytes). Undefined when it cannot be read.
 */
export function parseByteSize(text: string): number | undefined {
    const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
    const unitBytes = match != null ? UNIT_BYTES[match[2]!.toLowerCase()] : undefined;
    if (match == null || unitBytes == null)
        return undefined;
    return Math.round(Number(match[1]) * unitBytes);
}

/** `128 MiB`, `1.5 GiB`, `900 bytes`: binary units, as {@link parseByteSize} reads them. */
export function formatByteSize(bytes: number): string {
    const units = ["KiB", "MiB", "GiB", "TiB"];
    if (bytes < 1024)
        return `${bytes} bytes`;
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit++;
    }
    return `${Number.isInteger(value) ? value : value.toFixed(1)} ${units[unit]}`;
}
