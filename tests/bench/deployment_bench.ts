/**
 * Deployment reducers: CPU cost of the pure cores (no consensus, no workers).
 *
 *   deno run tests/bench/deployment_bench.ts
 *
 * 1. A blueprint of 5 slices x 3 instances on 3 nodes, from the blueprint's transaction to all 15 instances
 *    ACTIVE, with the leader's and every node's reducer running in-process, KV writes applied at once and an
 *    executor that finishes immediately: what the deployment logic itself costs on the way to the issue's
 *    "under 1 s" goal. Baseline: applying the same number of KV commands to a KvState directly.
 * 2. One leader step at scale (50 slices x 20 instances on 10 nodes, settled): baseline is reading the view
 *    alone (what any reducer over this state has to pay).
 * 3. An endpoint lookup among 2,000 endpoints: baseline is a plain Map.get.
 */

import { KvState } from "../../runtime/kv/state.ts";
import type { KvCommand } from "../../runtime/kv/commands.ts";
import { encodeValue, kvKeys } from "../../runtime/model/mod.ts";
import {
  ClusterDeploymentManager,
  EndpointRegistry,
  isWriteOk,
  NodeDeploymentManager,
  planBlueprintSource,
  ViewReader,
  type WriteResult,
} from "../../runtime/deployment/mod.ts";
import { manifest, membersOf, publish, putTarget, setLeader } from "../../runtime/deployment/testing.ts";

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Blueprint to ACTIVE

const NODES = ["n1", "n2", "n3"];
const SLICES = ["a", "b", "c", "d", "e"];
const BLUEPRINT = `id = "bench:app:1.0.0"\n` +
  SLICES.map((s) => `[[slices]]\nartifact = "bench:${s}:1.0.0"\ninstances = 3\n`).join("");

function deployOnce(): { ms: number; commands: number } {
  const kv = new KvState();
  // a <- b <- c <- d (each calls the previous), e standalone: activation must follow the chain.
  publish(
    kv,
    ...SLICES.map((s, i) =>
      manifest(`bench:${s}:1.0.0`, {
        methods: ["call", "get"],
        prefix: `/${s}`,
        routes: [["GET", "/items/{id}", "get"]],
        calls: i > 0 && s !== "e" ? { dep: [`bench:${SLICES[i - 1]}`, "^1.0.0"] } : {},
      })
    ),
  );
  setLeader(kv, "n1");
  const members = membersOf(NODES);
  const cdm = new ClusterDeploymentManager("n1");
  const ndms = NODES.map((n) => new NodeDeploymentManager(n));
  let cdmResults: WriteResult[] = [];
  const ndmResults: WriteResult[][] = NODES.map(() => []);
  const outcomes = NODES.map(() => [] as { instanceId: string; op: "load"; ok: true }[]);
  let commands = 0;
  const started = performance.now();
  const apply = (command: KvCommand) => {
    commands++;
    return isWriteOk(kv.apply(command));
  };
  apply(planBlueprintSource(kv, BLUEPRINT, 0).command);
  for (let round = 0; round < 1_000; round++) {
    const out = cdm.step({ kv, members, nowMs: round, results: cdmResults });
    cdmResults = out.commands.map((c) => ({ id: c.id, ok: apply(c.command) }));
    ndms.forEach((ndm, i) => {
      const step = ndm.step({
        kv,
        nowMs: round,
        hasQuorum: true,
        results: ndmResults[i],
        outcomes: outcomes[i],
      });
      outcomes[i] = step.actions.map((a) => ({ instanceId: a.instanceId, op: a.op, ok: true }) as never);
      ndmResults[i] = step.commands.map((c) => ({ id: c.id, ok: apply(c.command) }));
    });
    const active = kv.range("instances/").filter((e) =>
      new TextDecoder().decode(e.value).includes('"ACTIVE"')
    );
    if (active.length === 15) return { ms: performance.now() - started, commands };
  }
  throw new Error("the deployment did not finish");
}

function baselineWrites(count: number): number {
  const kv = new KvState();
  const value = encodeValue("instance", { state: "LOAD", updatedAt: 0 });
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    kv.apply({
      type: "txn",
      compare: [],
      success: [{ op: "put", key: `instances/n1/g:a:1.0.0/${i}`, value }],
      failure: [],
    });
  }
  return performance.now() - started;
}

