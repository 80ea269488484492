/**
 * For a view that changes something on the server and shows it: runs an action, then refreshes what the view shows;
 * an error of either becomes the view's error message, and the next action clears it.
 */
export function actionRunner(refresh: () => Promise<unknown>, setError: (message: string | undefined) => void) {
    return async (action: () => Promise<unknown>): Promise<void> => {
        try {
            setError(undefined);
            await action();
            await refresh();
        } catch (caught) {
            setError((caught as Error).message);
        }
    };
}
