/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Forge's console, served by Forge's control channel: the nodes with kill and restart, every mesh link with
 * partition and latency, heal, and a log of the faults injected with their times, beside each node's own
 * dashboard link. It talks only to the control channel that served it (same origin; Forge refuses other
 * origins), which `aether forge <command>` uses too.
 */

import { signal } from "@preact/signals";
import { useState } from "preact/hooks";
import { LoadPanel } from "./load.tsx";

interface ForgeNode {
  id: string;
  api: string;
  app: string;
  pid: number | null;
  running: boolean;
  restarts: number;
}

type Fault =
  | { kind: "partition"; a: string; b: string }
  | { kind: "isolate"; node: string }
  | { kind: "latency"; a: string; b: string; ms: number };

interface ForgeState {
  nodes: ForgeNode[];
  faults: Fault[];
  startedAt: string;
  restart: string;
  example: string | null;
}

export const forge = signal<ForgeState | null>(null);
export const failure = signal<string | null>(null);
/** What this console did, newest first, with the time (the fault log). */
export const actions = signal<{ time: number; text: string; ok: boolean }[]>([]);

/** Entries the fault log keeps. */
const MAX_ACTIONS = 100;
/** Between two reads of Forge's state (it has no stream). */
export const FORGE_POLL_MS = 1_000;

export async function readForge(): Promise<void> {
  try {
    const response = await fetch("/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`GET /status: ${response.status}`);
    forge.value = await response.json();
    failure.value = null;
  } catch (e) {
    failure.value = `Forge does not answer: ${(e as Error).message}`;
  }
}

async function command(path: string, body: unknown, text: string): Promise<void> {
  let ok = false;
  let detail = "";
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    ok = response.ok;
    if (!ok) detail = `: ${answer.detail ?? response.status}`;
  } catch (e) {
    detail = `: ${(e as Error).message}`;
  }
  actions.value = [{ time: Date.now(), text: `${text}${detail}`, ok }, ...actions.value].slice(
    0,
    MAX_ACTIONS,
  );
  await readForge();
}

const describe = (f: Fault) =>
  f.kind === "partition"
    ? `partition ${f.a} ${f.b}`
    : f.kind === "isolate"
    ? `isolate ${f.node}`
    : `latency ${f.a} ${f.b} ${f.ms}ms`;

export function ForgeConsole() {
  const state = forge.value;
  return (
    <>
      <h1>Forge</h1>
      {failure.value && <p class="error" role="alert">{failure.value}</p>}
      {!state ? <p>Reading Forge's state…</p> : (
        <>
          <Nodes nodes={state.nodes} />
          <Links nodes={state.nodes} faults={state.faults} />
          <LoadPanel />
          <FaultLog />
        </>
      )}
    </>
  );
}

function Nodes({ nodes }: { nodes: ForgeNode[] }) {
  return (
    <section class="card" aria-labelledby="forge-nodes">
      <h2 id="forge-nodes">Nodes</h2>
      <table data-testid="forge-nodes">
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">State</th>
            <th scope="col">Restarts</th>
            <th scope="col">Dashboard</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((n) => (
            <tr key={n.id} data-node={n.id} data-running={String(n.running)}>
              <th scope="row">{n.id}</th>
              <td>
                <span class={`dot ${n.running ? "up" : "down"}`} aria-hidden="true" />
                {n.running ? `running (pid ${n.pid})` : "down"}
              </td>
              <td>{n.restarts}</td>
              <td>
                <a href={`http://${n.api}/`} target="_blank" rel="noopener">http://{n.api}/</a>
              </td>
              <td>
                <button
                  type="button"
                  class="danger"
                  aria-label={`Kill ${n.id}`}
                  onClick={() => command(`/nodes/${n.id}/kill`, {}, `kill ${n.id}`)}
                >
                  Kill
                </button>{" "}
                <button
                  type="button"
                  aria-label={`Restart ${n.id}`}
                  onClick={() => command(`/nodes/${n.id}/restart`, {}, `restart ${n.id}`)}
                >
                  Restart
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function Links({ nodes, faults }: { nodes: ForgeNode[]; faults: Fault[] }) {
  const pairs: [string, string][] = [];
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) pairs.push([nodes[i].id, nodes[j].id]);
  }
  const cut = (a: string, b: string) =>
    faults.some((f) =>
      (f.kind === "partition" && ((f.a === a && f.b === b) || (f.a === b && f.b === a))) ||
      (f.kind === "isolate" && (f.node === a || f.node === b))
    );
  const delay = (a: string, b: string) =>
    faults.filter((f) => f.kind === "latency" && ((f.a === a && f.b === b) || (f.a === b && f.b === a)))
      .reduce((ms, f) => Math.max(ms, (f as { ms: number }).ms), 0);
  return (
    <section class="card" aria-labelledby="forge-links">
      <h2 id="forge-links">Mesh links</h2>
      <table data-testid="forge-links">
        <thead>
          <tr>
            <th scope="col">Link</th>
            <th scope="col">State</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {pairs.map(([a, b]) => (
            <LinkRow key={`${a}-${b}`} a={a} b={b} cut={cut(a, b)} delayMs={delay(a, b)} />
          ))}
        </tbody>
      </table>
      <p>
        Active faults: {faults.length === 0 ? "none" : faults.map(describe).join(", ")}{" "}
        <button
          type="button"
          onClick={() =>
            command("/heal", {}, "heal")}
          disabled={faults.length === 0}
        >
          Heal all
        </button>
      </p>
    </section>
  );
}

function LinkRow({ a, b, cut, delayMs }: { a: string; b: string; cut: boolean; delayMs: number }) {
  const [ms, setMs] = useState("200");
  const id = `latency-${a}-${b}`;
  return (
    <tr data-link={`${a}-${b}`} data-cut={String(cut)}>
      <th scope="row">{a} ↔ {b}</th>
      <td>{cut ? "partitioned" : delayMs > 0 ? `+${delayMs} ms` : "up"}</td>
      <td class="actions">
        <button
          type="button"
          class="danger"
          aria-label={`Partition ${a} ${b}`}
          onClick={() => command("/faults", { kind: "partition", a, b }, `partition ${a} ${b}`)}
        >
          Partition
        </button>
        <label for={id}>Latency ms</label>
        <input
          id={id}
          type="number"
          min="0"
          max="60000"
          value={ms}
          onInput={(e) => setMs((e.target as HTMLInputElement).value)}
        />
        <button
          type="button"
          aria-label={`Delay ${a} ${b}`}
          onClick={() =>
            command("/faults", { kind: "latency", a, b, ms: Number(ms) }, `latency ${a} ${b} ${ms}ms`)}
        >
          Delay
        </button>
      </td>
    </tr>
  );
}

function FaultLog() {
  const list = actions.value;
  return (
    <section class="card" aria-labelledby="forge-log">
      <h2 id="forge-log">Fault log</h2>
      {list.length === 0
        ? <p class="muted">Nothing injected from this console yet.</p>
        : (
          <ol class="feed" data-testid="forge-log" tabIndex={0} aria-label="Injected faults, newest first">
            {list.map((entry, i) => (
              <li key={`${entry.time}-${i}`} class={entry.ok ? "" : "node"}>
                <time>{new Date(entry.time).toLocaleTimeString([], { hour12: false })}</time> {entry.text}
              </li>
            ))}
          </ol>
        )}
    </section>
  );
}
