/**
 * Runs the controller simulator for one seed or a range of seeds.
 *
 *   deno run runtime/control/sim/main.ts --seed 7 --shape step --verbose     replay one run, printing its log
 *   deno run runtime/control/sim/main.ts --seed 1 --seeds 200 --shape cycle   seeds 1..200
 *
 * Prints one line per failing run with the command that replays it (exit status 1), and a summary.
 */

import { parseArgs } from "node:util";
import {
  type ControllerSimResult,
  DEFAULT_CONTROLLER_SIM_OPTIONS,
  runControllerSimulation,
  TRAFFIC_SHAPES,
  type TrafficShape,
} from "./simulator.ts";

export function replayCommand(seed: number, shape: TrafficShape): string {
  return `deno run runtime/control/sim/main.ts --seed ${seed} --shape ${shape} --verbose`;
}

export function describeFailure(result: ControllerSimResult): string {
  return [
    `seed ${result.seed} (${result.shape}) FAILED:`,
    ...result.failures.map((f) => `  ${f}`),
    `  replay: ${replayCommand(result.seed, result.shape)}`,
  ].join("\n");
}

function main(): void {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string" },
      seeds: { type: "string" },
      shape: { type: "string" },
      verbose: { type: "boolean", short: "v" },
    },
    strict: true,
  });
  const first = Number(values.seed ?? 1);
  const count = Number(values.seeds ?? 1);
  const shape = (values.shape ?? "step") as TrafficShape;
  if (!TRAFFIC_SHAPES.includes(shape)) {
    console.error(`--shape must be one of ${TRAFFIC_SHAPES.join(", ")}, got "${values.shape}"`);
    Deno.exit(2);
  }
  for (const [name, n, min] of [["seed", first, 0], ["seeds", count, 1]] as const) {
    if (!Number.isSafeInteger(n) || n < min) {
      console.error(`--${name} must be an integer >= ${min}`);
      Deno.exit(2);
    }
  }
  let failed = 0;
  for (let seed = first; seed < first + count; seed++) {
    const result = runControllerSimulation({
      ...DEFAULT_CONTROLLER_SIM_OPTIONS,
      seed,
      shape,
      verbose: values.verbose === true,
    });
    if (values.verbose) { for (const line of result.log) console.log(line); }
    if (result.failures.length > 0) {
      failed++;
      console.log(describeFailure(result));
    } else if (count === 1 || values.verbose) {
      console.log(
        `seed ${seed} (${shape}) ok: ${result.changes} changes, ${result.secondsOverObjective}s over objective, ` +
          `${result.instanceSeconds} instance-seconds (least ${result.minimumInstanceSeconds})` +
          (result.reactionMs === undefined ? "" : `, reaction ${result.reactionMs}ms`) +
          `, ${result.stepMs.toFixed(4)}ms per step`,
      );
    }
  }
  console.log(`${count - failed} passed, ${failed} failed`);
  if (failed > 0) Deno.exit(1);
}

if (import.meta.main) main();
