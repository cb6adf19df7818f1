/**
 * Runs the deployment simulator for one seed or a range of seeds.
 *
 *   deno run runtime/deployment/sim/main.ts --seed 1234 --verbose      replay one run, printing its log
 *   deno run runtime/deployment/sim/main.ts --seed 1 --seeds 500       seeds 1..500
 *
 * Prints one line per failing run (and a summary); a failing run prints what broke and the command that
 * replays it, and the process exits with status 1.
 */

import { parseArgs } from "node:util";
import { DEFAULT_DEPLOY_SIM_OPTIONS, type DeploySimResult, runDeploymentSimulation } from "./simulator.ts";

export function replayCommand(seed: number, nodes: number, failureRate: number): string {
  const rate = failureRate === DEFAULT_DEPLOY_SIM_OPTIONS.failureRate ? "" : ` --failure-rate ${failureRate}`;
  return `deno run runtime/deployment/sim/main.ts --seed ${seed} --nodes ${nodes}${rate} --verbose`;
}

export function describeFailure(result: DeploySimResult, nodes: number, failureRate: number): string {
  return [
    `seed ${result.seed} FAILED:`,
    ...result.failures.map((f) => `  ${f}`),
    `  replay: ${replayCommand(result.seed, nodes, failureRate)}`,
  ].join("\n");
}

function main(): void {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string" },
      seeds: { type: "string" },
      nodes: { type: "string" },
      "failure-rate": { type: "string" },
      verbose: { type: "boolean", short: "v" },
    },
    strict: true,
  });
  const first = Number(values.seed ?? 1);
  const count = Number(values.seeds ?? 1);
  const nodes = Number(values.nodes ?? DEFAULT_DEPLOY_SIM_OPTIONS.nodes);
  const failureRate = Number(values["failure-rate"] ?? DEFAULT_DEPLOY_SIM_OPTIONS.failureRate);
  if (!(failureRate >= 0 && failureRate <= 1)) {
    console.error("--failure-rate must be a number from 0 to 1");
    Deno.exit(2);
  }
  for (const [name, n, min] of [["seed", first, 0], ["seeds", count, 1], ["nodes", nodes, 1]] as const) {
    if (!Number.isSafeInteger(n) || n < min) {
      console.error(`--${name} must be an integer >= ${min}`);
      Deno.exit(2);
    }
  }
  let failed = 0;
  const converged: number[] = [];
  const started = performance.now();
  for (let seed = first; seed < first + count; seed++) {
    const result = runDeploymentSimulation({
      ...DEFAULT_DEPLOY_SIM_OPTIONS,
      seed,
      nodes,
      failureRate,
      verbose: !!values.verbose,
    });
    if (values.verbose) { for (const line of result.log) console.log(line); }
    if (result.convergedAfterMs !== undefined) converged.push(result.convergedAfterMs);
    if (!result.ok) {
      failed++;
      console.log(describeFailure(result, nodes, failureRate));
    } else if (count === 1 || values.verbose) {
      console.log(
        `seed ${seed} ok: converged ${result.convergedAfterMs} ms after the last fault; ` +
          `${result.commandsApplied} commands (${result.compareFailures} did not apply), ${result.events} events`,
      );
    }
  }
  const ms = Math.round(performance.now() - started);
  converged.sort((a, b) => a - b);
  const p50 = converged[Math.floor(converged.length / 2)] ?? 0;
  const max = converged[converged.length - 1] ?? 0;
  console.log(
    `${count - failed}/${count} seeds ok in ${ms} ms; simulated convergence after the last fault: ` +
      `p50 ${p50} ms, max ${max} ms`,
  );
  if (failed > 0) Deno.exit(1);
}

if (import.meta.main) main();
