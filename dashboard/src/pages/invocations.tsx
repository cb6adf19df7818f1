/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Invocations: per slice version and method, rate, errors and p50/p95/p99 over a chosen window, with each
 * node's share; a method's drill-down charts its history over 5 m, 15 m, 1 h or 2 h (calls and errors per
 * second, p50/p95/p99). A trace is looked up by request id and shown as its span tree across nodes.
 */

import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import { get } from "../api.ts";
import { serves, traffic } from "../state.ts";
import { useLoad } from "../ui.tsx";

interface Invocation {
  artifact: string;
  version: string;
  method: string;
  rate: number;
  errorRate: number;
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  calls: number;
  errors: number;
  inFlight: number;
  nodes: Record<string, { rate: number; errorRate: number; p99Ms?: number; calls: number }>;
}

interface History {
  fromMs: number;
  toMs: number;
  stepSeconds: number;
  series: { name: string; points: [number, number | null][] }[];
}

const WINDOWS = [
  { seconds: 60, label: "1 m" },
  { seconds: 300, label: "5 m" },
  { seconds: 900, label: "15 m" },
  { seconds: 3600, label: "1 h" },
  { seconds: 7200, label: "2 h" },
];
const RANGES = WINDOWS.slice(1);
/** The table is read again at most this often while the live feed brings traffic. */
const RELOAD_MS = 5_000;

const ms = (v?: number) => (v === undefined ? "" : v < 10 ? v.toFixed(2) : v.toFixed(0));

/** The page, or a line saying this node lacks the feature (hooks stay unconditional in InvocationsPage). */
export function Invocations() {
  return serves("GET", "/invocations")
    ? <InvocationsPage />
    : <p class="muted">This node has no invocation metrics (an older version).</p>;
}

