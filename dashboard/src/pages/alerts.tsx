/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Alerts: the rules (`thresholds/` in KV) with inline edit for operators, and the alerts pending, firing and
 * recently resolved. Rules are written as the CLI writes them: `p99 of g:a/m > 200ms`, for 30s, a severity.
 */

import { useState } from "preact/hooks";
import { call, get } from "../api.ts";
import { alerts, canOperate, refreshAlerts, serves } from "../state.ts";
import { ago, Outcome, useAction, useLoad } from "../ui.tsx";

interface Rule {
  name: string;
  expr: string;
  forMs: number;
  severity: string;
  summary?: string;
}

interface Resolved {
  id: string;
  expr: string;
  severity: string;
  resolvedAt: number;
}

/** The page, or a line saying this node lacks the feature (hooks stay unconditional in AlertsPage). */
export function Alerts() {
  return serves("GET", "/alerts/rules")
    ? <AlertsPage />
    : <p class="muted">This node has no alerts (an older version).</p>;
}

function AlertsPage() {
  const rules = useLoad(() => get<{ rules: Rule[] }>("/alerts/rules"));
  const firingNow = alerts.value;
  const resolved = useLoad(() => get<{ resolved?: Resolved[] }>("/alerts?resolved=true"), [firingNow]);
  const reload = () => {
    rules.reload();
    void refreshAlerts();
  };
  return (
    <>
      <section class="card" aria-labelledby="active-title">
        <h2 id="active-title">Pending and firing</h2>
        {firingNow.length === 0
          ? <p class="muted">No alert is pending or firing.</p>
          : (
            <table data-testid="alerts">
              <thead>
                <tr>
                  <th scope="col">Alert</th>
                  <th scope="col">State</th>
                  <th scope="col">Rule</th>
                  <th scope="col">Value</th>
                  <th scope="col">Since</th>
                </tr>
              </thead>
              <tbody>
                {firingNow.map((a) => (
                  <tr key={a.id} data-state={a.state}>
                    <td>{a.id}</td>
                    <td class={a.state === "firing" ? "error" : ""}>{a.state} ({a.severity})</td>
                    <td>
                      <code>{a.expr}</code>
                    </td>
                    <td>{a.value === undefined ? "no data" : a.value.toFixed(2)} / {a.threshold}</td>
                    <td>{ago(a.firedAt ?? a.activeSince)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        {(resolved.data?.resolved ?? []).length > 0 && (
          <>
            <h3>Recently resolved</h3>
            <ul>
              {resolved.data!.resolved!.map((r) => (
                <li key={`${r.id}-${r.resolvedAt}`}>
                  {r.id} <code>{r.expr}</code> resolved {ago(r.resolvedAt)}
                </li>
              ))}
            </ul>
          </>
        )}
      </section>
      <section class="card" aria-labelledby="rules-title">
        <h2 id="rules-title">Rules</h2>
        {rules.error && <p class="error" role="alert">{rules.error}</p>}
        {rules.data?.rules.length === 0 && <p class="muted">No rule.</p>}
        {rules.data && rules.data.rules.length > 0 && (
          <table data-testid="rules">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Expression</th>
                <th scope="col">For</th>
                <th scope="col">Severity</th>
                {canOperate.value && (
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                )}
              </tr>
            </thead>
            <tbody>
              {rules.data.rules.map((r) => <RuleRow key={r.name} rule={r} onChange={reload} />)}
            </tbody>
          </table>
        )}
        {canOperate.value && <RuleForm onChange={reload} />}
      </section>
    </>
  );
}

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

function RuleRow({ rule, onChange }: { rule: Rule; onChange: () => void }) {
  const [editing, setEditing] = useState(false);
  const [state, run] = useAction();
  if (editing) {
    return (
      <tr>
        <td colSpan={5}>
          <RuleForm rule={rule} onChange={() => (setEditing(false), onChange())} />
          <button type="button" onClick={() => setEditing(false)}>Cancel</button>
        </td>
      </tr>
    );
  }
  return (
    <tr>
      <td>{rule.name}</td>
      <td>
        <code>{rule.expr}</code>
      </td>
      <td>{seconds(rule.forMs)}</td>
      <td>{rule.severity}</td>
      {canOperate.value && (
        <td>
          <button type="button" onClick={() => setEditing(true)} aria-label={`Edit ${rule.name}`}>
            Edit
          </button>{" "}
          <button
            type="button"
            class="danger"
            aria-label={`Delete ${rule.name}`}
            onClick={() =>
              run(async () => {
                await call("DELETE", `/alerts/rules/${encodeURIComponent(rule.name)}`);
                onChange();
                return `deleted ${rule.name}`;
              })}
          >
            Delete
          </button>
          <Outcome state={state} />
        </td>
      )}
    </tr>
  );
}

function RuleForm({ rule, onChange }: { rule?: Rule; onChange: () => void }) {
  const [name, setName] = useState(rule?.name ?? "");
  const [expr, setExpr] = useState(rule?.expr ?? "");
  const [forText, setFor] = useState(rule ? seconds(rule.forMs) : "30s");
  const [severity, setSeverity] = useState(rule?.severity ?? "warning");
  const [state, run] = useAction();
  const prefix = rule ? `edit-${rule.name}` : "new-rule";
  const save = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await call("PUT", `/alerts/rules/${encodeURIComponent(name)}`, { expr, for: forText, severity });
      onChange();
      return `saved ${name}`;
    });
  };
  return (
    <form class="inline" onSubmit={save}>
      {!rule && (
        <>
          <label for={`${prefix}-name`}>Name</label>
          <input
            id={`${prefix}-name`}
            value={name}
            onInput={(e) => setName((e.target as HTMLInputElement).value)}
          />
        </>
      )}
      <label for={`${prefix}-expr`}>Expression</label>
      <input
        id={`${prefix}-expr`}
        size={40}
        placeholder="p99 of org.example:inventory/getStock > 200ms"
        value={expr}
        onInput={(e) => setExpr((e.target as HTMLInputElement).value)}
      />
      <label for={`${prefix}-for`}>For</label>
      <input
        id={`${prefix}-for`}
        size={6}
        value={forText}
        onInput={(e) => setFor((e.target as HTMLInputElement).value)}
      />
      <label for={`${prefix}-severity`}>Severity</label>
      <select
        id={`${prefix}-severity`}
        value={severity}
        onChange={(e) => setSeverity((e.target as HTMLSelectElement).value)}
      >
        <option value="info">info</option>
        <option value="warning">warning</option>
        <option value="critical">critical</option>
      </select>
      <button type="submit" disabled={state.busy}>{rule ? "Save" : "Add rule"}</button>
      <Outcome state={state} />
    </form>
  );
}
