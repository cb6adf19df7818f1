/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Deployments: published blueprints, and rollouts (rolling, canary, blue-green) with each version's weight,
 * instances and the latest analysis; operators start one and pause, resume, promote or abort it (abort after
 * a confirmation). Both lists are read again whenever the slices change (the live feed drives that).
 */

import { useState } from "preact/hooks";
import { get, post } from "../api.ts";
import { canOperate, refresh, serves, slices } from "../state.ts";
import { ago, Outcome, useAction, useLoad } from "../ui.tsx";

interface VersionNow {
  version: string;
  role: "stable" | "new";
  instances: number;
  active: number;
  weight?: number;
}

interface Rollout {
  artifact: string;
  strategy: string;
  stableVersion: string;
  newVersion: string;
  phase: string;
  steps: string[];
  step: number;
  paused?: boolean;
  reason?: string;
  failures: number;
  verdicts: { step: number; at: number; ok: boolean; reason: string }[];
  startedAt: number;
  updatedAt: number;
  endedAt?: number;
  versions: VersionNow[];
}

interface Blueprint {
  id: string;
  [field: string]: unknown;
}

export function Deployments() {
  // Read again whenever the slices change: rollouts move instances.
  const changes = slices.value;
  const hasRollouts = serves("GET", "/rollouts");
  const rollouts = useLoad(
    () => hasRollouts ? get<{ items: Rollout[] }>("/rollouts") : Promise.resolve({ items: [] as Rollout[] }),
    [changes, hasRollouts],
  );
  const blueprints = useLoad(() => get<{ blueprints: Blueprint[] }>("/blueprints"));
  return (
    <>
      {canOperate.value && hasRollouts && <StartRollout onStarted={rollouts.reload} />}
      {!hasRollouts && <p class="muted">This node has no rollouts (an older version): blueprints only.</p>}
      <section class="card" aria-labelledby="rollouts-title">
        <h2 id="rollouts-title">Rollouts</h2>
        {rollouts.error && <p class="error" role="alert">{rollouts.error}</p>}
        {rollouts.data?.items.length === 0 && <p class="muted">No rollout has run.</p>}
        {rollouts.data?.items.map((r) => (
          <RolloutCard key={r.artifact} rollout={r} onChange={rollouts.reload} />
        ))}
      </section>
      <section class="card" aria-labelledby="blueprints-title">
        <h2 id="blueprints-title">Blueprints</h2>
        {blueprints.error && <p class="error" role="alert">{blueprints.error}</p>}
        {blueprints.data?.blueprints.length === 0 && <p class="muted">No blueprint is published.</p>}
        <ul>
          {blueprints.data?.blueprints.map((b) => (
            <li key={b.id}>
              <code>{b.id}</code>
            </li>
          ))}
        </ul>
      </section>
    </>
  );
}

const FINISHED = new Set(["Succeeded", "RolledBack"]);

function RolloutCard({ rollout, onChange }: { rollout: Rollout; onChange: () => void }) {
  const [state, run] = useAction();
  const [confirming, setConfirming] = useState(false);
  const finished = FINISHED.has(rollout.phase) || rollout.endedAt !== undefined;
  const act = (action: string) =>
    run(async () => {
      setConfirming(false);
      await post(`/rollouts/${encodeURIComponent(rollout.artifact)}/${action}`, {});
      onChange();
      await refresh();
      return `${action}: ${rollout.artifact}`;
    });
  const verdict = rollout.verdicts[rollout.verdicts.length - 1];
  return (
    <div class="rollout" data-rollout={rollout.artifact}>
      <h3>
        {rollout.artifact}: {rollout.strategy} {rollout.stableVersion} → {rollout.newVersion}
      </h3>
      <p>
        <span class="tag" data-testid="rollout-phase">
          {rollout.phase}
          {rollout.paused ? " (paused)" : ""}
        </span>{" "}
        step {rollout.step}
        {rollout.steps.length > 0 ? ` of ${rollout.steps.length} (${rollout.steps.join(", ")})` : ""}, started
        {" "}
        {ago(rollout.startedAt)}
        {rollout.reason ? `; ${rollout.reason}` : ""}
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Role</th>
            <th scope="col">Weight</th>
            <th scope="col">Active / instances</th>
          </tr>
        </thead>
        <tbody>
          {rollout.versions.map((v) => (
            <tr key={v.version}>
              <td>{v.version}</td>
              <td>{v.role}</td>
              <td>{v.weight ?? ""}</td>
              <td>{v.active}/{v.instances}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {verdict && (
        <p class={verdict.ok ? "ok" : "error"}>
          Analysis of step {verdict.step}: {verdict.reason}
        </p>
      )}
      {canOperate.value && !finished && (
        <div class="actions">
          {rollout.paused
            ? <button type="button" onClick={() => act("resume")}>Resume</button>
            : <button type="button" onClick={() => act("pause")}>Pause</button>}
          <button type="button" onClick={() => act("promote")}>Promote</button>
          {confirming
            ? (
              <span class="confirm">
                Abort and return all traffic to {rollout.stableVersion}?{" "}
                <button type="button" class="danger" onClick={() => act("abort")}>Yes, abort</button>{" "}
                <button type="button" onClick={() => setConfirming(false)}>Cancel</button>
              </span>
            )
            : <button type="button" class="danger" onClick={() => setConfirming(true)}>Abort…</button>}
        </div>
      )}
      <Outcome state={state} />
    </div>
  );
}

function StartRollout({ onStarted }: { onStarted: () => void }) {
  const [artifact, setArtifact] = useState("");
  const [version, setVersion] = useState("");
  const [strategy, setStrategy] = useState("rolling");
  const [state, run] = useAction();
  const start = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      await post("/rollouts", { artifact, version, strategy });
      onStarted();
      return `${strategy} rollout of ${artifact} to ${version} started`;
    });
  };
  return (
    <section class="card" aria-labelledby="start-rollout-title">
      <h2 id="start-rollout-title">Start a rollout</h2>
      <form class="inline" onSubmit={start}>
        <label for="rollout-artifact">Slice</label>
        <input
          id="rollout-artifact"
          placeholder="group:artifact"
          list="rollout-slices"
          value={artifact}
          onInput={(e) => setArtifact((e.target as HTMLInputElement).value)}
        />
        <datalist id="rollout-slices">
          {slices.value.map((s) => <option key={s.slice} value={s.slice} />)}
        </datalist>
        <label for="rollout-version">New version</label>
        <input
          id="rollout-version"
          placeholder="1.1.0"
          value={version}
          onInput={(e) => setVersion((e.target as HTMLInputElement).value)}
        />
        <label for="rollout-strategy">Strategy</label>
        <select
          id="rollout-strategy"
          value={strategy}
          onChange={(e) => setStrategy((e.target as HTMLSelectElement).value)}
        >
          <option value="rolling">rolling</option>
          <option value="canary">canary</option>
          <option value="blue-green">blue-green</option>
        </select>
        <button type="submit" disabled={state.busy}>Start</button>
      </form>
      <Outcome state={state} />
    </section>
  );
}
