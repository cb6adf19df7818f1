import assert from "node:assert/strict";
import type { PartitionMapRecord, StoreConfigRecord, SyncReportRecord } from "../model/mod.ts";
import {
  hash32,
  nextOwnersOf,
  ownersOf,
  PARTITION_COUNT,
  partitionOf,
  planPartitionMap,
} from "./partitioning.ts";

const config: StoreConfigRecord = {
  replicas: 3,
  writeQuorum: 2,
  engine: "sqlite",
  partitions: 1024,
  createdAt: 1,
};

Deno.test("partitionOf: FNV-1a of the UTF-8 bytes, stable, within the partition count", () => {
  assert.equal(hash32(""), 0x811c9dc5);
  assert.equal(hash32("a"), 0xe40c292c); // the published FNV-1a 32 test vector
  assert.equal(hash32("é"), hash32("\u00e9"));
  const counts = new Array(PARTITION_COUNT).fill(0);
  for (let i = 0; i < 100_000; i++) counts[partitionOf(`key-${i}`)]++;
  assert.ok(
    Math.min(...counts) > 40 && Math.max(...counts) < 170,
    `spread ${Math.min(...counts)}..${Math.max(...counts)}`,
  );
});

function loads(map: PartitionMapRecord): Map<string, { owned: number; primary: number }> {
  const out = new Map<string, { owned: number; primary: number }>();
  map.owners.forEach((_, p) => {
    ownersOf(map, p).forEach((n, i) => {
      const l = out.get(n) ?? { owned: 0, primary: 0 };
      l.owned++;
      if (i === 0) l.primary++;
      out.set(n, l);
    });
  });
  return out;
}

/** Runs the planner as the leader would, every new owner reporting at once, until nothing changes. */
function settle(map: PartitionMapRecord | undefined, live: string[], maxMoving = 128): PartitionMapRecord {
  let current = map;
  for (let round = 0; round < 500; round++) {
    const reports = new Map<string, SyncReportRecord>();
    if (current) {
      for (const node of live) {
        const partitions = Object.keys(current.moving).map(Number).filter((p) =>
          nextOwnersOf(current!, p).includes(node) && !ownersOf(current!, p).includes(node)
        );
        reports.set(node, { epoch: current.epoch, partitions });
      }
    }
    const next = planPartitionMap({ config, current, live, reports, nowMs: round, maxMoving });
    if (!next) return current!;
    current = next;
  }
  throw new Error("the planner did not settle in 500 rounds");
}

Deno.test("planner: the first map spreads owners and primaries evenly", () => {
  const map = planPartitionMap({
    config,
    current: undefined,
    live: ["n1", "n2", "n3", "n4", "n5"],
    reports: new Map(),
    nowMs: 1,
    maxMoving: 8,
  })!;
  assert.equal(map.epoch, 1);
  assert.equal(map.owners.length, 1024);
  for (const [, l] of loads(map)) {
    assert.ok(Math.abs(l.owned - 1024 * 3 / 5) <= 1, JSON.stringify(l));
    assert.ok(Math.abs(l.primary - 1024 / 5) <= 1, JSON.stringify(l));
  }
  assert.ok(map.owners.every((o) => new Set(o).size === 3));
});

Deno.test("planner: a departed owner leaves at once (a replica becomes primary); the gap is refilled by a move", () => {
  const live = ["n1", "n2", "n3", "n4"];
  const first = settle(undefined, live);
  const after = planPartitionMap({
    config,
    current: first,
    live: ["n1", "n2", "n3"],
    reports: new Map(),
    nowMs: 2,
    maxMoving: 2000,
  })!;
  for (let p = 0; p < 1024; p++) {
    assert.ok(!ownersOf(after, p).includes("n4"), `partition ${p} still owned by n4`);
    const before = ownersOf(first, p);
    if (before[0] === "n4") assert.equal(ownersOf(after, p)[0], before[1], "the next owner takes over");
    if (before.includes("n4")) {
      // Refilled through a move: the new owner streams first.
      assert.equal(ownersOf(after, p).length, 2);
      assert.equal(nextOwnersOf(after, p).length, 3);
    }
  }
  const settled = settle(after, ["n1", "n2", "n3"]);
  assert.deepEqual(Object.keys(settled.moving), []);
  assert.ok(settled.owners.every((o) => o.length === 3));
});

