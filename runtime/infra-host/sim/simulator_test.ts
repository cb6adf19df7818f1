import assert from "node:assert/strict";
import { DEFAULT_STORE_SIM_OPTIONS, runStoreSimulation } from "./simulator.ts";
import { describeFailure } from "./main.ts";

/** Seeds per engine; `deno run runtime/infra-host/sim/main.ts --seeds N` runs as many as wanted. */
const SEEDS = 20;

for (const engine of ["durable", "memory"] as const) {
  Deno.test(`store simulation: ${SEEDS} seeds (${engine} engine) lose no acknowledged write, count every acknowledged add once and converge`, async () => {
    const failures: string[] = [];
    let writes = 0;
    let adds = 0;
    let faults = 0;
    let synced = 0;
    let repaired = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const result = await runStoreSimulation({ ...DEFAULT_STORE_SIM_OPTIONS, seed: seed * 7919, engine });
      if (!result.ok) {
        failures.push(describeFailure(result, { nodes: DEFAULT_STORE_SIM_OPTIONS.nodes, engine }));
      }
      writes += result.acknowledgedWrites;
      adds += result.acknowledgedAdds;
      faults += result.faults;
      synced += result.partitionsSynced;
      repaired += result.entriesRepaired;
    }
    assert.deepEqual(failures, [], failures.join("\n"));
    assert.ok(writes > SEEDS * 300, `${writes} acknowledged writes`);
    // Adds to counters, each acknowledged one counted exactly once (checked per seed).
    assert.ok(adds > SEEDS * 30, `${adds} acknowledged adds`);
    assert.ok(faults > SEEDS * 2, `${faults} faults`);
    // The mechanisms under test ran: partitions were streamed to new owners, anti-entropy repaired entries.
    assert.ok(synced > SEEDS, `${synced} partitions streamed`);
    assert.ok(repaired > 0, `${repaired} entries repaired by anti-entropy`);
  });
}

Deno.test("store simulation: the same seed replays exactly, with faults, a join, failover and moves", async () => {
  const run = () => runStoreSimulation({ ...DEFAULT_STORE_SIM_OPTIONS, seed: 42, verbose: true });
  const a = await run();
  const b = await run();
  assert.equal(a.ok, true, a.failures.join("\n"));
  assert.deepEqual(a.log, b.log);
  assert.ok(a.log.some((line) => /FAULT (crash|isolate)/.test(line)), "faults happened");
  assert.ok(a.log.some((line) => /FAULT n\d joins/.test(line)), "a node joined");
  assert.ok(a.mapsWritten > 3, `the map changed ${a.mapsWritten} times`);
});

Deno.test("store simulation: a 3-node cluster (every node owns every partition) converges too", async () => {
  for (let seed = 1; seed <= 5; seed++) {
    const result = await runStoreSimulation({ ...DEFAULT_STORE_SIM_OPTIONS, seed, nodes: 3 });
    assert.equal(result.ok, true, describeFailure(result, { nodes: 3 }));
  }
});

Deno.test("store simulation: replicas 5, write quorum 3 on 7 nodes (two owners may fail at once)", async () => {
  for (let seed = 1; seed <= 5; seed++) {
    const shape = { nodes: 7, replicas: 5, writeQuorum: 3 };
    const result = await runStoreSimulation({ ...DEFAULT_STORE_SIM_OPTIONS, seed, ...shape });
    assert.equal(result.ok, true, describeFailure(result, shape));
  }
});
