import assert from "node:assert/strict";
import { KvState } from "../kv/mod.ts";
import { decodeValue, encodeValue, type InstanceRecord, kvKeys, type LifecycleState } from "../model/mod.ts";
import { isWriteOk, type WriteResult } from "./cluster_manager.ts";
import type { ExecutorAction, ExecutorCrash, ExecutorOp, ExecutorOutcome } from "./executor.ts";
import {
  NodeDeploymentManager,
  type NodeManagerOptions,
  type NodeManagerOutput,
  quorumLossDecision,
} from "./node_manager.ts";
import { applyCommand, manifest, publish } from "./_testing.ts";

const SHOP = manifest("g:shop:1.0.0", {
  methods: ["list", "buy"],
  prefix: "/shop",
  routes: [["GET", "/items", "list"], ["POST", "/items/{id}", "buy"]],
});
const KEY = "instances/n1/g:shop:1.0.0/0";
const ID = "g:shop:1.0.0/0";

class Node {
  readonly kv: KvState;
  ndm: NodeDeploymentManager;
  now = 10_000;
  #results: WriteResult[] = [];

  constructor(kv = new KvState(), options: Partial<NodeManagerOptions> = {}) {
    this.kv = kv;
    publish(this.kv, SHOP);
    this.ndm = new NodeDeploymentManager("n1", options);
  }

  /** A leader's command (or any record written by someone else). */
  command(key: string, state: LifecycleState, extra: Partial<InstanceRecord> = {}): void {
    applyCommand(this.kv, {
      type: "put",
      key,
      value: encodeValue("instance", { state, updatedAt: 1, ...extra }),
    });
  }

  step(
    input: { outcomes?: ExecutorOutcome[]; crashes?: ExecutorCrash[]; hasQuorum?: boolean } = {},
  ): NodeManagerOutput {
    const out = this.ndm.step({
      kv: this.kv,
      nowMs: this.now,
      hasQuorum: input.hasQuorum ?? true,
      outcomes: input.outcomes,
      crashes: input.crashes,
      results: this.#results,
    });
    this.#results = out.commands.map((c) => ({ id: c.id, ok: isWriteOk(applyCommand(this.kv, c.command)) }));
    return out;
  }

  /** Steps with `op` on `id` completing. */
  done(op: ExecutorOp, ok = true, id = ID): NodeManagerOutput {
    return this.step({
      outcomes: [ok ? { instanceId: id, op, ok } : { instanceId: id, op, ok, reason: `${op} broke` }],
    });
  }

  state(key = KEY): InstanceRecord | undefined {
    const entry = this.kv.get(key);
    return entry ? decodeValue("instance", entry.value) : undefined;
  }

  routeNodes(method: "GET" | "POST", path: string): string[] | undefined {
    const entry = this.kv.get(kvKeys.route(method, path));
    return entry ? decodeValue("route", entry.value).nodes : undefined;
  }

  endpoints(): string[] {
    return this.kv.range("endpoints/").map((e) => e.key);
  }

  /** LOAD and ACTIVATE with every operation succeeding. */
  activate(key = KEY, id = ID): void {
    this.command(key, "LOAD");
    this.step();
    this.done("load", true, id);
    this.command(key, "ACTIVATE");
    this.step();
    this.done("activate", true, id);
  }
}

function actions(out: NodeManagerOutput): string[] {
  return out.actions.map((a: ExecutorAction) => `${a.op} ${a.instanceId}`);
}

Deno.test("ndm: LOAD starts loading and reports LOADING, then LOADED; deadlines on in-progress states only", () => {
  const node = new Node(undefined, { loadingMs: 5_000 });
  node.command(KEY, "LOAD", { deadline: 99 });
  const out = node.step();
  assert.deepEqual(actions(out), [`load ${ID}`]);
  assert.deepEqual(out.actions[0].artifact, "g:shop:1.0.0");
  assert.equal(node.state()!.state, "LOADING");
  assert.equal(node.state()!.deadline, node.now + 5_000);
  assert.deepEqual(actions(node.step()), [], "nothing more while it loads");
  node.done("load");
  assert.deepEqual(node.state(), { state: "LOADED", updatedAt: node.now });
  assert.deepEqual(node.ndm.instances.map((i) => [i.instanceId, i.state]), [[ID, "LOADED"]]);
});

