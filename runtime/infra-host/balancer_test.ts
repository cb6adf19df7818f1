/**
 * The store balancer's liveness: when a member is counted departed (its partitions fail over) and when a new
 * leader does it. Simulated time, an in-memory map record written by compare-and-set.
 */

import assert from "node:assert/strict";
import { type NodeId, silentLogger, SimulatedTimers, VirtualTime } from "../core/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord } from "../model/mod.ts";
import { type LeaderMeta, StoreBalancer } from "./balancer.ts";
import { ownersOf } from "./partitioning.ts";

const MEMBERS: NodeId[] = ["n1", "n2", "n3"];
const PARTITIONS = 6;

function setup() {
  const time = new VirtualTime(1_000);
  const timers = new SimulatedTimers(time, { onError: (e) => assert.fail(String(e)) });
  const config: StoreConfigRecord = {
    replicas: 3,
    writeQuorum: 2,
    engine: "memory",
    partitions: PARTITIONS,
    createdAt: 1,
  };
  let map: PartitionMapRecord = {
    epoch: 1,
    nodes: MEMBERS,
    owners: Array.from({ length: PARTITIONS }, (_, p) => [p % 3, (p + 1) % 3, (p + 2) % 3]),
    moving: {},
    updatedAt: 1,
  };
  const meta: LeaderMeta = {
    stores: () => ["t"],
    config: () => config,
    map: () => map,
    createConfig: () => Promise.resolve(),
    reports: () => new Map(),
    writeSyncReport: () => Promise.resolve(),
    onChange: () => () => {},
    writeMap(_store, next, previousEpoch) {
      if (previousEpoch !== map.epoch) return Promise.reject(new Error("stale"));
      map = next;
      return Promise.resolve();
    },
  };
  const connected = new Set<NodeId>(["n2", "n3"]);
  const balancer = new StoreBalancer({
    self: "n1",
    members: MEMBERS,
    meta,
    timers,
    log: silentLogger,
    isConnected: (n) => connected.has(n),
    settings: { departAfterMs: 1_000, intervalMs: 100 },
  });
  /** Runs simulated time forward by `ms` (timers and the promises they settle). */
  const advance = async (ms: number) => {
    const until = time.nowMs + ms;
    while ((time.nextAtMs() ?? Infinity) <= until) {
      time.step();
      await Promise.resolve();
    }
    time.at(until, () => {});
    time.step();
    await new Promise((r) => setTimeout(r, 0));
  };
  const primaries = (node: NodeId) =>
    Array.from({ length: PARTITIONS }, (_, p) => ownersOf(map, p)[0]).filter((n) => n === node).length;
  return { balancer, connected, advance, map: () => map, primaries, time };
}

Deno.test("balancer: the leader fails a member over departAfterMs after it disconnected", async () => {
  const { balancer, connected, advance, primaries } = setup();
  balancer.setLeading(true);
  await advance(500);
  connected.delete("n3");
  await advance(700);
  assert.equal(primaries("n3"), 2, "not yet departed 700 ms after it went away");
  await advance(600);
  assert.equal(primaries("n3"), 0, "departed: its partitions have new primaries");
  balancer.stop();
});

Deno.test("balancer: a new leader counts the time a member has been down already (the old leader died)", async () => {
  const { balancer, connected, advance, primaries } = setup();
  // n1 follows; n3 (say, the old leader) dies, and the election takes 1.5 s.
  await advance(300);
  connected.delete("n3");
  await advance(1_500);
  balancer.setLeading(true);
  // Before, a new leader gave every disconnected member departAfterMs from its election: n3's partitions
  // waited another second for a primary.
  await advance(250);
  assert.equal(primaries("n3"), 0, "n3 departed at the new leader's first round");
  balancer.stop();
});

Deno.test("balancer: a new leader still gives a member that went away just now its grace", async () => {
  const { balancer, connected, advance, primaries } = setup();
  await advance(300);
  connected.delete("n3");
  await advance(200);
  balancer.setLeading(true);
  await advance(500);
  assert.equal(primaries("n3"), 2, "700 ms down: not departed yet");
  await advance(500);
  assert.equal(primaries("n3"), 0);
  balancer.stop();
});
