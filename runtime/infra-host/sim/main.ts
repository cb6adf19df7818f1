/**
 * Runs the store simulator for one seed or a range of seeds.
 *
 *   deno run runtime/infra-host/sim/main.ts --seed 1234 --verbose      replay one run, printing its log
 *   deno run runtime/infra-host/sim/main.ts --seed 1 --seeds 200       seeds 1..200
 *   ... --engine memory|durable --nodes 5                              fix the engine or the cluster size
 *   ... --replicas 5 --write-quorum 3                                  another store shape
 *
 * Prints one line per failing run with the command that replays it; exits with status 1 if any failed.
 */

import { parseArgs } from "node:util";
import { DEFAULT_STORE_SIM_OPTIONS, runStoreSimulation, type StoreSimResult } from "./simulator.ts";

export interface ReplayShape {
  nodes: number;
  engine?: string;
  replicas?: number;
  writeQuorum?: number;
}

export function replayCommand(seed: number, shape: ReplayShape): string {
  const d = DEFAULT_STORE_SIM_OPTIONS;
  const flags = [
    shape.nodes === d.nodes ? "" : ` --nodes ${shape.nodes}`,
    shape.engine ? ` --engine ${shape.engine}` : "",
    shape.replicas === undefined || shape.replicas === d.replicas ? "" : ` --replicas ${shape.replicas}`,
    shape.writeQuorum === undefined || shape.writeQuorum === d.writeQuorum
      ? ""
      : ` --write-quorum ${shape.writeQuorum}`,
  ].join("");
  return `deno run runtime/infra-host/sim/main.ts --seed ${seed}${flags} --verbose`;
}

export function describeFailure(result: StoreSimResult, shape: ReplayShape): string {
  return [
    `seed ${result.seed} (${result.engine} engine) FAILED:`,
    ...result.failures.map((f) => `  ${f}`),
    `  replay: ${replayCommand(result.seed, shape)}`,
  ].join("\n");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string" },
      seeds: { type: "string" },
      nodes: { type: "string" },
      engine: { type: "string" },
      replicas: { type: "string" },
      "write-quorum": { type: "string" },
      verbose: { type: "boolean", short: "v" },
    },
    strict: true,
  });
  const first = Number(values.seed ?? 1);
  const count = Number(values.seeds ?? 1);
  const nodes = Number(values.nodes ?? DEFAULT_STORE_SIM_OPTIONS.nodes);
  const engine = values.engine;
  const replicas = Number(values.replicas ?? DEFAULT_STORE_SIM_OPTIONS.replicas);
  const writeQuorum = Number(values["write-quorum"] ?? DEFAULT_STORE_SIM_OPTIONS.writeQuorum);
  if (
    !Number.isSafeInteger(replicas) || replicas < 1 || !Number.isSafeInteger(writeQuorum) ||
    writeQuorum < 1 ||
    writeQuorum > replicas
  ) {
    console.error("--replicas and --write-quorum must be integers with 1 <= write quorum <= replicas");
    Deno.exit(2);
  }
  if (engine !== undefined && engine !== "memory" && engine !== "durable") {
    console.error("--engine must be memory or durable");
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
    const result = await runStoreSimulation({
      ...DEFAULT_STORE_SIM_OPTIONS,
      seed,
      nodes,
      replicas,
      writeQuorum,
      engine: engine as "memory" | "durable" | undefined,
      verbose: !!values.verbose,
    });
    if (values.verbose) { for (const line of result.log) console.log(line); }
    if (result.convergedAfterMs !== undefined) converged.push(result.convergedAfterMs);
    if (!result.ok) {
      failed++;
      console.log(describeFailure(result, { nodes, engine, replicas, writeQuorum }));
    } else if (count === 1 || values.verbose) {
      console.log(
        `seed ${seed} ok (${result.engine}): converged ${result.convergedAfterMs} ms after the last fault; ` +
          `${result.acknowledgedWrites} acknowledged writes, ${result.acknowledgedAdds} adds, ` +
          `${result.unknownWrites} unknown, ${result.reads} reads ` +
          `(${result.staleReads} stale), ${result.faults} faults, ${result.mapsWritten} maps, ` +
          `${result.partitionsSynced} partitions streamed, ${result.entriesRepaired} entries repaired`,
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

if (import.meta.main) await main();
