import assert from "node:assert/strict";
import { type RolloutSimOptions, runRolloutSimulation, SIM_VERSIONS } from "./rollout_sim.ts";

const BASE: Omit<RolloutSimOptions, "seed" | "spec"> = {
  instances: 3,
  nodes: 3,
  rate: 200,
  newFailureRate: 0,
  actions: [],
  leaderChangesAtMs: [],
  maxMs: 60_000,
  verbose: true,
};
const FAST_CANARY = ["5%", "pause 2s", "25%", "pause 2s", "50%", "pause 2s", "100%"];
const SEEDS = 12;

function explain(r: ReturnType<typeof runRolloutSimulation>): string {
  return [...r.violations, `phase ${r.record.phase}: ${r.record.reason}`, ...r.log.slice(-40)].join("\n");
}

Deno.test("rollout sim: rolling keeps every instance's capacity (maxSurge 25%, maxUnavailable 0) and finishes", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    for (const instances of [1, 3, 4, 8]) {
      const r = runRolloutSimulation({ ...BASE, seed, instances, spec: { strategy: "rolling" } });
      assert.deepEqual(r.violations, [], explain(r));
      assert.equal(r.record.phase, "Succeeded", explain(r));
      assert.equal(r.target.version, SIM_VERSIONS.new);
      assert.equal(r.routing, undefined, "the weights are gone");
      assert.equal(r.failed, 0, explain(r));
      assert.deepEqual(r.left, { [SIM_VERSIONS.new]: instances });
      assert.ok(r.finishedAtMs! < 3_000, `rolling of ${instances} took ${r.finishedAtMs} ms`);
    }
  }
});

Deno.test("rollout sim: rolling with maxUnavailable 1 and maxSurge 0 never has fewer than count-1 ACTIVE", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = runRolloutSimulation({
      ...BASE,
      seed,
      instances: 4,
      spec: { strategy: "rolling", maxSurge: "0", maxUnavailable: "1" },
    });
    assert.deepEqual(r.violations, [], explain(r));
    assert.equal(r.record.phase, "Succeeded", explain(r));
  }
});

Deno.test("rollout sim: a canary of a healthy version passes every analysis and promotes itself", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = runRolloutSimulation({ ...BASE, seed, spec: { strategy: "canary", steps: FAST_CANARY } });
    assert.equal(r.record.phase, "Succeeded", explain(r));
    assert.equal(r.record.verdicts.length, 3, explain(r));
    assert.ok(r.record.verdicts.every((v) => v.ok));
    assert.equal(r.target.version, SIM_VERSIONS.new);
    assert.equal(r.failed, 0);
    assert.deepEqual(r.left, { [SIM_VERSIONS.new]: 3 });
  }
});

Deno.test("rollout sim: a canary failing 20% of its calls rolls back at its first analysis", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = runRolloutSimulation({
      ...BASE,
      seed,
      newFailureRate: 0.2,
      // The e2e goal is over a run of steady load: 10 s here.
      minRunMs: 10_000,
      spec: { strategy: "canary", steps: FAST_CANARY },
    });
    assert.equal(r.record.phase, "RolledBack", explain(r));
    assert.equal(r.record.verdicts.length, 1, explain(r));
    assert.equal(r.record.verdicts[0].ok, false);
    assert.match(r.record.reason!, /success rate/);
    assert.equal(r.target.version, SIM_VERSIONS.stable);
    assert.equal(r.routing, undefined);
    assert.deepEqual(r.left, { [SIM_VERSIONS.stable]: 3 }, explain(r));
    // The weights go back in the transaction that records the verdict: one consensus delay (< 10 ms here).
    assert.ok(r.stableAgainAtMs! - r.failedAnalysisAtMs! <= 20, explain(r));
    assert.ok(r.failed / r.requests < 0.01, `${r.failed} of ${r.requests} failed`);
  }
});

Deno.test("rollout sim: abort at each canary step returns to the stable version with no failed request", () => {
  for (let at = 0; at < 10_000; at += 700) {
    const r = runRolloutSimulation({
      ...BASE,
      seed: at + 1,
      spec: { strategy: "canary", steps: FAST_CANARY },
      actions: [{ atMs: at, action: "abort" }],
    });
    if (r.record.phase === "Succeeded") continue; // the abort came after the end
    assert.equal(r.record.phase, "RolledBack", explain(r));
    assert.equal(r.record.reason, "aborted by an operator");
    assert.equal(r.target.version, SIM_VERSIONS.stable);
    assert.equal(r.routing, undefined);
    assert.deepEqual(r.left, { [SIM_VERSIONS.stable]: 3 }, explain(r));
    assert.equal(r.failed, 0);
  }
});

Deno.test("rollout sim: pause holds a canary at its step; resume carries on; an open-ended pause waits", () => {
  const r = runRolloutSimulation({
    ...BASE,
    seed: 7,
    spec: { strategy: "canary", steps: ["10%", "pause", "100%"] },
    actions: [{ atMs: 5_000, action: "resume" }],
  });
  assert.equal(r.record.phase, "Succeeded", explain(r));
  assert.ok(r.finishedAtMs! >= 5_000, "it waited for resume");
  const paused = runRolloutSimulation({
    ...BASE,
    seed: 7,
    maxMs: 8_000,
    spec: { strategy: "canary", steps: FAST_CANARY },
    actions: [{ atMs: 600, action: "pause" }],
  });
  assert.equal(paused.record.phase, "Paused", explain(paused));
  assert.equal(paused.target.version, SIM_VERSIONS.stable);
});

