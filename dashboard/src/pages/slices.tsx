/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Slices: every slice with its version, desired and active counts and each instance (node, state, last
 * reason). Operators scale, undeploy (after a confirmation) and deploy a published artifact; viewers see no
 * action buttons (the API would refuse them anyway).
 */

import { useState } from "preact/hooks";
import { get, post } from "../api.ts";
import { canOperate, refresh, type Slice, slices } from "../state.ts";
import { ago, Outcome, useAction, useLoad } from "../ui.tsx";

export function Slices() {
  const list = slices.value;
  return (
    <>
      {canOperate.value && <DeployForm />}
      {list.length === 0 ? <p>No slice is deployed.</p> : (
        <div class="cards">
          {list.map((s) => <SliceCard key={s.slice} slice={s} />)}
        </div>
      )}
    </>
  );
}

function SliceCard({ slice }: { slice: Slice }) {
  const titleId = `slice-${slice.slice.replace(/[^A-Za-z0-9]/g, "-")}`;
  return (
    <section class="card" data-slice={slice.slice} aria-labelledby={titleId}>
      <header>
        <h2 id={titleId}>{slice.slice}</h2>
        <span class="muted">{slice.version ?? "being removed"}</span>
        <span class={`tag ${slice.settled ? "good" : "warn"}`} data-testid="counts">
          {slice.active}/{slice.desired} active
        </span>
      </header>
      {slice.backoff && (
        <p class="error">
          Backing off after {slice.backoff.failures}{" "}
          failure(s){slice.backoff.lastReason ? `: ${slice.backoff.lastReason}` : ""}
        </p>
      )}
      {slice.weights && (
        <p class="muted">
          Routing weights: {Object.entries(slice.weights).map(([v, w]) => `${v} ${w}`).join(", ")}
        </p>
      )}
      <table>
        <thead>
          <tr>
            <th scope="col">#</th>
            <th scope="col">Node</th>
            <th scope="col" class="wide">Version</th>
            <th scope="col">State</th>
            <th scope="col" class="wide">Since</th>
            <th scope="col">Last reason</th>
          </tr>
        </thead>
        <tbody>
          {slice.instances.map((i) => (
            <tr key={`${i.node}-${i.version}-${i.n}`} data-state={i.state}>
              <td>{i.n}</td>
              <td>{i.node}{i.connected ? "" : " (unreachable)"}</td>
              <td class="wide">{i.version}</td>
              <td>
                <span class={`state ${i.state.toLowerCase()}`}>{i.state}</span>
              </td>
              <td class="wide">{ago(i.updatedAt)}</td>
              <td>{i.reason ?? ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {canOperate.value && slice.version !== undefined && <SliceActions slice={slice} />}
    </section>
  );
}

function SliceActions({ slice }: { slice: Slice }) {
  const [count, setCount] = useState(String(slice.desired));
  const [confirming, setConfirming] = useState(false);
  const [state, run] = useAction();
  const inputId = `scale-${slice.slice.replace(/[^A-Za-z0-9]/g, "-")}`;
  const scale = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const instances = Number(count);
      await post("/scale", { artifact: slice.slice, instances });
      await refresh();
      return `${slice.slice} scaled to ${instances}`;
    });
  };
  const undeploy = () =>
    run(async () => {
      setConfirming(false);
      await post("/undeploy", { artifact: slice.slice });
      await refresh();
      return `${slice.slice} undeployed`;
    });
  return (
    <div class="actions">
      <form onSubmit={scale} class="inline">
        <label for={inputId}>Instances</label>
        <input
          id={inputId}
          type="number"
          min="0"
          max="1000"
          value={count}
          onInput={(e) => setCount((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={state.busy}>Scale</button>
      </form>
      {confirming
        ? (
          <span class="confirm">
            Undeploy {slice.slice} everywhere?{" "}
            <button type="button" class="danger" onClick={undeploy}>Yes, undeploy</button>{" "}
            <button type="button" onClick={() => setConfirming(false)}>Cancel</button>
          </span>
        )
        : <button type="button" class="danger" onClick={() => setConfirming(true)}>Undeploy…</button>}
      <Outcome state={state} />
    </div>
  );
}

interface ArtifactItem {
  coordinates: string;
}

function DeployForm() {
  const artifacts = useLoad(() => get<{ items: ArtifactItem[] }>("/artifacts"));
  const [artifact, setArtifact] = useState("");
  const [count, setCount] = useState("1");
  const [state, run] = useAction();
  const deploy = (e: Event) => {
    e.preventDefault();
    void run(async () => {
      const instances = Number(count);
      await post("/deploy", { artifact, instances });
      await refresh();
      return `${artifact} deployed with ${instances} instance(s)`;
    });
  };
  return (
    <section class="card" aria-labelledby="deploy-title">
      <h2 id="deploy-title">Deploy a published artifact</h2>
      <form onSubmit={deploy} class="inline">
        <label for="deploy-artifact">Artifact</label>
        <input
          id="deploy-artifact"
          list="deploy-artifacts"
          placeholder="group:artifact:version"
          value={artifact}
          onInput={(e) => setArtifact((e.target as HTMLInputElement).value)}
        />
        <datalist id="deploy-artifacts">
          {(artifacts.data?.items ?? []).map((a) => <option key={a.coordinates} value={a.coordinates} />)}
        </datalist>
        <label for="deploy-instances">Instances</label>
        <input
          id="deploy-instances"
          type="number"
          min="1"
          max="1000"
          value={count}
          onInput={(e) => setCount((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={state.busy}>Deploy</button>
      </form>
      {artifacts.error && <p class="error">{artifacts.error}</p>}
      <Outcome state={state} />
    </section>
  );
}