Deno.test("ndm: ACTIVE is written with an endpoint per method and the node's place in every route, at once", () => {
  const node = new Node();
  applyCommand(node.kv, {
    type: "put",
    key: kvKeys.route("GET", "/shop/items"),
    value: encodeValue("route", { slice: "g:shop", method: "list", nodes: ["n2"] }),
  });
  node.command(KEY, "LOAD");
  node.step();
  node.done("load");
  node.command(KEY, "ACTIVATE");
  assert.deepEqual(actions(node.step()), [`activate ${ID}`]);
  assert.equal(node.state()!.state, "ACTIVATING");
  assert.deepEqual(node.endpoints(), [], "nothing is published before the instance is ACTIVE");
  const out = node.done("activate");
  assert.equal(out.commands.length, 1, "one transaction");
  assert.equal(node.state()!.state, "ACTIVE");
  assert.deepEqual(node.endpoints(), [
    "endpoints/g:shop:1.0.0/buy/n1/0",
    "endpoints/g:shop:1.0.0/list/n1/0",
  ]);
  assert.deepEqual(node.routeNodes("GET", "/shop/items"), ["n1", "n2"]);
  assert.deepEqual(node.routeNodes("POST", "/shop/items/{id}"), ["n1"]);
});

Deno.test("ndm: DEACTIVATE withdraws endpoints and route places first, in the same write as DEACTIVATING", () => {
  const node = new Node();
  node.activate();
  node.activate("instances/n1/g:shop:1.0.0/1", "g:shop:1.0.0/1");
  node.command(KEY, "DEACTIVATE", { retiring: true });
  const out = node.step();
  assert.deepEqual(actions(out), [`deactivate ${ID}`]);
  assert.equal(out.commands.length, 1);
  assert.equal(node.state()!.state, "DEACTIVATING");
  assert.deepEqual(node.endpoints(), [
    "endpoints/g:shop:1.0.0/buy/n1/1",
    "endpoints/g:shop:1.0.0/list/n1/1",
  ]);
  assert.deepEqual(node.routeNodes("GET", "/shop/items"), ["n1"], "instance 1 still serves the route here");
  node.done("deactivate");
  assert.deepEqual(node.state(), { state: "LOADED", updatedAt: node.now, retiring: true });

  // The last instance on the last node: the route records go.
  node.command("instances/n1/g:shop:1.0.0/1", "DEACTIVATE");
  node.step();
  assert.equal(node.routeNodes("GET", "/shop/items"), undefined);
  assert.equal(node.routeNodes("POST", "/shop/items/{id}"), undefined);
  assert.deepEqual(node.endpoints(), []);
});

Deno.test("ndm: UNLOAD releases the instance and the node deletes the key", () => {
  const node = new Node();
  node.command(KEY, "LOAD");
  node.step();
  node.done("load");
  node.command(KEY, "UNLOAD");
  assert.deepEqual(actions(node.step()), [`unload ${ID}`]);
  assert.equal(node.state()!.state, "UNLOADING");
  node.done("unload");
  assert.equal(node.state(), undefined);
  assert.deepEqual(node.ndm.instances, []);
});

Deno.test("ndm: failures and crashes become FAILED with the reason; a crash withdraws the endpoints", () => {
  const node = new Node();
  node.command(KEY, "LOAD");
  node.step();
  node.done("load", false);
  assert.deepEqual([node.state()!.state, node.state()!.reason], ["FAILED", "load broke"]);
  node.command(KEY, "UNLOAD");
  node.step();
  node.done("unload");
  assert.equal(node.state(), undefined);

  node.activate();
  assert.equal(node.endpoints().length, 2);
  node.step({ crashes: [{ instanceId: ID, reason: "worker exited" }] });
  assert.deepEqual([node.state()!.state, node.state()!.reason], ["FAILED", "worker exited"]);
  assert.deepEqual(node.endpoints(), []);
  assert.equal(node.routeNodes("GET", "/shop/items"), undefined);
});

Deno.test("ndm: after a restart, records of instances the node no longer runs become FAILED (lost)", () => {
  const node = new Node();
  node.activate();
  node.ndm = new NodeDeploymentManager("n1"); // the process restarted: its workers are gone
  node.step();
  assert.equal(node.state()!.state, "FAILED");
  assert.match(node.state()!.reason!, /not running on n1 \(lost in a restart\?\)/);
  assert.equal(node.state()!.lost, true, "marked lost: the leader replaces it without backoff");
  assert.deepEqual(node.endpoints(), []);
  node.command(KEY, "UNLOAD");
  node.step();
  assert.equal(node.state(), undefined, "nothing to release: the key goes at once");
});

Deno.test("ndm: an instance whose key the leader removed is stopped and released", () => {
  const node = new Node();
  node.activate();
  applyCommand(node.kv, { type: "delete", key: KEY }); // the leader's cleanup of a departed node
  assert.deepEqual(actions(node.step()), [`deactivate ${ID}`]);
  assert.deepEqual(node.endpoints(), [], "its endpoints are withdrawn");
  assert.deepEqual(actions(node.done("deactivate")), [`unload ${ID}`]);
  node.done("unload");
  assert.deepEqual(node.ndm.instances, []);
  assert.equal(node.state(), undefined, "the key is not brought back");
});

