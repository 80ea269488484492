/** Polls until `check` passes (it throws until then), or fails with its last error after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        try {
            return await check();
        } catch (error) {
            if (Date.now() > deadline)
                throw error;
            await new Promise((resolve) => setTimeout(resolve, 50));
        }
    }
}
