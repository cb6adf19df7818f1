import assert from "node:assert/strict";
import { DEFAULT_DEPLOY_SIM_OPTIONS, runDeploymentSimulation } from "./simulator.ts";
import { describeFailure } from "./main.ts";

/** Seeds per cluster size; `deno run runtime/deployment/sim/main.ts --seeds N` runs as many as wanted. */
const SEEDS = 50;

for (const nodes of [3, 5]) {
  Deno.test(`deployment simulation: ${SEEDS} seeds on ${nodes} nodes converge, in dependency order`, () => {
    const failures: string[] = [];
    let slowest = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = runDeploymentSimulation({
        ...DEFAULT_DEPLOY_SIM_OPTIONS,
        seed: seed * 7919 + nodes,
        nodes,
      });
      if (!result.ok) failures.push(describeFailure(result, nodes, DEFAULT_DEPLOY_SIM_OPTIONS.failureRate));
      slowest = Math.max(slowest, result.convergedAfterMs ?? 0);
    }
    assert.deepEqual(failures, [], failures.join("\n"));
    assert.ok(slowest <= DEFAULT_DEPLOY_SIM_OPTIONS.settleBoundMs);
  });
}

Deno.test("deployment simulation: the same seed replays exactly", () => {
  const run = () =>
    runDeploymentSimulation({ ...DEFAULT_DEPLOY_SIM_OPTIONS, seed: 42, nodes: 5, verbose: true });
  const a = run();
  const b = run();
  assert.equal(a.ok, true, a.failures.join("\n"));
  assert.deepEqual(a.log, b.log);
  assert.ok(a.log.some((line) => line.includes("FAULT")), "faults happened");
  assert.ok(a.log.some((line) => /node n\d departed/.test(line)), "a node departed and was cleaned up");
  assert.ok(a.log.some((line) => /move .* to /.test(line)), "the rejoin moved instances back");
});

Deno.test("deployment simulation: version weights keep two versions running; clearing them retires one", () => {
  let routed = 0;
  let retired = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const result = runDeploymentSimulation({ ...DEFAULT_DEPLOY_SIM_OPTIONS, seed, nodes: 3, verbose: true });
    assert.equal(result.ok, true, describeFailure(result, 3, DEFAULT_DEPLOY_SIM_OPTIONS.failureRate));
    const log = result.log;
    // Runs where weights were set, and runs where clearing them led the leader to retire a version.
    if (log.some((l) => /OPERATOR routing sim/.test(l))) routed++;
    const clearedAt = log.findIndex((l) => l.includes("OPERATOR routing clear"));
    if (clearedAt >= 0 && log.slice(clearedAt).some((l) => /cdm: .*DEACTIVATE .* moves to/.test(l))) {
      retired++;
    }
  }
  assert.ok(routed >= 5, `weights were set in ${routed} of 40 runs`);
  assert.ok(retired >= 1, `clearing weights retired a version in ${retired} of 40 runs`);
});