Deno.test("ndm: a route another slice serves fails the activation, naming it", () => {
  const node = new Node();
  applyCommand(node.kv, {
    type: "put",
    key: kvKeys.route("GET", "/shop/items"),
    value: encodeValue("route", { slice: "g:other", method: "items", nodes: ["n2"] }),
  });
  node.command(KEY, "LOAD");
  node.step();
  node.done("load");
  node.command(KEY, "ACTIVATE");
  const out = node.step();
  assert.deepEqual(actions(out), []);
  assert.equal(node.state()!.state, "FAILED");
  assert.match(node.state()!.reason!, /route GET \/shop\/items is already served by g:other/);
});

Deno.test("ndm: writes compare the key's revision, so a newer command is never overwritten", () => {
  const node = new Node();
  node.command(KEY, "LOAD");
  node.step();
  node.step(); // delivers the LOADING write's result
  const out = node.ndm.step({
    kv: node.kv,
    nowMs: node.now,
    hasQuorum: true,
    outcomes: [{ instanceId: ID, op: "load", ok: true }],
  });
  assert.equal(out.commands.length, 1); // LOADED, not applied yet
  node.command(KEY, "UNLOAD"); // the leader moved on meanwhile
  assert.equal(isWriteOk(applyCommand(node.kv, out.commands[0].command)), false);
  assert.equal(node.state()!.state, "UNLOAD");
});

Deno.test("ndm: without quorum it keeps serving, starts nothing, writes nothing; it reconciles when quorum returns", () => {
  const node = new Node();
  node.activate();
  node.command("instances/n1/g:shop:1.0.0/1", "LOAD");
  const out = node.step({ hasQuorum: false });
  assert.deepEqual([out.actions, out.commands], [[], []]);
  assert.deepEqual(node.ndm.instances.map((i) => i.state), ["ACTIVE"]);
  // A crash while cut off is recorded locally and reported once quorum is back.
  node.step({ hasQuorum: false, crashes: [{ instanceId: ID, reason: "boom" }] });
  assert.equal(node.state()!.state, "ACTIVE");
  const back = node.step();
  assert.equal(node.state()!.state, "FAILED");
  assert.deepEqual(actions(back), ["load g:shop:1.0.0/1"]);
});

Deno.test("ndm: with a fence time, instances stop once quorum has been gone that long", () => {
  const node = new Node(undefined, { quorumLoss: { fenceAfterMs: 30_000 } });
  node.activate();
  let out = node.step({ hasQuorum: false });
  assert.deepEqual(out.actions, []);
  assert.equal(out.wakeAtMs, node.now + 30_000);
  node.now += 30_000;
  out = node.step({ hasQuorum: false });
  assert.deepEqual(actions(out), [`deactivate ${ID}`]);
  assert.deepEqual(out.commands, []);
  // Quorum returns while it is being stopped: the release goes on, then the record says it is gone.
  const resumed = node.step({ outcomes: [{ instanceId: ID, op: "deactivate", ok: true }] });
  assert.deepEqual(actions(resumed), [`unload ${ID}`]);
  assert.equal(node.state()!.state, "ACTIVE", "no record is written while it is still being released");
  node.step({ outcomes: [{ instanceId: ID, op: "unload", ok: true }] });
  assert.equal(node.state()!.state, "FAILED");
  assert.match(node.state()!.reason!, /not running on n1/);
  assert.deepEqual(node.endpoints(), []);
});

Deno.test("quorumLossDecision: keep serving by default; stop everything after the fence time", () => {
  const local = [{ instanceId: "a/0", state: "ACTIVE" as const }, {
    instanceId: "b/0",
    state: "LOADED" as const,
  }];
  assert.deepEqual(quorumLossDecision(local, undefined, 5, {}), {
    acceptCommands: true,
    keep: ["a/0", "b/0"],
    stop: [],
  });
  assert.deepEqual(quorumLossDecision(local, 0, 1_000_000, {}), {
    acceptCommands: false,
    keep: ["a/0", "b/0"],
    stop: [],
  });
  assert.deepEqual(quorumLossDecision(local, 100, 200, { fenceAfterMs: 500 }), {
    acceptCommands: false,
    keep: ["a/0", "b/0"],
    stop: [],
    reviewAtMs: 600,
  });
  assert.deepEqual(quorumLossDecision(local, 100, 600, { fenceAfterMs: 500 }), {
    acceptCommands: false,
    keep: [],
    stop: ["a/0", "b/0"],
  });
});