function InvocationsPage() {
  const [window, setWindow] = useState(60);
  const [selected, setSelected] = useState<Invocation | null>(null);
  // Read again as the live feed's traffic figures move, at most every RELOAD_MS.
  const tick = Math.floor((traffic.value[traffic.value.length - 1]?.time ?? 0) / RELOAD_MS);
  const list = useLoad(() => get<{ invocations: Invocation[] }>(`/invocations?window=${window}`), [
    window,
    tick,
  ]);
  const rows = [...(list.data?.invocations ?? [])].sort((a, b) => b.rate - a.rate);
  return (
    <>
      <section class="card" aria-labelledby="invocations-title">
        <h2 id="invocations-title">Methods</h2>
        <div class="inline">
          <label for="invocations-window">Window</label>
          <select
            id="invocations-window"
            value={String(window)}
            onChange={(e) => setWindow(Number((e.target as HTMLSelectElement).value))}
          >
            {WINDOWS.map((w) => <option key={w.seconds} value={String(w.seconds)}>{w.label}</option>)}
          </select>
        </div>
        {list.error && <p class="error" role="alert">{list.error}</p>}
        {rows.length === 0 && list.data && <p class="muted">No call in this window.</p>}
        {rows.length > 0 && (
          <table data-testid="invocations">
            <thead>
              <tr>
                <th scope="col">Slice</th>
                <th scope="col">Method</th>
                <th scope="col">Calls/s</th>
                <th scope="col">Errors</th>
                <th scope="col">p50 ms</th>
                <th scope="col">p95 ms</th>
                <th scope="col">p99 ms</th>
                <th scope="col">Per node (calls/s)</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={`${r.artifact}:${r.version}/${r.method}`}>
                  <td>{r.artifact}:{r.version}</td>
                  <td>
                    <button type="button" class="link" onClick={() => setSelected(r)}>{r.method}</button>
                  </td>
                  <td>{r.rate.toFixed(2)}</td>
                  <td class={r.errorRate > 0 ? "error" : ""}>{(r.errorRate * 100).toFixed(1)}%</td>
                  <td>{ms(r.p50Ms)}</td>
                  <td>{ms(r.p95Ms)}</td>
                  <td>{ms(r.p99Ms)}</td>
                  <td>
                    {Object.entries(r.nodes).map(([node, n]) => `${node} ${n.rate.toFixed(1)}`).join(", ")}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      {selected && <DrillDown invocation={selected} />}
      {serves("GET", "/traces/{requestId}") && <TraceLookup />}
    </>
  );
}

function DrillDown({ invocation }: { invocation: Invocation }) {
  const [range, setRange] = useState(900);
  const name = `${invocation.artifact}:${invocation.version}/${invocation.method}`;
  const kinds = ["calls", "errors", "p50", "p95", "p99"];
  const history = useLoad(
    () =>
      get<History>(
        `/metrics/history?series=${kinds.map((k) => encodeURIComponent(`${k}:${name}`)).join(",")}` +
          `&from=${Date.now() - range * 1000}`,
      ),
    [name, range],
  );
  return (
    <section class="card" aria-labelledby="drill-title">
      <h2 id="drill-title">{name}</h2>
      <div class="inline" role="group" aria-label="Range">
        {RANGES.map((r) => (
          <button
            key={r.seconds}
            type="button"
            aria-pressed={range === r.seconds}
            onClick={() => setRange(r.seconds)}
          >
            {r.label}
          </button>
        ))}
      </div>
      {history.error && <p class="error" role="alert">{history.error}</p>}
      {history.data && (
        <>
          <Chart title="Calls and errors per second" history={history.data} names={["calls", "errors"]} />
          <Chart title="Latency, ms" history={history.data} names={["p50", "p95", "p99"]} />
        </>
      )}
    </section>
  );
}

const COLORS = ["#2f6fde", "#d0453a", "#2e9d57", "#c98a12", "#8a4fd0"];

function Chart({ title, history, names }: { title: string; history: History; names: string[] }) {
  const frame = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!frame.current) return;
    const picked = names.map((n) => history.series.find((s) => s.name.startsWith(`${n}:`)));
    const times = (picked.find((s) => s)?.points ?? []).map(([t]) => t / 1000);
    const data = [times, ...picked.map((s) => (s?.points ?? []).map(([, v]) => v))] as uPlot.AlignedData;
    const width = Math.max(280, Math.min(900, frame.current.clientWidth || 600));
    const plot = new uPlot(
      {
        width,
        height: 200,
        series: [{}, ...names.map((label, i) => ({ label, stroke: COLORS[i], width: 1.5 }))],
        axes: [{ stroke: getComputedStyle(frame.current).color }, {
          stroke: getComputedStyle(frame.current).color,
        }],
      },
      data,
      frame.current,
    );
    return () => plot.destroy();
  }, [history, names.join(",")]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={frame} role="img" aria-label={title} />
    </figure>
  );
}

interface Span {
  name: string;
  node: string;
  offsetMs: number;
  durationMs: number;
  outcome: string;
  attempt?: number;
  children: Span[];
}

function TraceLookup() {
  const [id, setId] = useState("");
  const [shown, setShown] = useState<string | null>(null);
  const trace = useLoad(
    () =>
      shown ? get<Record<string, unknown>>(`/traces/${encodeURIComponent(shown)}`) : Promise.resolve(null),
    [shown],
  );
  const roots = (trace.data?.roots ?? []) as Span[];
  return (
    <section class="card" aria-labelledby="trace-title">
      <h2 id="trace-title">Trace of a request</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setShown(id.trim() || null);
        }}
      >
        <label for="trace-id">Request id</label>
        <input id="trace-id" value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} />
        <button type="submit">Show</button>
      </form>
      {trace.error && <p class="error" role="alert">{trace.error}</p>}
      {trace.data && (roots.length > 0
        ? <ul class="trace">{roots.map((s, i) => <SpanItem key={i} span={s} />)}</ul>
        : <pre class="value">{JSON.stringify(trace.data, null, 2).slice(0, 4000)}</pre>)}
    </section>
  );
}

function SpanItem({ span }: { span: Span }) {
  return (
    <li>
      <code>{span.name}</code> on {span.node}, +{ms(span.offsetMs)} ms for {ms(span.durationMs)} ms:{" "}
      <span class={span.outcome === "ok" ? "ok" : "error"}>{span.outcome}</span>
      {span.attempt !== undefined ? ` (attempt ${span.attempt})` : ""}
      {span.children.length > 0 && <ul>{span.children.map((c, i) => <SpanItem key={i} span={c} />)}</ul>}
    </li>
  );
}
