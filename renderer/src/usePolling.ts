import {useEffect, useRef} from "react";

/** Calls `tick` now and every `intervalMs` while mounted and `active`; a tick's errors are the tick's to handle. */
export function usePolling(tick: () => Promise<void> | void, intervalMs: number, active = true): void {
    const latest = useRef(tick);
    latest.current = tick;
    useEffect(() => {
        if (!active)
            return;
        let stopped = false;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const run = async () => {
            try {
                await latest.current();
            } catch {
                // The next tick tries again; views show their own errors.
            }
            if (!stopped)
                timer = setTimeout(run, intervalMs);
        };
        void run();
        return () => {
            stopped = true;
            clearTimeout(timer);
        };
    }, [intervalMs, active]);
}
