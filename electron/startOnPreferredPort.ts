/**
 * Starts the server on the port tools were told about (4327 unless configured), so a `base_url` copied
 * yesterday still works; when another program holds it, any free port is better than no app.
 */
export async function startOnPreferredPort<T>(start: (port: number) => Promise<T>, preferredPort: number): Promise<{server: T, usedFallback: boolean}> {
    try {
        return {server: await start(preferredPort), usedFallback: false};
    } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE" || preferredPort === 0)
            throw error;
        return {server: await start(0), usedFallback: true};
    }
}
