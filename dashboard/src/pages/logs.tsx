/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/** Logs: the newest records of every member, filtered by level, node and slice, as `aether logs` shows them. */

import { useState } from "preact/hooks";
import { get } from "../api.ts";
import { clock, useLoad } from "../ui.tsx";

interface LogItem {
  time: number;
  level: string;
  node?: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** Records asked for per load. */
const LOG_PAGE = 200;

export function Logs() {
  const [level, setLevel] = useState("info");
  const [node, setNode] = useState("");
  const [slice, setSlice] = useState("");
  const [query, setQuery] = useState(`level=info&limit=${LOG_PAGE}`);
  const logs = useLoad(
    () => get<{ records: LogItem[]; unreachable: Record<string, string> }>(`/logs?${query}`),
    [query],
  );
  const apply = (e: Event) => {
    e.preventDefault();
    const params = new URLSearchParams({ level, limit: String(LOG_PAGE) });
    if (node.trim()) params.set("node", node.trim());
    if (slice.trim()) params.set("slice", slice.trim());
    setQuery(params.toString());
    logs.reload();
  };
  const unreachable = Object.entries(logs.data?.unreachable ?? {});
  return (
    <section class="card">
      <form class="inline" onSubmit={apply}>
        <label for="log-level">Level</label>
        <select
          id="log-level"
          value={level}
          onChange={(e) => setLevel((e.target as HTMLSelectElement).value)}
        >
          {["debug", "info", "warn", "error"].map((l) => <option key={l} value={l}>{l}</option>)}
        </select>
        <label for="log-node">Node</label>
        <input id="log-node" value={node} onInput={(e) => setNode((e.target as HTMLInputElement).value)} />
        <label for="log-slice">Slice</label>
        <input id="log-slice" value={slice} onInput={(e) => setSlice((e.target as HTMLInputElement).value)} />
        <button type="submit">Show</button>
      </form>
      {logs.error && <p class="error" role="alert">{logs.error}</p>}
      {unreachable.length > 0 && (
        <p class="error">Not answering: {unreachable.map(([n, why]) => `${n} (${why})`).join(", ")}</p>
      )}
      <ol class="logs" data-testid="logs" tabIndex={0} aria-label="Log records">
        {[...(logs.data?.records ?? [])].reverse().map((r, i) => (
          <li key={i} class={r.level}>
            <time>{clock(r.time)}</time> <span class="node">{r.node ?? ""}</span>{" "}
            <span class="level">{r.level}</span> {r.msg}{" "}
            <span class="fields">{Object.keys(r.fields).length ? JSON.stringify(r.fields) : ""}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
