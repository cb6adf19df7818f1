/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Data: the KV browser (operators edit keys under `app/`, the only namespace the API lets them write), the
 * published artifacts, and the application routes with the nodes serving each.
 */

import { useState } from "preact/hooks";
import { call, get } from "../api.ts";
import { canOperate } from "../state.ts";
import { ago, Outcome, useAction, useLoad } from "../ui.tsx";

interface KvItem {
  key: string;
  value: string;
  revision: number;
}

interface Artifact {
  coordinates: string;
  sha256: string;
  sizeBytes: number;
  holders: string[];
  pushedAt?: number;
}

interface RouteItem {
  method?: string;
  path?: string;
  nodes?: string[];
  [field: string]: unknown;
}

/** Largest value shown in the table (the rest is cut with an ellipsis). */
const VALUE_PREVIEW_CHARS = 200;

export function Data() {
  return (
    <>
      <KvBrowser />
      <Artifacts />
      <Routes />
    </>
  );
}

function KvBrowser() {
  const [prefix, setPrefix] = useState("app/");
  const [shown, setShown] = useState("app/");
  const items = useLoad(
    () => get<{ revision: number; items: KvItem[] }>(`/kv?prefix=${encodeURIComponent(shown)}&limit=200`),
    [shown],
  );
  return (
    <section class="card" aria-labelledby="kv-title">
      <h2 id="kv-title">Key-value store</h2>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          setShown(prefix);
          items.reload();
        }}
      >
        <label for="kv-prefix">Prefix</label>
        <input
          id="kv-prefix"
          value={prefix}
          onInput={(e) => setPrefix((e.target as HTMLInputElement).value)}
        />
        <button type="submit">List</button>
      </form>
      {items.error && <p class="error" role="alert">{items.error}</p>}
      {items.data && (
        <table data-testid="kv-items">
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Value</th>
              <th scope="col">Revision</th>
              {canOperate.value && (
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {items.data.items.length === 0 && (
              <tr>
                <td colSpan={4} class="muted">No key under "{shown}" (revision {items.data.revision}).</td>
              </tr>
            )}
            {items.data.items.map((item) => <KvRow key={item.key} item={item} onChange={items.reload} />)}
          </tbody>
        </table>
      )}
      {canOperate.value && <KvPut onChange={items.reload} />}
    </section>
  );
}

const keyPath = (key: string) => `/kv/${key.split("/").map(encodeURIComponent).join("/")}`;

function KvRow({ item, onChange }: { item: KvItem; onChange: () => void }) {
  const [state, run] = useAction();
  const preview = item.value.length > VALUE_PREVIEW_CHARS
    ? `${item.value.slice(0, VALUE_PREVIEW_CHARS)}…`
    : item.value;
  return (
    <tr>
      <td>
        <code>{item.key}</code>
      </td>
      <td>
        <code class="value">{preview}</code>
      </td>
      <td>{item.revision}</td>
      {canOperate.value && (
        <td>
          {item.key.startsWith("app/") && (
            <button
              type="button"
              class="danger"
              aria-label={`Delete ${item.key}`}
              onClick={() =>
                run(async () => {
                  await call("DELETE", keyPath(item.key));
                  onChange();
                  return `deleted ${item.key}`;
                })}
            >
              Delete
            </button>
          )}
          <Outcome state={state} />
        </td>
      )}
    </tr>
  );
}

function KvPut({ onChange }: { onChange: () => void }) {
  const [key, setKey] = useState("app/");
  const [value, setValue] = useState("");
  const [state, run] = useAction();
  return (
    <form
      class="inline"
      onSubmit={(e) => {
        e.preventDefault();
        void run(async () => {
          const answer = await call<string>("PUT", keyPath(key), value, true);
          onChange();
          return `wrote ${key} (${answer.slice(0, 80)})`;
        });
      }}
    >
      <label for="kv-key">Key</label>
      <input id="kv-key" value={key} onInput={(e) => setKey((e.target as HTMLInputElement).value)} />
      <label for="kv-value">Value</label>
      <input id="kv-value" value={value} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
      <button type="submit" disabled={state.busy}>Put</button>
      <Outcome state={state} />
    </form>
  );
}

function Artifacts() {
  const list = useLoad(() => get<{ items: Artifact[] }>("/artifacts"));
  return (
    <section class="card" aria-labelledby="artifacts-title">
      <h2 id="artifacts-title">Artifacts</h2>
      {list.error && <p class="error" role="alert">{list.error}</p>}
      {list.data && (list.data.items.length === 0
        ? <p class="muted">No artifact is published.</p>
        : (
          <table data-testid="artifacts">
            <thead>
              <tr>
                <th scope="col">Coordinates</th>
                <th scope="col">Size</th>
                <th scope="col">Held by</th>
                <th scope="col">Pushed</th>
                <th scope="col">sha-256</th>
              </tr>
            </thead>
            <tbody>
              {list.data.items.map((a) => (
                <tr key={a.coordinates}>
                  <td>{a.coordinates}</td>
                  <td>{(a.sizeBytes / 1024).toFixed(1)} KiB</td>
                  <td>{a.holders.join(", ")}</td>
                  <td>{a.pushedAt ? ago(a.pushedAt) : ""}</td>
                  <td>
                    <code>{a.sha256.slice(0, 12)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
    </section>
  );
}

function Routes() {
  const list = useLoad(() => get<{ routes: RouteItem[] }>("/routes"));
  return (
    <section class="card" aria-labelledby="routes-title">
      <h2 id="routes-title">Application routes</h2>
      {list.error && <p class="error" role="alert">{list.error}</p>}
      {list.data && (list.data.routes.length === 0 ? <p class="muted">No route is served.</p> : (
        <table>
          <thead>
            <tr>
              <th scope="col">Route</th>
              <th scope="col">Served by</th>
            </tr>
          </thead>
          <tbody>
            {list.data.routes.map((r, i) => (
              <tr key={i}>
                <td>
                  <code>{r.method ?? ""} {r.path ?? JSON.stringify(r)}</code>
                </td>
                <td>{Array.isArray(r.nodes) ? r.nodes.join(", ") : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ))}
    </section>
  );
}
