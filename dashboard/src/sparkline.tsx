/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * A one-minute sparkline drawn by uPlot. It is created after mount (uPlot needs the DOM) and fed new data on
 * every update; the server-rendered shell has only its empty frame.
 */

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface SparklineProps {
  label: string;
  times: number[];
  values: number[];
  /** Width and height in CSS pixels. */
  width?: number;
  height?: number;
}

export function Sparkline({ label, times, values, width = 160, height = 36 }: SparklineProps) {
  const frame = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!frame.current) return;
    // A canvas knows no currentColor: the stroke is the element's computed colour (light or dark theme).
    const stroke = getComputedStyle(frame.current).color;
    plot.current = new uPlot(
      {
        width,
        height,
        cursor: { show: false },
        legend: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        axes: [{ show: false }, { show: false }],
        scales: {
          x: { time: false },
          y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max * 1.1)] },
        },
        series: [{}, { stroke, width: 1.5, points: { show: false } }],
      },
      [[], []],
      frame.current,
    );
    return () => plot.current?.destroy();
  }, [width, height]);
  useEffect(() => {
    plot.current?.setData([times.map((t) => t / 1000), values]);
  }, [times, values]);
  return <div class="spark" ref={frame} role="img" aria-label={`${label}, the last minute`} />;
}