Deno.test("planner: a move completes only when every new owner reported the partition synced at or after it began", () => {
  const first = settle(undefined, ["n1", "n2", "n3"]);
  const joined = planPartitionMap({
    config,
    current: first,
    live: ["n1", "n2", "n3", "n4"],
    reports: new Map(),
    nowMs: 3,
    maxMoving: 16,
  })!;
  const moving = Object.keys(joined.moving).map(Number);
  assert.equal(moving.length, 16, "rebalancing is bounded by maxMoving");
  const p = moving[0];
  assert.ok(nextOwnersOf(joined, p).includes("n4") && !ownersOf(joined, p).includes("n4"));
  // A stale report (an epoch before the move began) does not count.
  const stale = new Map([["n4", { epoch: joined.epoch - 1, partitions: [p] }]]);
  const still = planPartitionMap({
    config,
    current: joined,
    live: ["n1", "n2", "n3", "n4"],
    reports: stale,
    nowMs: 4,
    maxMoving: 16,
  });
  assert.ok(still === undefined || ownersOf(still, p).every((n) => n !== "n4"));
  const fresh = new Map([["n4", { epoch: joined.epoch, partitions: [p] }]]);
  const done = planPartitionMap({
    config,
    current: joined,
    live: ["n1", "n2", "n3", "n4"],
    reports: fresh,
    nowMs: 5,
    maxMoving: 16,
  })!;
  assert.ok(ownersOf(done, p).includes("n4"));
  assert.equal(done.moving[String(p)], undefined);
});

Deno.test("planner: a join rebalances to within one partition per node, primaries too", () => {
  const first = settle(undefined, ["n1", "n2", "n3"]);
  const settled = settle(first, ["n1", "n2", "n3", "n4", "n5"], 64);
  const l = [...loads(settled).values()];
  assert.equal(l.length, 5);
  const owned = l.map((x) => x.owned), primary = l.map((x) => x.primary);
  assert.ok(Math.max(...owned) - Math.min(...owned) <= 1, JSON.stringify(owned));
  assert.ok(Math.max(...primary) - Math.min(...primary) <= 1, JSON.stringify(primary));
});

Deno.test("planner: the last owner of a partition is kept even when departed (it may return with the data)", () => {
  const one: StoreConfigRecord = { ...config, replicas: 1, writeQuorum: 1 };
  const first = planPartitionMap({
    config: one,
    current: undefined,
    live: ["n1", "n2"],
    reports: new Map(),
    nowMs: 1,
    maxMoving: 8,
  })!;
  const after = planPartitionMap({
    config: one,
    current: first,
    live: ["n1"],
    reports: new Map(),
    nowMs: 2,
    maxMoving: 8,
  });
  assert.ok(after === undefined || after.owners.every((o) => o.length === 1));
  const p = first.owners.findIndex((o) => first.nodes[o[0]] === "n2");
  assert.deepEqual(ownersOf(after ?? first, p), ["n2"]);
});

Deno.test("planner: a member that rejoined (it may have restarted empty) starts its moves over", () => {
  const first = settle(undefined, ["n1", "n2", "n3"]);
  const live = ["n1", "n2", "n3", "n4"];
  const joined = planPartitionMap({
    config,
    current: first,
    live,
    reports: new Map(),
    nowMs: 3,
    maxMoving: 4,
  })!;
  const p = Number(Object.keys(joined.moving)[0]);
  const report = new Map([["n4", { epoch: joined.epoch, partitions: [p] }]]);
  const restarted = planPartitionMap({
    config,
    current: joined,
    live,
    reports: report,
    nowMs: 4,
    maxMoving: 4,
    rejoined: new Set(["n4"]),
  })!;
  assert.ok(
    !ownersOf(restarted, p).includes("n4"),
    "the report from before the rejoin does not complete the move",
  );
  assert.equal(restarted.moving[String(p)].since, joined.epoch + 1);
  const fresh = new Map([["n4", { epoch: restarted.epoch, partitions: [p] }]]);
  const done = planPartitionMap({
    config,
    current: restarted,
    live,
    reports: fresh,
    nowMs: 5,
    maxMoving: 4,
  })!;
  assert.ok(ownersOf(done, p).includes("n4"));
});
