export type ChartPoint = {label: string, x: number, y: number};

const width = 420;
const height = 260;
const margin = {left: 56, right: 16, top: 16, bottom: 40};

/** Rounded ends for an axis from 0 (or below the lowest value) to a little above the highest. */
function axisRange(values: readonly number[]): [number, number] {
    const max = Math.max(...values);
    const min = Math.min(0, ...values);
    return max === min ? [min, min + 1] : [min, max + (max - min) * 0.1];
}

const tickText = (value: number) => Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 1 ? value.toFixed(1) : value.toPrecision(2);

/** One point per model, labelled with its quantization: enough to see the trade-off at a glance. */
export function ScatterChart({title, xLabel, yLabel, points}: {title: string, xLabel: string, yLabel: string, points: readonly ChartPoint[]}) {
    const [xMin, xMax] = axisRange(points.map((point) => point.x));
    const [yMin, yMax] = axisRange(points.map((point) => point.y));
    const plotWidth = width - margin.left - margin.right;
    const plotHeight = height - margin.top - margin.bottom;
    const x = (value: number) => margin.left + (value - xMin) / (xMax - xMin) * plotWidth;
    const y = (value: number) => margin.top + plotHeight - (value - yMin) / (yMax - yMin) * plotHeight;
    const ticks = (min: number, max: number) => [0, 0.25, 0.5, 0.75, 1].map((share) => min + share * (max - min));
    return (
        <figure className="chart">
            <figcaption>{title}</figcaption>
            <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={title}>
                {ticks(yMin, yMax).map((tick) => (
                    <g key={`y${tick}`}>
                        <line x1={margin.left} x2={width - margin.right} y1={y(tick)} y2={y(tick)} className="grid" />
                        <text x={margin.left - 6} y={y(tick) + 4} textAnchor="end">{tickText(tick)}</text>
                    </g>
                ))}
                {ticks(xMin, xMax).map((tick) => (
                    <text key={`x${tick}`} x={x(tick)} y={height - margin.bottom + 16} textAnchor="middle">{tickText(tick)}</text>
                ))}
                <text x={margin.left + plotWidth / 2} y={height - 6} textAnchor="middle" className="axis-label">{xLabel}</text>
                <text x={14} y={margin.top + plotHeight / 2} textAnchor="middle" className="axis-label" transform={`rotate(-90 14 ${margin.top + plotHeight / 2})`}>{yLabel}</text>
                {points.map((point) => (
                    <g key={point.label} className="point">
                        <circle cx={x(point.x)} cy={y(point.y)} r={5} />
                        <text x={x(point.x) + 8} y={y(point.y) - 8}>{point.label}</text>
                    </g>
                ))}
            </svg>
        </figure>
    );
}
