/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Overview: the health banner (quorum, leader), the members with the leader marked and whether this node
 * reaches each, key figures with one-minute sparklines, and the live event feed.
 */

import { alerts, feed, metrics, samples, slices, status, topMethods, traffic } from "../state.ts";
import { Sparkline } from "../sparkline.tsx";
import { clock } from "../ui.tsx";

export function Overview() {
  const s = status.value;
  if (!s) return <p>Loading the cluster's status…</p>;
  const leader = s.leader?.nodeId ?? null;
  const down = s.members.filter((m) => !m.connected);
  const firing = alerts.value.filter((a) => a.state === "firing");
  const healthy = s.ready && s.quorum && leader !== null && down.length === 0 && firing.length === 0;
  return (
    <>
      <section
        class={`banner ${healthy ? "good" : s.quorum ? "warn" : "bad"}`}
        data-testid="health"
        aria-live="polite"
      >
        <strong>{healthy ? "Healthy" : s.quorum ? "Degraded" : "No quorum"}</strong>
        <span>quorum {s.quorum ? "yes" : "no"}</span>
        <span>leader {leader ?? "none"}</span>
        <span>{s.members.length - down.length}/{s.members.length} members reachable</span>
        {down.length > 0 && <span>down: {down.map((m) => m.id).join(", ")}</span>}
        <span data-testid="alerts-firing">
          {firing.length === 0 ? "no alert firing" : `${firing.length} alert(s) firing: `}
          {firing.length > 0 && <a href="#/alerts">{firing.map((a) => a.id).join(", ")}</a>}
        </span>
      </section>
      <Figures />
      <div class="columns">
        <section aria-labelledby="members-title">
          <h2 id="members-title">Members</h2>
          <table data-testid="members">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">State</th>
                <th scope="col">Role</th>
                <th scope="col">Instances</th>
                {metrics.value && <th scope="col">CPU</th>}
                {metrics.value && <th scope="col">Memory</th>}
                {metrics.value && <th scope="col" class="wide">Round trip</th>}
              </tr>
            </thead>
            <tbody>
              {s.members.map((m) => (
                <tr key={m.id} data-node={m.id} data-connected={String(m.connected)}>
                  <th scope="row">{m.id}{m.id === s.nodeId ? " (this node)" : ""}</th>
                  <td>
                    <span class={`dot ${m.connected ? "up" : "down"}`} aria-hidden="true" />
                    {m.connected ? "up" : "down"}
                  </td>
                  <td>{m.id === leader ? <span class="tag leader">leader</span> : "member"}</td>
                  <td>{instancesOn(m.id)}</td>
                  {metrics.value && <NodeFigures node={m.id} self={s.nodeId} />}
                </tr>
              ))}
            </tbody>
          </table>
          <p class="muted">
            Revision {s.revision}, phase {s.phase}, this node up {Math.round(s.uptimeSeconds)} s.
          </p>
          {metrics.value && <TopMethods />}
        </section>
        <Feed />
      </div>
    </>
  );
}

/** CPU, memory and this node's round trip to it, from the metrics snapshot (blank for a stale node). */
function NodeFigures({ node, self }: { node: string; self: string }) {
  const snapshot = metrics.value!;
  const entry = snapshot.nodes.find((n) => n.node === node);
  const process = entry && !entry.stale ? entry.process : undefined;
  const link = snapshot.nodes.find((n) => n.node === self)?.mesh?.find((l) => l.peer === node);
  return (
    <>
      <td>{process?.cpuShare !== undefined ? `${(process.cpuShare * 100).toFixed(0)}%` : ""}</td>
      <td>{process?.rssBytes !== undefined ? `${Math.round(process.rssBytes / 1048576)} MiB` : ""}</td>
      <td class="wide">{link?.rttMs !== undefined ? `${link.rttMs.toFixed(1)} ms` : ""}</td>
    </>
  );
}

function instancesOn(node: string): number {
  return slices.value.reduce((sum, s) => sum + s.instances.filter((i) => i.node === node).length, 0);
}

function Figures() {
  const all = samples.value;
  const times = all.map((x) => x.time);
  const last = all[all.length - 1];
  const list = slices.value;
  const flow = traffic.value;
  const flowTimes = flow.map((x) => x.time);
  const lastFlow = flow[flow.length - 1];
  const trafficFigures = metrics.value === null ? [] : [
    {
      label: "Calls per second",
      value: lastFlow ? lastFlow.callsPerSecond.toFixed(1) : "–",
      series: flow.map((x) => x.callsPerSecond),
    },
    {
      label: "Success rate",
      value: lastFlow?.errorRate !== undefined ? `${((1 - lastFlow.errorRate) * 100).toFixed(1)}%` : "–",
      series: flow.map((x) => (1 - (x.errorRate ?? 0)) * 100),
    },
    {
      label: "Mean latency",
      value: lastFlow?.meanMs !== undefined ? `${lastFlow.meanMs.toFixed(1)} ms` : "–",
      series: flow.map((x) => x.meanMs ?? 0),
    },
  ];
  const figures = [
    { label: "Active instances", value: last?.active ?? 0, series: all.map((x) => x.active) },
    { label: "Desired instances", value: last?.desired ?? 0, series: all.map((x) => x.desired) },
    { label: "Members up", value: last?.connected ?? 0, series: all.map((x) => x.connected) },
  ];
  return (
    <section class="figures" aria-label="Key figures">
      {trafficFigures.map((f) => (
        <div class="figure" key={f.label}>
          <span class="label">{f.label}</span>
          <span class="value">{f.value}</span>
          <Sparkline label={f.label} times={flowTimes} values={f.series} />
        </div>
      ))}
      {figures.map((f) => (
        <div class="figure" key={f.label}>
          <span class="label">{f.label}</span>
          <span class="value" data-testid={`figure-${f.label.toLowerCase().replaceAll(" ", "-")}`}>
            {f.value}
          </span>
          <Sparkline label={f.label} times={times} values={f.series} />
        </div>
      ))}
      <div class="figure">
        <span class="label">Slices</span>
        <span class="value">{list.length}</span>
        <span class="muted">{list.filter((s) => s.settled).length} settled</span>
      </div>
    </section>
  );
}

function TopMethods() {
  const rows = topMethods.value;
  return (
    <>
      <h2>Top methods</h2>
      {rows.length === 0
        ? <p class="muted">No call in the last second.</p>
        : (
          <table data-testid="top-methods">
            <thead>
              <tr>
                <th scope="col">Method</th>
                <th scope="col">Calls/s</th>
                <th scope="col">Errors/s</th>
                <th scope="col">Mean ms</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((m) => (
                <tr key={m.name}>
                  <td>
                    <a href="#/invocations">{m.name}</a>
                  </td>
                  <td>{m.callsPerSecond.toFixed(1)}</td>
                  <td>{m.errorsPerSecond.toFixed(1)}</td>
                  <td>{m.meanMs === undefined ? "" : m.meanMs.toFixed(1)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
    </>
  );
}

function Feed() {
  const events = feed.value;
  return (
    <section aria-labelledby="feed-title">
      <h2 id="feed-title">Live events</h2>
      {events.length === 0 ? <p class="muted">Nothing has changed since this page opened.</p> : (
        <ol
          class="feed"
          data-testid="feed"
          aria-live="polite"
          tabIndex={0}
          aria-label="Events, newest first"
        >
          {events.slice(0, 50).map((e, i) => (
            <li key={`${e.time}-${i}`} class={e.kind}>
              <time>{clock(e.time)}</time> {e.text}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