for (let i = 0; i < 3; i++) deployOnce(); // warm up
const deployRuns = Array.from({ length: 20 }, deployOnce);
const deployMs = median(deployRuns.map((r) => r.ms));
const commands = deployRuns[0].commands;
const baselineMs = median(Array.from({ length: 20 }, () => baselineWrites(commands)));
console.log(
  `blueprint 5x3 on 3 nodes -> 15 ACTIVE (reducers only): ${
    deployMs.toFixed(2)
  } ms for ${commands} KV commands; ` +
    `baseline ${commands} plain KV writes ${baselineMs.toFixed(2)} ms; ratio ${
      (deployMs / baselineMs).toFixed(1)
    }x`,
);

// ---------------------------------------------------------------------------------------------------------------
// 2. One leader step at scale

function bigState(): KvState {
  const kv = new KvState();
  const nodes = Array.from({ length: 10 }, (_, i) => `n${i + 1}`);
  for (let s = 0; s < 50; s++) {
    publish(kv, manifest(`big:s${s}:1.0.0`, { methods: ["get", "put"] }));
    putTarget(kv, `big:s${s}`, { version: "1.0.0", instances: 20, owners: [], updatedAt: 0 });
    for (let k = 0; k < 20; k++) {
      const node = nodes[(s + k) % 10];
      const n = Math.floor(k / 10);
      kv.apply({
        type: "put",
        key: kvKeys.instance(node, `big:s${s}:1.0.0`, n),
        value: encodeValue("instance", { state: "ACTIVE", updatedAt: 0 }),
      });
      for (const m of ["get", "put"]) {
        kv.apply({
          type: "put",
          key: kvKeys.endpoint(`big:s${s}:1.0.0`, m, node, n),
          value: encodeValue("endpoint", { registeredAt: 0 }),
        });
      }
    }
  }
  setLeader(kv, "n1");
  return kv;
}

const big = bigState();
const bigMembers = membersOf(Array.from({ length: 10 }, (_, i) => `n${i + 1}`));
const leader = new ClusterDeploymentManager("n1");
const reader = new ViewReader();
const time = (fn: () => void, rounds: number) => {
  for (let i = 0; i < 20; i++) fn();
  const started = performance.now();
  for (let i = 0; i < rounds; i++) fn();
  return (performance.now() - started) / rounds;
};
const stepMs = time(() => {
  if (leader.step({ kv: big, members: bigMembers, nowMs: 0 }).commands.length !== 0) {
    throw new Error("not settled");
  }
}, 100);
const readMs = time(() => reader.read(big), 100);
console.log(
  `leader step, 1000 instances / 2000 endpoints on 10 nodes, settled: ${(stepMs * 1000).toFixed(0)} µs; ` +
    `baseline view read ${(readMs * 1000).toFixed(0)} µs; ratio ${(stepMs / readMs).toFixed(1)}x`,
);

// ---------------------------------------------------------------------------------------------------------------
// 3. Endpoint lookup

const registry = EndpointRegistry.fromKv(big);
const plain = new Map<string, unknown>();
for (let s = 0; s < 50; s++) plain.set(`big:s${s}/get`, [1]);
const LOOKUPS = 200_000;
let sink = 0;
const lookupNs = time(() => {
  for (let i = 0; i < 1000; i++) sink += registry.lookup(`big:s${i % 50}`, "get", () => true).length;
}, LOOKUPS / 1000) * 1e6 / 1000;
const mapNs = time(() => {
  for (let i = 0; i < 1000; i++) sink += (plain.get(`big:s${i % 50}/get`) as unknown[]).length;
}, LOOKUPS / 1000) * 1e6 / 1000;
console.log(
  `endpoint lookup (20 endpoints per slice+method, connectivity filter): ${lookupNs.toFixed(0)} ns; ` +
    `baseline Map.get ${mapNs.toFixed(0)} ns; ratio ${(lookupNs / mapNs).toFixed(1)}x (${
      sink > 0 ? "ok" : "?"
    })`,
);
