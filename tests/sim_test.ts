/**
 * Deterministic simulation of 1, 3 and 5 members under message loss, duplication, reordering, partitions,
 * crashes (also in the middle of carrying out effects) and restarts: agreement, no lost acknowledged write,
 * linearizability of the client history, and liveness after healing, over several hundred seeds.
 *
 * Seeds are fixed so CI is reproducible; set SIM_SEED_BASE to explore others. A failure names every failing
 * seed with the one command that replays it.
 */

import assert from "node:assert/strict";
import { runSimulation, type SimOptions, type SimResult } from "../runtime/consensus/sim/simulator.ts";
import { DEFAULT_SIM_OPTIONS } from "../runtime/consensus/sim/simulator.ts";

const SEED_BASE = Number(Deno.env.get("SIM_SEED_BASE") ?? 1);

interface Suite {
  members: number;
  faults: string;
  seeds: number;
  durationMs?: number;
}

const SUITES: Suite[] = [
  { members: 3, faults: "all", seeds: 300 },
  { members: 5, faults: "all", seeds: 200 },
  { members: 3, faults: "net", seeds: 60 },
  { members: 5, faults: "net", seeds: 40 },
  { members: 3, faults: "partition", seeds: 60 },
  { members: 5, faults: "partition", seeds: 40 },
  { members: 3, faults: "crash", seeds: 60 },
  { members: 5, faults: "crash", seeds: 40 },
  // Longer runs: deeper logs, snapshots and log truncation, many restarts per member.
  { members: 3, faults: "all", seeds: 16, durationMs: 15_000 },
  { members: 5, faults: "all", seeds: 12, durationMs: 15_000 },
  { members: 1, faults: "all", seeds: 10 },
];

function optionsOf(suite: Suite, seed: number): SimOptions {
  return {
    ...DEFAULT_SIM_OPTIONS,
    seed,
    members: suite.members,
    faults: suite.faults,
    durationMs: suite.durationMs ?? DEFAULT_SIM_OPTIONS.durationMs,
  };
}

function describe(result: SimResult, seed: number): string {
  return `seed ${seed}: ${result.failure}\n  replay: ${result.replay}`;
}

for (const suite of SUITES) {
  const label = `${suite.members}-member cluster, faults ${suite.faults}, ${suite.seeds} seeds` +
    (suite.durationMs ? `, ${suite.durationMs / 1000} s each` : "");
  Deno.test(`simulation: ${label}`, () => {
    const failures: string[] = [];
    let phases = 0;
    let completed = 0;
    let installs = 0;
    for (let seed = SEED_BASE; seed < SEED_BASE + suite.seeds; seed++) {
      const result = runSimulation(optionsOf(suite, seed));
      if (!result.ok) failures.push(describe(result, seed));
      phases += result.stats.phases;
      completed += result.stats.completed;
      installs += result.stats.snapshotInstalls;
    }
    assert.equal(failures.length, 0, `${failures.length} failing seed(s):\n${failures.join("\n")}`);
    // The runs must have done real work, or the checks above prove nothing.
    assert.ok(phases > suite.seeds * 20, `only ${phases} phases decided over ${suite.seeds} runs`);
    assert.ok(
      completed > suite.seeds * 20,
      `only ${completed} operations completed over ${suite.seeds} runs`,
    );
    if (suite.seeds >= 200) assert.ok(installs > 0, "no member ever caught up by installing a snapshot");
  });
}

Deno.test("simulation replays bit for bit: same seed, same decisions and history", () => {
  for (const [members, seed] of [[3, 11], [5, 12]]) {
    const options = optionsOf({ members, faults: "all", seeds: 1 }, seed);
    const first = runSimulation(options);
    const second = runSimulation(options);
    assert.ok(first.ok, first.failure);
    assert.equal(second.decisionHash, first.decisionHash);
    assert.equal(second.historyHash, first.historyHash);
    assert.deepEqual(second.stats, first.stats);
    const other = runSimulation({ ...options, seed: seed + 1000 });
    assert.notEqual(other.historyHash, first.historyHash, "a different seed gives a different run");
  }
});

Deno.test("every run carries the one command that replays it, with every non-default option", () => {
  const result = runSimulation({
    ...DEFAULT_SIM_OPTIONS,
    seed: 42,
    members: 5,
    faults: "net,crash",
    durationMs: 500,
  });
  assert.equal(result.replay, "deno task sim --seed 42 --members 5 --faults net,crash --duration 500");
});
