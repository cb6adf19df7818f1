/**
 * The simulated storage must behave like the real one (kv/storage.ts on SQLite) wherever the replica can tell:
 * the same random sequence of commits, snapshots, installs and sync reads on both gives the same answers. And
 * its durability model: an fsync covers exactly the writes made before it started; a process crash keeps
 * every write, a power loss only the durable ones and a prefix of the rest.
 */

import assert from "node:assert/strict";
import { Rng, SimulatedTimers, VirtualTime } from "../../core/mod.ts";
import type { Batch, DecidedPhase, PhaseRecord } from "../../consensus/mod.ts";
import { ConsensusStorage, type KvCommand } from "../../kv/mod.ts";
import { type CrashKind, SimDisk, SimStorage, type StorageSettings } from "./storage.ts";

const SETTINGS: StorageSettings = {
  snapshotEveryDecisions: 8,
  retainDecisions: 3,
  fsyncMs: [1, 3],
  fsyncStallRate: 0,
  fsyncStallMs: [0, 0],
};
const encoder = new TextEncoder();

function batch(phase: number): Batch<KvCommand> | null {
  if (phase % 5 === 0) return null;
  const value = encoder.encode(`v${phase}`);
  return {
    id: `n1:1:${phase}`,
    submitter: "n1",
    createdAt: phase,
    commands: [{ type: "put", key: `k${phase % 3}`, value }],
  };
}

function record(phase: number): PhaseRecord<KvCommand> {
  return { phase, proposal: batch(phase), rounds: [{ vote1: { value: 1 } }] };
}

function simStorage(disk: SimDisk, time = new VirtualTime()): SimStorage {
  const timers = new SimulatedTimers(time, {
    onError: (e) => {
      throw e;
    },
  });
  return new SimStorage(disk, {
    timers,
    rng: new Rng(1),
    alive: () => true,
    crashHere: () => false,
    committed: () => () => {},
    snapshotSaved: () => () => {},
  });
}

/** What the replica can observe of an answer: phases and batch ids. */
function shape(
  answer: { snapshot?: { phase: number }; decisions: DecidedPhase<KvCommand>[]; lastDecided: number },
) {
  return {
    snapshot: answer.snapshot?.phase,
    decisions: answer.decisions.map((d) => `${d.phase}:${d.batch?.id ?? "-"}`),
    lastDecided: answer.lastDecided,
  };
}

Deno.test("simulated storage answers like the real storage over random commits, snapshots and installs", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aether-simstorage-" });
  try {
    for (let seed = 1; seed <= 5; seed++) {
      const real = ConsensusStorage.open<KvCommand>(`${dir}/s${seed}.sqlite`, {
        nodeId: "n1",
        members: ["n1", "n2", "n3"],
        fsync: "never",
        snapshotEveryDecisions: SETTINGS.snapshotEveryDecisions,
        retainDecisions: SETTINGS.retainDecisions,
      });
      const sim = simStorage(new SimDisk(SETTINGS));
      const rng = new Rng(seed);
      let last = 0;
      for (let step = 0; step < 300; step++) {
        const roll = rng.next();
        if (roll < 0.03) {
          // A snapshot from a peer, ahead of everything here.
          const phase = last + rng.int(1, 20);
          const snapshot = { phase, data: encoder.encode(`state@${phase}`) };
          real.commit({ installSnapshot: snapshot });
          sim.commit({ installSnapshot: snapshot });
          last = phase;
        } else {
          const count = rng.int(0, 3);
          const decisions = Array.from(
            { length: count },
            (_, i) => ({ phase: last + 1 + i, batch: batch(last + 1 + i) }),
          );
          const step = { record: record(last + count + 1), decisions, sync: false };
          real.commit(step);
          sim.commit(step);
          last += count;
        }
        assert.equal(sim.snapshotDue(), real.snapshotDue(), `snapshotDue at phase ${last} (seed ${seed})`);
        if (real.snapshotDue()) {
          const data = encoder.encode(`state@${last}`);
          real.saveSnapshot(last, data);
          sim.saveSnapshot(last, data);
        }
        const from = rng.int(0, last + 2);
        assert.deepEqual(
          shape(sim.readForSync(from, 1e9)),
          shape(real.readForSync(from, 1e9)),
          `readForSync(${from}) at phase ${last} (seed ${seed})`,
        );
      }
      const [a, b] = [sim.load(), real.load()];
      assert.deepEqual(
        { ...shape({ ...a, lastDecided: a.restored.lastDecided }), record: a.restored.record?.phase },
        { ...shape({ ...b, lastDecided: b.restored.lastDecided }), record: b.restored.record?.phase },
      );
      real.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("an fsync covers the writes made before it; a power loss keeps those and a prefix of the rest", async () => {
  const outcomes = new Set<number>();
  for (let seed = 1; seed <= 40; seed++) {
    const time = new VirtualTime();
    const disk = new SimDisk(SETTINGS);
    const storage = simStorage(disk, time);
    for (let phase = 1; phase <= 3; phase++) {
      storage.commit({ decisions: [{ phase, batch: batch(phase) }], sync: false });
    }
    let synced = false;
    const sync = storage.syncWal().then(() => synced = true);
    for (let phase = 4; phase <= 6; phase++) {
      storage.commit({ decisions: [{ phase, batch: batch(phase) }], sync: false });
    }
    while (time.step());
    await sync;
    assert.ok(synced);
    const kind: CrashKind = seed === 1 ? "process" : "power";
    disk.crash(kind, new Rng(seed));
    const after = simStorage(disk).load().restored.lastDecided;
    if (kind === "process") assert.equal(after, 6, "a process crash keeps every write");
    else assert.ok(after >= 3 && after <= 6, `a power loss kept phases up to ${after}`);
    outcomes.add(after);
  }
  assert.ok(
    outcomes.has(3) && outcomes.has(6),
    `power losses kept ${[...outcomes]}: never none or all unsynced`,
  );
});

Deno.test("a commit without sync: false is durable at once, with everything written before it", () => {
  const disk = new SimDisk(SETTINGS);
  const storage = simStorage(disk);
  storage.commit({ decisions: [{ phase: 1, batch: batch(1) }], sync: false });
  storage.commit({ installSnapshot: { phase: 10, data: encoder.encode("s") } });
  disk.crash("power", new Rng(1));
  const loaded = simStorage(disk).load();
  assert.equal(loaded.restored.lastDecided, 10);
  assert.equal(loaded.snapshot?.phase, 10);
});

Deno.test("decisions that do not follow the last decided phase are refused, like the real storage", () => {
  const storage = simStorage(new SimDisk(SETTINGS));
  storage.commit({ decisions: [{ phase: 1, batch: batch(1) }] });
  assert.throws(
    () => storage.commit({ decisions: [{ phase: 3, batch: batch(3) }] }),
    /does not follow phase 1/,
  );
});