Deno.test("rollout sim: blue-green previews with no traffic, switches at once, and abort after it switches back", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const done = runRolloutSimulation({
      ...BASE,
      seed,
      spec: { strategy: "blue-green", scaleDownDelayMs: 2_000 },
      actions: [{ atMs: 1_500, action: "promote" }],
    });
    assert.equal(done.record.phase, "Succeeded", explain(done));
    assert.equal(done.previewLeaks, 0);
    assert.equal(done.failed, 0);
    assert.deepEqual(done.left, { [SIM_VERSIONS.new]: 3 });
    const back = runRolloutSimulation({
      ...BASE,
      seed,
      spec: { strategy: "blue-green", scaleDownDelayMs: 5_000 },
      actions: [{ atMs: 1_500, action: "promote" }, { atMs: 3_000, action: "abort" }],
    });
    assert.equal(back.record.phase, "RolledBack", explain(back));
    assert.equal(back.target.version, SIM_VERSIONS.stable);
    assert.equal(back.failed, 0);
    assert.ok(back.served[SIM_VERSIONS.new] > 0, "the switch happened before the abort");
    assert.deepEqual(back.left, { [SIM_VERSIONS.stable]: 3 }, explain(back));
  }
});

Deno.test("rollout sim: leader changes mid-rollout and a node dying mid-rollout do not stop it", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    for (const strategy of ["rolling", "canary"] as const) {
      const r = runRolloutSimulation({
        ...BASE,
        seed,
        spec: strategy === "canary" ? { strategy, steps: FAST_CANARY } : { strategy },
        leaderChangesAtMs: [seed * 97, 1_000 + seed * 131, 3_500],
        nodeDeathAtMs: 300 + seed * 50,
        nodeDownMs: 1_500,
      });
      assert.equal(r.record.phase, "Succeeded", explain(r));
      assert.equal(r.target.version, SIM_VERSIONS.new);
      assert.deepEqual(r.left, { [SIM_VERSIONS.new]: 3 }, explain(r));
    }
  }
});

Deno.test("rollout sim: the same seed replays exactly", () => {
  const run = () =>
    runRolloutSimulation({
      ...BASE,
      seed: 42,
      spec: { strategy: "canary", steps: FAST_CANARY },
      leaderChangesAtMs: [1_234],
      nodeDeathAtMs: 800,
    });
  const a = run();
  const b = run();
  assert.deepEqual(a.log, b.log);
  assert.ok(a.log.some((l) => l.includes("FAULT leader change")));
});

Deno.test("rollout sim: a new version that never becomes ACTIVE rolls back at the progress deadline", () => {
  for (
    const spec of [{ strategy: "rolling" as const }, { strategy: "canary" as const, steps: FAST_CANARY }, {
      strategy: "blue-green" as const,
    }]
  ) {
    const r = runRolloutSimulation({
      ...BASE,
      seed: 3,
      spec,
      newNeverStarts: true,
      progressDeadlineMs: 5_000,
    });
    assert.equal(r.record.phase, "RolledBack", explain(r));
    assert.match(r.record.reason!, /made no progress for 5 s/);
    assert.equal(r.target.version, SIM_VERSIONS.stable);
    assert.equal(r.failed, 0, explain(r));
    assert.deepEqual(r.left, { [SIM_VERSIONS.stable]: 3 }, explain(r));
  }
});

Deno.test("rollout sim: the disruption budget holds maxUnavailable back (minAvailable 3 of 4: one at a time)", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = runRolloutSimulation({
      ...BASE,
      seed,
      instances: 4,
      minAvailable: "75%",
      spec: { strategy: "rolling", maxSurge: "0", maxUnavailable: "50%" },
    });
    // The check inside the simulator uses the budgeted batch: never fewer than 3 ACTIVE.
    assert.deepEqual(r.violations, [], explain(r));
    assert.equal(r.record.phase, "Succeeded", explain(r));
  }
});

Deno.test("rollout sim: a canary whose analysis names an alert rule rolls back when that rule fires in a step", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const firing = runRolloutSimulation({
      ...BASE,
      seed,
      firingFrom: { atMs: 0, rule: "high-latency" },
      spec: { strategy: "canary", steps: FAST_CANARY, analysis: { alerts: ["high-latency"] } },
    });
    assert.equal(firing.record.phase, "RolledBack", explain(firing));
    assert.equal(firing.record.verdicts.length, 1, explain(firing));
    assert.equal(firing.record.verdicts[0].reason, "alert firing: high-latency");
    assert.match(firing.record.reason!, /analysis failed 1 time\(s\): alert firing: high-latency/);
    assert.equal(firing.target.version, SIM_VERSIONS.stable);
    // A firing alert of a rule the analysis does not name changes nothing.
    const other = runRolloutSimulation({
      ...BASE,
      seed,
      firingFrom: { atMs: 0, rule: "disk-full" },
      spec: { strategy: "canary", steps: FAST_CANARY, analysis: { alerts: ["high-latency"] } },
    });
    assert.equal(other.record.phase, "Succeeded", explain(other));
  }
});
