import assert from "node:assert/strict";
import { describeFailure } from "./main.ts";
import {
  DEFAULT_CONTROLLER_SIM_OPTIONS,
  REACTION_BOUND_MS,
  runControllerSimulation,
  STEADY_CHANGES_PER_HOUR,
  steadyChangesPerHour,
  TRAFFIC_SHAPES,
} from "./simulator.ts";

/** Seeds per shape; `deno run runtime/control/sim/main.ts --seeds N --shape S` runs as many as wanted. */
const SEEDS = 12;

for (const shape of TRAFFIC_SHAPES) {
  Deno.test(`controller simulation (${shape}): ${SEEDS} seeded hours with node failures and leader changes keep every bound`, () => {
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = runControllerSimulation({ ...DEFAULT_CONTROLLER_SIM_OPTIONS, seed: seed * 7919, shape });
      assert.deepEqual(result.failures, [], describeFailure(result));
    }
  });
}

Deno.test("controller simulation: a step in load is covered within the reaction bound", () => {
  const reactions: number[] = [];
  for (let seed = 1; seed <= SEEDS; seed++) {
    const result = runControllerSimulation({
      ...DEFAULT_CONTROLLER_SIM_OPTIONS,
      seed,
      shape: "step",
      nodeFailuresPerHour: 0,
    });
    assert.deepEqual(result.failures, [], describeFailure(result));
    assert.ok(result.reactionMs !== undefined, `seed ${seed}: the step was never covered`);
    reactions.push(result.reactionMs);
  }
  assert.ok(Math.max(...reactions) <= REACTION_BOUND_MS, `reactions ${reactions.join(", ")} ms`);
  console.log(`step reaction (target covers the load, ACTIVE): max ${Math.max(...reactions)} ms`);
});

Deno.test("controller simulation: steady load does not oscillate", () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const perHour = steadyChangesPerHour({ ...DEFAULT_CONTROLLER_SIM_OPTIONS, seed, nodeFailuresPerHour: 0 });
    assert.ok(perHour <= STEADY_CHANGES_PER_HOUR, `seed ${seed}: ${perHour} count changes per hour`);
  }
});

Deno.test("controller simulation: the same seed replays exactly", () => {
  const run = () => runControllerSimulation({ ...DEFAULT_CONTROLLER_SIM_OPTIONS, seed: 42, verbose: true });
  const a = run(), b = run();
  assert.deepEqual(a.log, b.log);
  assert.ok(a.log.some((line) => line.includes("shop:main")), "the run decided something");
});
