/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * The console's load generator: a target, a rate and a duration, or a shape (`10/s for 10s, ramp 10..200/s
 * over 30s, spike 500/s for 5s`, the grammar of `aether load --shape`), with the example's order template by
 * default, started against every node's app port; and its live chart of the target rate, answers per second,
 * success and p99, with the faults injected from this console drawn on the same time axis.
 */

import { signal } from "@preact/signals";
import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { actions } from "./console.tsx";

interface LoadPoint {
  time: number;
  targetPerSecond: number;
  perSecond: number;
  successRate?: number;
  p50Ms: number;
  p99Ms: number;
}

interface LoadView {
  running: boolean;
  defaults?: { target: string; body?: string };
  target?: string;
  ratePerSecond?: number;
  shape?: string;
  targetPerSecond?: number;
  points: LoadPoint[];
}

export const load = signal<LoadView>({ running: false, points: [] });

export async function readLoad(): Promise<void> {
  const response = await fetch("/load", { cache: "no-store" }).catch(() => null);
  if (response?.ok) load.value = await response.json();
}

export function LoadPanel() {
  const [target, setTarget] = useState("POST /api/v1/orders");
  const [rate, setRate] = useState("50");
  const [seconds, setSeconds] = useState("60");
  const [body, setBody] = useState("");
  const [shape, setShape] = useState("");
  const defaults = load.value.defaults;
  // The example's template arrives with the first read of /load: the form starts from it.
  useEffect(() => {
    if (!defaults) return;
    setTarget(defaults.target);
    if (defaults.body !== undefined) setBody(defaults.body);
  }, [defaults?.target, defaults?.body]);
  const [problem, setProblem] = useState<string | null>(null);
  const send = async (path: string, payload: unknown) => {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
    }).catch((e) => new Response(JSON.stringify({ detail: e.message }), { status: 599 }));
    const answer = await response.json().catch(() => ({}));
    setProblem(response.ok ? null : answer.detail ?? `${response.status}`);
    if (response.ok) load.value = answer;
  };
  const start = (e: Event) => {
    e.preventDefault();
    // A shape, when given, sets the rate and the duration itself.
    const payload: Record<string, unknown> = shape.trim() !== ""
      ? { target, shape }
      : { target, ratePerSecond: Number(rate), durationSeconds: Number(seconds) };
    if (!/^(GET|HEAD|DELETE)\s/i.test(target) && body.trim() !== "") payload.body = body;
    void send("/load", payload);
  };
  const view = load.value;
  return (
    <section class="card" aria-labelledby="forge-load">
      <h2 id="forge-load">Load</h2>
      <form class="inline" onSubmit={start}>
        <label for="load-target">Target</label>
        <input
          id="load-target"
          value={target}
          onInput={(e) => setTarget((e.target as HTMLInputElement).value)}
        />
        <label for="load-rate">Requests/s</label>
        <input
          id="load-rate"
          type="number"
          min="1"
          max="5000"
          value={rate}
          onInput={(e) => setRate((e.target as HTMLInputElement).value)}
        />
        <label for="load-seconds">Seconds</label>
        <input
          id="load-seconds"
          type="number"
          min="1"
          max="3600"
          value={seconds}
          onInput={(e) => setSeconds((e.target as HTMLInputElement).value)}
        />
        <label for="load-shape">Shape</label>
        <input
          id="load-shape"
          size={40}
          placeholder="optional: 10/s for 10s, ramp 10..200/s over 30s, spike 500/s for 5s"
          title={"Instead of Requests/s and Seconds: segments separated by , or ; — RATE for TIME, " +
            "ramp A..B/s over TIME, sine A..B/s period TIME for TIME, spike RATE for TIME, idle for TIME"}
          value={shape}
          onInput={(e) => setShape((e.target as HTMLInputElement).value)}
        />
        <label for="load-body">Body</label>
        <textarea
          id="load-body"
          rows={3}
          cols={40}
          value={body}
          onInput={(e) => setBody((e.target as HTMLTextAreaElement).value)}
        />
        <button type="submit">Start load</button>
        <button type="button" onClick={() => send("/load/stop", {})} disabled={!view.running}>Stop</button>
      </form>
      {problem && <p class="error" role="alert">{problem}</p>}
      <p data-testid="load-state">
        {view.running ? runningText(view) : "No load running"}
        {view.points.length > 0
          ? `; last second ${view.points[view.points.length - 1].perSecond.toFixed(0)} answers`
          : ""}
      </p>
      <LoadChart points={view.points} />
    </section>
  );
}

function runningText(view: LoadView): string {
  if (view.shape === undefined) return `Running: ${view.target} at ${view.ratePerSecond}/s`;
  const now = view.targetPerSecond === undefined ? "" : `, target ${view.targetPerSecond.toFixed(0)}/s now`;
  return `Running: ${view.target} shaped "${view.shape}"${now}`;
}

const COLORS = { target: "#7a7a7a", rate: "#2f6fde", success: "#2e9d57", p99: "#c98a12", fault: "#d0453a" };

function LoadChart({ points }: { points: LoadPoint[] }) {
  const frame = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!frame.current) return;
    const axis = getComputedStyle(frame.current).color;
    plot.current = new uPlot(
      {
        width: Math.max(300, Math.min(1000, frame.current.clientWidth || 700)),
        height: 240,
        scales: { pct: { range: [0, 100] } },
        series: [
          {},
          { label: "requested/s", stroke: COLORS.target, width: 1, dash: [4, 4] },
          { label: "answers/s", stroke: COLORS.rate, width: 1.5 },
          { label: "success %", stroke: COLORS.success, width: 1.5, scale: "pct" },
          { label: "p99 ms", stroke: COLORS.p99, width: 1.5 },
        ],
        axes: [{ stroke: axis }, { stroke: axis }, { stroke: axis, side: 1, scale: "pct" }],
        hooks: { draw: [(u) => drawFaults(u)] },
      },
      [[], [], [], [], []],
      frame.current,
    );
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => {
    plot.current?.setData([
      points.map((p) => p.time / 1000),
      points.map((p) => p.targetPerSecond ?? null),
      points.map((p) => p.perSecond),
      points.map((p) => (p.successRate === undefined ? null : p.successRate * 100)),
      points.map((p) => p.p99Ms),
    ]);
    // At least the last minute on the time axis, so a few points do not stretch it over years.
    if (points.length > 0) {
      const last = points[points.length - 1].time / 1000;
      plot.current?.setScale("x", { min: Math.min(points[0].time / 1000, last - 60), max: last });
    }
  }, [points, actions.value]);
  return (
    <figure class="chart">
      <figcaption>
        Requested rate (dashed), answers per second, success and p99; red lines are the faults injected from
        this console
      </figcaption>
      <div
        ref={frame}
        data-testid="load-chart"
        role="img"
        aria-label="Load: requested rate, answers per second, success, p99"
      />
    </figure>
  );
}

/** A red vertical line at each fault injected from this console, on the chart's time axis. */
function drawFaults(u: uPlot): void {
  const { ctx, bbox } = u;
  ctx.save();
  ctx.strokeStyle = COLORS.fault;
  ctx.lineWidth = 1;
  for (const action of actions.value) {
    const x = u.valToPos(action.time / 1000, "x", true);
    if (x < bbox.left || x > bbox.left + bbox.width) continue;
    ctx.beginPath();
    ctx.moveTo(x, bbox.top);
    ctx.lineTo(x, bbox.top + bbox.height);
    ctx.stroke();
  }
  ctx.restore();
}
