/** An honest empty state until in-app benchmarks exist: what works today is the command line. */
export function BenchmarksView() {
    return (
        <section className="page">
            <h1>Benchmarks</h1>
            <div className="empty">
                <p><strong>No benchmarks in the app yet.</strong></p>
                <p>Comparing the speed, memory and quality of a model's quantizations here is not built yet.
                    Today, from a checkout of Hearth, these measure this machine and print a table:</p>
                <pre><code>{"npm run bench:server   # requests/s and tokens/s of the API\nnpm run bench:memory   # memory estimate vs. what loading uses\nnpm run bench:pull     # download speed and resume"}</code></pre>
            </div>
        </section>
    );
}
