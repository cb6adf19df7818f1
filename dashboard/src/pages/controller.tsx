/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * Controller: whether the autoscaler runs (pause and resume for operators), its recent decisions with their
 * reasons, the pinned slices, and the forecaster's state.
 */

import { get, post } from "../api.ts";
import { canOperate, feed, serves } from "../state.ts";
import { clock, Outcome, useAction, useLoad } from "../ui.tsx";

interface ControllerView {
  leading: boolean;
  paused: boolean;
  pausedBy: string | null;
  pins: number;
  pinned?: Record<string, unknown>;
  slices: number;
  ticks: number;
  decisions: number;
  forecaster: string;
}

interface Decision {
  at: number;
  slice: string;
  from: number;
  to: number;
  reason: string;
  rule: string;
  bounded?: string;
  leader: string;
}

/** The page, or a line saying this node lacks the feature (hooks stay unconditional in ControllerPage). */
export function Controller() {
  return serves("GET", "/controller")
    ? <ControllerPage />
    : <p class="muted">This node has no controller (an older version).</p>;
}

function ControllerPage() {
  // Read again when the feed moves (controller decisions and pauses arrive as events).
  const changes = feed.value.length;
  const view = useLoad(() => get<ControllerView>("/controller"), [changes]);
  const decisions = useLoad(() => get<{ decisions: Decision[] }>("/controller/decisions?limit=50"), [
    changes,
  ]);
  const [state, run] = useAction();
  const toggle = (pause: boolean) =>
    run(async () => {
      await post(`/controller/${pause ? "pause" : "resume"}`, {});
      view.reload();
      return pause ? "the controller is paused" : "the controller runs";
    });
  const v = view.data;
  return (
    <>
      <section class="card" aria-labelledby="controller-title">
        <h2 id="controller-title">State</h2>
        {view.error && <p class="error" role="alert">{view.error}</p>}
        {v && (
          <p data-testid="controller-state">
            {v.paused ? `Paused${v.pausedBy ? ` by ${v.pausedBy}` : ""}` : "Running"}; {v.slices}{" "}
            slice(s) under control, {v.pins} pinned, {v.decisions} decision(s) in {v.ticks}{" "}
            evaluations; forecaster {v.forecaster}.
          </p>
        )}
        {v && canOperate.value && (
          <button
            type="button"
            onClick={() => toggle(!v.paused)}
            disabled={state.busy}
          >
            {v.paused ? "Resume" : "Pause"}
          </button>
        )}
        <Outcome state={state} />
      </section>
      <section class="card" aria-labelledby="decisions-title">
        <h2 id="decisions-title">Recent decisions</h2>
        {decisions.error && <p class="error" role="alert">{decisions.error}</p>}
        {decisions.data?.decisions.length === 0 && <p class="muted">No decision yet.</p>}
        {decisions.data && decisions.data.decisions.length > 0 && (
          <table>
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Slice</th>
                <th scope="col">Change</th>
                <th scope="col">Rule</th>
                <th scope="col">Reason</th>
              </tr>
            </thead>
            <tbody>
              {[...decisions.data.decisions].reverse().map((d, i) => (
                <tr key={`${d.at}-${i}`}>
                  <td>{clock(d.at)}</td>
                  <td>{d.slice}</td>
                  <td>{d.from} → {d.to}</td>
                  <td>{d.rule}</td>
                  <td>{d.reason}{d.bounded ? ` (${d.bounded})` : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  );
}
