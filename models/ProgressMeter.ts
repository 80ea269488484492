/** Download speed over the last few seconds. */
export class ProgressMeter {
    readonly #samples: {timeMs: number, bytes: number}[] = [];

    add(timeMs: number, bytes: number): number {
        this.#samples.push({timeMs, bytes});
        while (this.#samples.length > 2 && timeMs - this.#samples[0]!.timeMs > 3000)
            this.#samples.shift();
        const first = this.#samples[0]!;
        const seconds = (timeMs - first.timeMs) / 1000;
        return seconds > 0.05 ? (bytes - first.bytes) / seconds : 0;
    }
}
