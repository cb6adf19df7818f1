import assert from "node:assert/strict";
import { type KvCommand, type KvOp, KvState } from "../kv/mod.ts";
import {
  decodeValue,
  encodeValue,
  type InstanceRecord,
  kvKeys,
  type LifecycleState,
  type RouteRecord,
  type TargetRecord,
} from "../model/mod.ts";
import type { SliceManifest } from "../../slices/host.ts";
import {
  ClusterDeploymentManager,
  type ClusterManagerOptions,
  type ClusterManagerOutput,
  DEFAULT_CLUSTER_MANAGER_OPTIONS,
  isWriteOk,
  type WriteResult,
} from "./cluster_manager.ts";
import type { MemberStatus } from "./view.ts";
import { applyCommand, manifest, membersOf, publish, putTarget, setLeader } from "./_testing.ts";

const OPTIONS: Partial<ClusterManagerOptions> = {
  departureGraceMs: 5_000,
  commandDeadlineMs: 10_000,
  stuckSlackMs: 1_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 4_000,
  backoffResetMs: 10_000,
};

/** A leader's CDM over a real KvState; `tick` steps it, applies what it emits and reports the results. */
class Harness {
  readonly kv = new KvState();
  cdm: ClusterDeploymentManager;
  now = 1_000;
  members: MemberStatus[];
  #results: WriteResult[] = [];

  constructor(
    nodes: string[],
    manifests: SliceManifest[],
    options: Partial<ClusterManagerOptions> = OPTIONS,
  ) {
    this.members = membersOf(nodes);
    publish(this.kv, ...manifests);
    setLeader(this.kv, nodes[0]);
    this.cdm = new ClusterDeploymentManager(nodes[0], options);
  }

  target(base: string, version: string, instances: number, extra: Partial<TargetRecord> = {}): void {
    putTarget(this.kv, base, { version, instances, owners: [], updatedAt: 0, ...extra });
  }

  /** One step; its commands applied in order. */
  tick(apply = true): ClusterManagerOutput {
    const out = this.cdm.step({
      kv: this.kv,
      members: this.members,
      nowMs: this.now,
      results: this.#results,
    });
    this.#results = [];
    if (apply) {
      for (const c of out.commands) {
        this.#results.push({ id: c.id, ok: isWriteOk(applyCommand(this.kv, c.command)) });
      }
    }
    return out;
  }

  /** Writes an instance record the way its node would. */
  set(key: string, state: LifecycleState, extra: Partial<InstanceRecord> = {}): void {
    const previous = this.record(key);
    const record: InstanceRecord = { state, updatedAt: this.now, ...extra };
    if (previous?.retiring) record.retiring = true;
    if (previous?.replaces) record.replaces = previous.replaces;
    applyCommand(this.kv, { type: "put", key, value: encodeValue("instance", record) });
  }

  remove(key: string): void {
    applyCommand(this.kv, { type: "delete", key });
  }

  record(key: string): InstanceRecord | undefined {
    const entry = this.kv.get(key);
    return entry ? decodeValue("instance", entry.value) : undefined;
  }

  /** `node/coordinates/n state` for every instance, sorted. */
  instances(): string[] {
    return this.kv.range("instances/").map((e) => {
      const [, node, coordinates, n] = e.key.split("/");
      return `${node}/${coordinates.split(":").slice(1).join(":")}/${n} ${
        decodeValue("instance", e.value).state
      }`;
    });
  }

  targetRecord(base: string): TargetRecord {
    return decodeValue("target", this.kv.get(kvKeys.target(base))!.value);
  }

  /** Moves every instance in `from` to `to`, as nodes would. */
  all(from: LifecycleState, to: LifecycleState): void {
    for (const e of this.kv.range("instances/")) {
      if (decodeValue("instance", e.value).state === from) this.set(e.key, to);
    }
  }

  /** Plays the node side until nothing changes: commands become results immediately. */
  settle(maxRounds = 50): void {
    for (let round = 0; round < maxRounds; round++) {
      this.tick();
      let changed = false;
      for (const e of this.kv.range("instances/")) {
        const r = decodeValue("instance", e.value);
        const next: Partial<Record<LifecycleState, LifecycleState | "gone">> = {
          LOAD: "LOADED",
          ACTIVATE: "ACTIVE",
          DEACTIVATE: "LOADED",
          UNLOAD: "gone",
        };
        const to = next[r.state];
        if (!to) continue;
        changed = true;
        if (to === "gone") this.remove(e.key);
        else this.set(e.key, to);
      }
      if (!changed && this.tick().commands.length === 0) return;
    }
    assert.fail(`did not settle in ${maxRounds} rounds: ${this.instances().join(", ")}`);
  }
}

const A = manifest("g:a:1.0.0", { methods: ["get"] });
const B = manifest("g:b:1.0.0", { methods: ["run"] });
const C = manifest("g:c:1.0.0");
const CALLER = manifest("g:caller:1.0.0", { calls: { a: ["g:a", "^1.0.0"] } });

function ops(out: ClusterManagerOutput): KvOp[] {
  return out.commands.flatMap((c) => (c.command as Extract<KvCommand, { type: "txn" }>).success);
}

function puts(out: ClusterManagerOutput): string[] {
  return ops(out).filter((o) => o.op === "put" && o.key.startsWith("instances/")).map((o) => {
    const op = o as Extract<KvOp, { op: "put" }>;
    return `${op.key.slice("instances/".length)} ${decodeValue("instance", op.value).state}`;
  });
}

Deno.test("cdm: instances spread over live nodes, one per node, in one transaction per slice", () => {
  const h = new Harness(["n1", "n2", "n3"], [A]);
  h.target("g:a", "1.0.0", 3);
  const out = h.tick();
  assert.equal(out.leader, true);
  assert.equal(out.commands.length, 1);
  assert.deepEqual(puts(out), ["n1/g:a:1.0.0/0 LOAD", "n2/g:a:1.0.0/0 LOAD", "n3/g:a:1.0.0/0 LOAD"]);
  const txn = out.commands[0].command as Extract<KvCommand, { type: "txn" }>;
  // The leader key guards every decision; new keys must still be absent.
  assert.deepEqual(txn.compare.find((c) => c.key === "leader")?.modRevision, h.kv.get("leader")!.modRevision);
  assert.ok(txn.compare.some((c) => c.key === "instances/n2/g:a:1.0.0/0" && c.modRevision === 0));
  const record = h.record("instances/n1/g:a:1.0.0/0")!;
  assert.equal(record.deadline, h.now + OPTIONS.commandDeadlineMs!);
});

Deno.test("cdm: more instances than nodes: several per node, numbered per node", () => {
  const h = new Harness(["n1", "n2"], [A]);
  h.target("g:a", "1.0.0", 5);
  assert.deepEqual(puts(h.tick()), [
    "n1/g:a:1.0.0/0 LOAD",
    "n2/g:a:1.0.0/0 LOAD",
    "n1/g:a:1.0.0/1 LOAD",
    "n2/g:a:1.0.0/1 LOAD",
    "n1/g:a:1.0.0/2 LOAD",
  ]);
});

Deno.test("cdm: a new instance goes to the node with the fewest instances overall (ties: lowest id)", () => {
  const h = new Harness(["n1", "n2", "n3"], [A, B]);
  h.target("g:b", "1.0.0", 1);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/b:1.0.0/0 ACTIVE"]);
  h.target("g:a", "1.0.0", 2);
  assert.deepEqual(puts(h.tick()), ["n2/g:a:1.0.0/0 LOAD", "n3/g:a:1.0.0/0 LOAD"]);
});

Deno.test("cdm: LOADED instances activate only when every slice they call has an ACTIVE instance in range", () => {
  const h = new Harness(["n1", "n2"], [A, manifest("g:a:2.0.0"), CALLER]);
  h.target("g:a", "2.0.0", 1);
  h.target("g:caller", "1.0.0", 1);
  h.tick();
  h.all("LOAD", "LOADED");
  // a is 2.0.0, the caller wants ^1.0.0: only a activates.
  let out = h.tick();
  assert.deepEqual(puts(out), ["n1/g:a:2.0.0/0 ACTIVATE"]);
  h.set("instances/n1/g:a:2.0.0/0", "ACTIVE");
  out = h.tick();
  assert.deepEqual(puts(out), []);
  assert.ok(
    out.waiting.some((w) =>
      /g:caller: 1 LOADED instance\(s\) wait for g:a \^1.0.0 to have an ACTIVE/.test(w)
    ),
  );
  // a moves to 1.0.0: once a 1.x instance is ACTIVE, the caller activates, comparing that instance's key.
  h.target("g:a", "1.0.0", 1);
  h.tick();
  h.all("LOAD", "LOADED");
  h.tick();
  h.set("instances/n2/g:a:1.0.0/0", "ACTIVE");
  out = h.tick();
  const activate = out.commands.find((c) => c.reason.includes("ACTIVATE instances/n2/g:caller"));
  assert.ok(activate, out.commands.map((c) => c.reason).join(" | "));
  const txn = activate.command as Extract<KvCommand, { type: "txn" }>;
  const justified = txn.compare.find((c) => c.key === "instances/n2/g:a:1.0.0/0");
  assert.equal(justified?.modRevision, h.kv.get("instances/n2/g:a:1.0.0/0")!.modRevision);
});

Deno.test("cdm: an ACTIVATE whose justifying dependency changed meanwhile does not apply", () => {
  const h = new Harness(["n1"], [A, CALLER]);
  h.target("g:a", "1.0.0", 1);
  h.target("g:caller", "1.0.0", 1);
  h.settle();
  h.set("instances/n1/g:caller:1.0.0/0", "FAILED");
  h.tick(); // UNLOAD of the failed caller
  h.remove("instances/n1/g:caller:1.0.0/0");
  h.now += 5_000;
  h.tick(); // replacement LOAD
  h.set("instances/n1/g:caller:1.0.0/0", "LOADED");
  const out = h.tick(false); // decides ACTIVATE, not applied yet
  assert.deepEqual(puts(out), ["n1/g:caller:1.0.0/0 ACTIVATE"]);
  h.set("instances/n1/g:a:1.0.0/0", "FAILED"); // the dependency fails before the decision applies
  const result = applyCommand(h.kv, out.commands[0].command);
  assert.equal(isWriteOk(result), false);
  assert.equal(h.record("instances/n1/g:caller:1.0.0/0")!.state, "LOADED");
});

Deno.test("cdm: a FAILED instance is unloaded and replaced on another node, after a growing backoff", () => {
  const h = new Harness(["n1", "n2", "n3"], [A]);
  h.target("g:a", "1.0.0", 1);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/a:1.0.0/0 ACTIVE"]);

  h.set("instances/n1/g:a:1.0.0/0", "FAILED", { reason: "worker crashed" });
  let out = h.tick();
  assert.deepEqual(puts(out), ["n1/g:a:1.0.0/0 UNLOAD"]);
  assert.equal(h.record("instances/n1/g:a:1.0.0/0")!.reason, "worker crashed");
  assert.deepEqual(h.targetRecord("g:a").backoff, {
    failures: 1,
    retryAt: h.now + 1_000,
    lastFailedNode: "n1",
    lastReason: "n1: worker crashed",
  });
  h.remove("instances/n1/g:a:1.0.0/0");

  out = h.tick();
  assert.deepEqual(puts(out), [], "no replacement during the backoff");
  assert.equal(out.wakeAtMs, h.now + 1_000);
  h.now += 1_000;
  assert.deepEqual(puts(h.tick()), ["n2/g:a:1.0.0/0 LOAD"], "replaced on another node");

  // It fails again: the next wait doubles, then stops at the maximum.
  for (const [failures, delay] of [[2, 2_000], [3, 4_000], [4, 4_000]]) {
    const key = h.kv.range("instances/")[0].key;
    h.set(key, "FAILED", { reason: "load failed" });
    h.tick();
    assert.deepEqual(h.targetRecord("g:a").backoff?.failures, failures);
    assert.equal(h.targetRecord("g:a").backoff?.retryAt, h.now + delay);
    assert.notEqual(h.targetRecord("g:a").backoff?.lastFailedNode, undefined);
    h.remove(key);
    h.now += delay;
    const placed = puts(h.tick());
    assert.equal(placed.length, 1);
    assert.ok(!placed[0].startsWith(key.split("/")[1] + "/"), `${placed[0]} avoids ${key}`);
  }
  // Healthy long enough: the failures are forgotten.
  h.settle();
  h.now += 10_000;
  h.tick();
  assert.equal(h.targetRecord("g:a").backoff, undefined);
});

Deno.test("cdm: a lost instance (its node restarted) is replaced at once, without backoff", () => {
  const h = new Harness(["n1", "n2", "n3"], [A]);
  h.target("g:a", "1.0.0", 1);
  h.settle();
  h.set("instances/n1/g:a:1.0.0/0", "FAILED", { reason: "not running on n1", lost: true });
  assert.deepEqual(
    puts(h.tick()),
    ["n1/g:a:1.0.0/0 UNLOAD", "n1/g:a:1.0.0/1 LOAD"],
    "unloaded and replaced in the same step (n1 is live again and runs none of g:a)",
  );
  assert.equal(h.targetRecord("g:a").backoff, undefined, "a restart is not the slice's failure");
});

Deno.test("cdm: an instance that crashed during calls is replaced at once; the request is reported, the slice never backs off", () => {
  const h = new Harness(["n1", "n2", "n3"], [A]);
  h.target("g:a", "1.0.0", 3);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/a:1.0.0/0 ACTIVE", "n2/a:1.0.0/0 ACTIVE", "n3/a:1.0.0/0 ACTIVE"]);
  // One request crashes two instances (the invoker's one retry), another request one more.
  h.set("instances/n1/g:a:1.0.0/0", "FAILED", {
    reason: "the slice called Deno.exit(1)",
    crashedBy: ["req-1"],
  });
  h.set("instances/n2/g:a:1.0.0/0", "FAILED", {
    reason: "the slice called Deno.exit(1)",
    crashedBy: ["req-1"],
  });
  h.set("instances/n3/g:a:1.0.0/0", "FAILED", { reason: "out of memory", crashedBy: ["req-2", "req-3"] });
  const startedAt = h.now;
  assert.deepEqual(puts(h.tick()), [
    "n1/g:a:1.0.0/0 UNLOAD",
    "n2/g:a:1.0.0/0 UNLOAD",
    "n3/g:a:1.0.0/0 UNLOAD",
    "n1/g:a:1.0.0/1 LOAD",
    "n2/g:a:1.0.0/1 LOAD",
    "n3/g:a:1.0.0/1 LOAD",
  ], "unloaded and replaced in the same step");
  const record = h.targetRecord("g:a");
  assert.equal(record.backoff, undefined, "a crash during a call is not the slice's failure");
  assert.deepEqual(record.crashes, [
    { requestId: "req-1", count: 2, lastAt: startedAt, lastReason: "n2: the slice called Deno.exit(1)" },
    { requestId: "req-2", count: 1, lastAt: startedAt, lastReason: "n3: out of memory" },
    { requestId: "req-3", count: 1, lastAt: startedAt, lastReason: "n3: out of memory" },
  ]);

  // The same request again, every second for a minute: replaced every time, never a backoff; it moves last.
  for (let second = 0; second < 60; second++) {
    h.settle();
    h.now += 1_000;
    const key = h.kv.range("instances/")[second % 3].key;
    h.set(key, "FAILED", { reason: "the slice called Deno.exit(1)", crashedBy: ["req-1"] });
    const placed = puts(h.tick()).filter((p) => p.endsWith(" LOAD"));
    assert.equal(placed.length, 1, `second ${second}: replaced at once`);
    assert.equal(h.targetRecord("g:a").backoff, undefined);
  }
  const crashes = h.targetRecord("g:a").crashes!;
  assert.deepEqual(crashes.map((c) => [c.requestId, c.count]), [["req-2", 1], ["req-3", 1], ["req-1", 62]]);

  // The reports are bounded: the oldest requests go first.
  for (let r = 0; r < 20; r++) {
    h.settle();
    const key = h.kv.range("instances/")[0].key;
    h.set(key, "FAILED", { reason: "exit", crashedBy: [`many-${r}`] });
    h.tick();
  }
  const bounded = h.targetRecord("g:a").crashes!;
  assert.equal(bounded.length, 16);
  assert.equal(bounded[0].requestId, "many-4");
  assert.equal(bounded[15].requestId, "many-19");
});

Deno.test("cdm: a departed node loses its instances, endpoints and route places in one transaction", () => {
  const routedA = manifest("g:a:1.0.0", {
    methods: ["get", "drop"],
    prefix: "/a",
    routes: [["GET", "/", "get"], ["DELETE", "/{id}", "drop"]],
  });
  const h = new Harness(["n1", "n2", "n3"], [routedA, B]);
  h.target("g:a", "1.0.0", 3);
  h.target("g:b", "1.0.0", 1);
  h.settle();
  const put = (key: string, value: Uint8Array) => applyCommand(h.kv, { type: "put", key, value });
  for (const node of ["n1", "n2", "n3"]) {
    put(kvKeys.endpoint("g:a:1.0.0", "get", node, 0), encodeValue("endpoint", { registeredAt: 1 }));
  }
  const shared: RouteRecord = { slice: "g:a", method: "get", nodes: ["n1", "n3"] };
  const only: RouteRecord = { slice: "g:a", method: "drop", nodes: ["n3"] };
  put(kvKeys.route("GET", "/a"), encodeValue("route", shared));
  put(kvKeys.route("DELETE", "/a/{id}"), encodeValue("route", only));
  const b = h.kv.range("instances/").find((e) => e.key.includes("g:b"))!.key;
  assert.match(b, /^instances\/n1\//);

  h.members = membersOf(["n1", "n2", "n3"], { n3: h.now });
  // Suspect (within the grace period): nothing is deleted, but its instance no longer counts.
  let out = h.tick();
  assert.ok(!ops(out).some((o) => o.op === "deletePrefix"));
  assert.deepEqual(puts(out), ["n2/g:a:1.0.0/1 LOAD"], "n2 carries fewer instances than n1");
  assert.equal(out.wakeAtMs, h.now + 5_000);

  h.now += 5_000;
  out = h.tick();
  const cleanup = out.commands.filter((c) => c.reason.startsWith("node n3 departed"));
  assert.equal(cleanup.length, 1);
  assert.match(
    cleanup[0].reason,
    /removing its 1 instance\(s\), 1 endpoint\(s\) and its place in 2 route\(s\)/,
  );
  assert.equal(h.kv.range("instances/n3/").length, 0);
  assert.equal(h.kv.get(kvKeys.endpoint("g:a:1.0.0", "get", "n3", 0)), undefined);
  assert.ok(h.kv.get(kvKeys.endpoint("g:a:1.0.0", "get", "n1", 0)));
  assert.deepEqual(decodeValue("route", h.kv.get(kvKeys.route("GET", "/a"))!.value).nodes, ["n1"]);
  assert.equal(h.kv.get(kvKeys.route("DELETE", "/a/{id}")), undefined);
});

Deno.test("cdm: a node back within the grace period: the surplus that is not ACTIVE yet goes first", () => {
  const h = new Harness(["n1", "n2", "n3"], [A]);
  h.target("g:a", "1.0.0", 3);
  h.settle();
  h.members = membersOf(["n1", "n2", "n3"], { n3: h.now });
  assert.deepEqual(puts(h.tick()), ["n1/g:a:1.0.0/1 LOAD"]);
  h.set("instances/n1/g:a:1.0.0/1", "LOADED");
  h.members = membersOf(["n1", "n2", "n3"]);
  assert.deepEqual(puts(h.tick()), ["n1/g:a:1.0.0/1 UNLOAD"]);
});

Deno.test("cdm: a joining node gets a fair share by moves that add the new instance before retiring the old", () => {
  const h = new Harness(["n1", "n2", "n3"], [A]);
  h.members = membersOf(["n1", "n2", "n3"], { n3: 0 }); // n3 departed long ago
  h.target("g:a", "1.0.0", 3);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/a:1.0.0/0 ACTIVE", "n1/a:1.0.0/1 ACTIVE", "n2/a:1.0.0/0 ACTIVE"]);

  h.members = membersOf(["n1", "n2", "n3"]); // n3 joins
  let out = h.tick();
  assert.deepEqual(puts(out), ["n3/g:a:1.0.0/0 LOAD"]);
  assert.deepEqual(h.record("instances/n3/g:a:1.0.0/0")!.replaces, { node: "n1", n: 1 });
  assert.deepEqual(puts(h.tick()), [], "one move at a time, nothing stops yet");
  h.set("instances/n3/g:a:1.0.0/0", "LOADED");
  assert.deepEqual(puts(h.tick()), ["n3/g:a:1.0.0/0 ACTIVATE"]);
  h.set("instances/n3/g:a:1.0.0/0", "ACTIVE");
  out = h.tick();
  assert.deepEqual(puts(out), ["n1/g:a:1.0.0/1 DEACTIVATE"]);
  assert.equal(h.record("instances/n1/g:a:1.0.0/1")!.retiring, true);
  h.set("instances/n1/g:a:1.0.0/1", "LOADED");
  assert.deepEqual(puts(h.tick()), ["n1/g:a:1.0.0/1 UNLOAD"]);
  h.remove("instances/n1/g:a:1.0.0/1");
  assert.deepEqual(puts(h.tick()), []);
  assert.deepEqual(h.instances(), ["n1/a:1.0.0/0 ACTIVE", "n2/a:1.0.0/0 ACTIVE", "n3/a:1.0.0/0 ACTIVE"]);
});

Deno.test("cdm: rebalancing also evens total load, moving the instance placed last; never for an imbalance of one", () => {
  const h = new Harness(["n1", "n2", "n3"], [A, B, C]);
  h.members = membersOf(["n1", "n2", "n3"], { n3: 0 });
  h.target("g:a", "1.0.0", 1);
  h.target("g:b", "1.0.0", 1);
  h.target("g:c", "1.0.0", 1);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/a:1.0.0/0 ACTIVE", "n1/c:1.0.0/0 ACTIVE", "n2/b:1.0.0/0 ACTIVE"]);
  h.members = membersOf(["n1", "n2", "n3"]);
  h.settle();
  // c was placed after a on n1: a, the longer-running one, stays.
  assert.deepEqual(h.instances(), ["n1/a:1.0.0/0 ACTIVE", "n2/b:1.0.0/0 ACTIVE", "n3/c:1.0.0/0 ACTIVE"]);

  const h2 = new Harness(["n1", "n2", "n3"], [A, B]);
  h2.target("g:a", "1.0.0", 2);
  h2.target("g:b", "1.0.0", 2);
  h2.settle();
  // n1: a, b; n2: a; n3: b -> differences of one only.
  assert.equal(h2.tick().commands.length, 0);
});

Deno.test("cdm: a new leader rebuilds from KV and finishes what the old one started; the old one's writes fail", () => {
  const h = new Harness(["n1", "n2", "n3"], [A, CALLER]);
  h.target("g:a", "1.0.0", 2);
  h.target("g:caller", "1.0.0", 2);
  h.tick();
  h.all("LOAD", "LOADED");
  const stale = h.tick(false); // n1 decides, but loses leadership before its writes apply
  assert.ok(stale.commands.length > 0);
  setLeader(h.kv, "n2", 2);
  for (const c of stale.commands) assert.equal(isWriteOk(applyCommand(h.kv, c.command)), false);

  const n2 = new ClusterDeploymentManager("n2", OPTIONS);
  const out = n2.step({ kv: h.kv, members: h.members, nowMs: h.now });
  assert.equal(out.leader, true);
  assert.deepEqual(puts(out), puts(stale), "the same decisions, from KV alone");
  const old = h.cdm.step({ kv: h.kv, members: h.members, nowMs: h.now });
  assert.deepEqual([old.leader, old.commands.length], [false, 0]);
});

Deno.test("cdm: stuck states past their deadline become FAILED; stuck unloads are deleted", () => {
  const h = new Harness(["n1", "n2"], [A, B]);
  h.target("g:a", "1.0.0", 1);
  h.target("g:b", "1.0.0", 1);
  h.tick();
  applyCommand(h.kv, { type: "delete", key: kvKeys.target("g:b") }); // b is on its way out
  h.set("instances/n1/g:a:1.0.0/0", "LOADING", { deadline: h.now + 2_000 });
  h.set("instances/n2/g:b:1.0.0/0", "UNLOADING", { deadline: h.now + 2_000 });
  let out = h.tick();
  assert.equal(out.commands.length, 0);
  assert.equal(out.wakeAtMs, h.now + 2_000 + 1_000 + 1);
  h.now += 3_001;
  out = h.tick();
  assert.match(
    h.record("instances/n1/g:a:1.0.0/0")!.reason!,
    /stuck in LOADING past its deadline .* n1 did not finish/,
  );
  assert.equal(h.record("instances/n2/g:b:1.0.0/0"), undefined);
  // A command the node never takes up is stuck as well.
  const h2 = new Harness(["n1"], [A]);
  h2.target("g:a", "1.0.0", 1);
  h2.tick();
  h2.now += 11_001;
  h2.tick();
  assert.equal(h2.record("instances/n1/g:a:1.0.0/0")!.state, "FAILED");
});

Deno.test("cdm: a new version comes up first; old instances retire as new ones become ACTIVE", () => {
  const h = new Harness(["n1", "n2"], [A, manifest("g:a:1.1.0")]);
  h.target("g:a", "1.0.0", 2);
  h.settle();
  h.target("g:a", "1.1.0", 2);
  assert.deepEqual(puts(h.tick()), ["n1/g:a:1.1.0/0 LOAD", "n2/g:a:1.1.0/0 LOAD"]);
  h.all("LOAD", "LOADED");
  assert.deepEqual(puts(h.tick()), ["n1/g:a:1.1.0/0 ACTIVATE", "n2/g:a:1.1.0/0 ACTIVATE"]);
  h.set("instances/n1/g:a:1.1.0/0", "ACTIVE");
  assert.deepEqual(puts(h.tick()), ["n2/g:a:1.0.0/0 DEACTIVATE"], "one old instance per new ACTIVE one");
  h.set("instances/n2/g:a:1.1.0/0", "ACTIVE");
  assert.deepEqual(puts(h.tick()), ["n1/g:a:1.0.0/0 DEACTIVATE"]);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/a:1.1.0/0 ACTIVE", "n2/a:1.1.0/0 ACTIVE"]);
});

Deno.test("cdm: scale down and undeploy remove instances; the callers of an undeployed slice keep running", () => {
  const h = new Harness(["n1", "n2"], [A, CALLER]);
  h.target("g:a", "1.0.0", 2);
  h.target("g:caller", "1.0.0", 1);
  h.settle();
  h.target("g:caller", "1.0.0", 2);
  h.tick();
  // Scale down while one instance is still loading: the unstarted one is cancelled, not a serving one.
  h.target("g:caller", "1.0.0", 1);
  assert.deepEqual(puts(h.tick()), []);
  assert.ok(ops(h.tick()).length === 0);
  assert.deepEqual(h.instances().filter((i) => i.includes("caller")), ["n1/caller:1.0.0/0 ACTIVE"]);

  applyCommand(h.kv, { type: "delete", key: kvKeys.target("g:a") });
  const out = h.tick();
  assert.deepEqual(puts(out), ["n1/g:a:1.0.0/0 DEACTIVATE", "n2/g:a:1.0.0/0 DEACTIVATE"]);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/caller:1.0.0/0 ACTIVE"]);
  // A new caller instance loads but waits for g:a.
  h.target("g:caller", "1.0.0", 2);
  h.tick();
  h.all("LOAD", "LOADED");
  assert.deepEqual(puts(h.tick()), []);
});

Deno.test("cdm: not the leader, or without quorum: no decisions; one decision per slice in flight", () => {
  const h = new Harness(["n1", "n2"], [A]);
  h.target("g:a", "1.0.0", 1);
  const follower = new ClusterDeploymentManager("n2", OPTIONS);
  assert.deepEqual(follower.step({ kv: h.kv, members: h.members, nowMs: h.now }).commands, []);
  const out = h.cdm.step({ kv: h.kv, members: h.members, nowMs: h.now, hasQuorum: false });
  assert.deepEqual(out.commands, []);

  const first = h.cdm.step({ kv: h.kv, members: h.members, nowMs: h.now });
  assert.equal(first.commands.length, 1);
  const again = h.cdm.step({ kv: h.kv, members: h.members, nowMs: h.now });
  assert.equal(again.commands.length, 0, "the same decision is not sent twice while in flight");
  assert.equal(h.cdm.inFlight, 1);
  // A result that never comes back stops blocking after the pending timeout.
  const later = h.cdm.step({
    kv: h.kv,
    members: h.members,
    nowMs: h.now + DEFAULT_CLUSTER_MANAGER_OPTIONS.pendingTimeoutMs,
  });
  assert.equal(later.commands.length, 1);
});

// -- version routing ---------------------------------------------------------------------------------------------

const A11 = manifest("g:a:1.1.0", { methods: ["get"] });

function setRouting(
  h: Harness,
  oldWeight: number,
  newWeight: number,
  base = "g:a",
  versions = ["1.0.0", "1.1.0"],
) {
  applyCommand(h.kv, {
    type: "put",
    key: kvKeys.routing(base),
    value: encodeValue("routing", {
      oldVersion: versions[0],
      newVersion: versions[1],
      oldWeight,
      newWeight,
      updatedAt: h.now,
    }),
  });
}

function clearRouting(h: Harness, base = "g:a"): void {
  applyCommand(h.kv, { type: "delete", key: kvKeys.routing(base) });
}

Deno.test("cdm: while routing names the target version and another, both run at the target's count", () => {
  const h = new Harness(["n1", "n2", "n3"], [A, A11]);
  h.target("g:a", "1.0.0", 2);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/a:1.0.0/0 ACTIVE", "n2/a:1.0.0/0 ACTIVE"]);
  // A weight of 0 still brings the version up: the first stage of a rolling update (no traffic yet).
  setRouting(h, 1, 0);
  const out = h.tick();
  // Spread per version first, then over the slice's versions together: n3 (none of g:a yet), then n1.
  assert.deepEqual(puts(out), ["n3/g:a:1.1.0/0 LOAD", "n1/g:a:1.1.0/0 LOAD"]);
  const txn = out.commands[0].command as Extract<KvCommand, { type: "txn" }>;
  assert.equal(
    txn.compare.find((c) => c.key === kvKeys.routing("g:a"))?.modRevision,
    h.kv.get(kvKeys.routing("g:a"))!.modRevision,
    "the decision depends on the routing record it saw",
  );
  h.settle();
  assert.deepEqual(h.instances(), [
    "n1/a:1.0.0/0 ACTIVE",
    "n1/a:1.1.0/0 ACTIVE",
    "n2/a:1.0.0/0 ACTIVE",
    "n3/a:1.1.0/0 ACTIVE",
  ]);
  assert.equal(h.tick().commands.length, 0, "settled: nothing retired, nothing moved");
  // Scaling the target scales both versions.
  h.target("g:a", "1.0.0", 3);
  assert.deepEqual(puts(h.tick()), ["n3/g:a:1.0.0/0 LOAD", "n2/g:a:1.1.0/0 LOAD"]);
  h.settle();
  assert.equal(h.instances().filter((i) => i.includes("1.1.0")).length, 3);
  h.target("g:a", "1.0.0", 1);
  h.settle();
  assert.deepEqual(h.instances().map((i) => i.split("/")[1]).sort(), ["a:1.0.0", "a:1.1.0"]);
});

Deno.test("cdm: deploying the routed version stops nothing; clearing routing retires the version the target does not name", () => {
  const h = new Harness(["n1", "n2", "n3"], [A, A11]);
  h.target("g:a", "1.0.0", 2);
  setRouting(h, 3, 1);
  h.settle();
  assert.equal(h.instances().length, 4);
  // Deploy 1.1.0 while routing names both: the roles swap, nothing stops.
  h.target("g:a", "1.1.0", 2);
  assert.deepEqual(h.tick().commands.length, 0);
  assert.equal(h.instances().filter((i) => i.endsWith("ACTIVE")).length, 4);
  // The routing goes: 1.0.0 is retired through DEACTIVATE and UNLOAD.
  clearRouting(h);
  const out = h.tick();
  assert.deepEqual(puts(out).sort(), ["n1/g:a:1.0.0/0 DEACTIVATE", "n2/g:a:1.0.0/0 DEACTIVATE"]);
  assert.ok(out.commands[0].reason.includes("moves to 1.1.0"), out.commands[0].reason);
  const txn = out.commands[0].command as Extract<KvCommand, { type: "txn" }>;
  assert.ok(txn.compare.some((c) => c.key === kvKeys.routing("g:a") && c.modRevision === 0));
  h.all("DEACTIVATE", "LOADED");
  assert.deepEqual(puts(h.tick()).sort(), ["n1/g:a:1.0.0/0 UNLOAD", "n2/g:a:1.0.0/0 UNLOAD"]);
  h.settle();
  assert.deepEqual(h.instances().map((i) => i.split("/")[1]), ["a:1.1.0", "a:1.1.0"]);
});

Deno.test("cdm: clearing routing never takes the slice below the target's ACTIVE count", () => {
  const h = new Harness(["n1", "n2", "n3"], [A, A11]);
  h.target("g:a", "1.0.0", 2);
  setRouting(h, 1, 1);
  h.settle();
  // Roll back: the target stays 1.0.0, but one of its instances just failed.
  h.set("instances/n1/g:a:1.0.0/0", "FAILED", { reason: "crashed" });
  clearRouting(h);
  let out = h.tick();
  const changes = puts(out).sort();
  assert.equal(
    changes.filter((c) => c.includes("1.1.0") && c.endsWith("DEACTIVATE")).length,
    1,
    changes.join(),
  );
  assert.ok(changes.includes("n1/g:a:1.0.0/0 UNLOAD"));
  assert.equal(h.instances().filter((i) => i.includes("1.1.0") && i.endsWith("ACTIVE")).length, 1);
  h.settle(); // the replacement of the failed 1.0.0 instance waits for its backoff ...
  assert.deepEqual(h.instances().filter((i) => i.includes("1.1.0")), ["n1/a:1.1.0/0 ACTIVE"]);
  h.now += 1_000;
  out = h.tick();
  assert.deepEqual(puts(out).filter((p) => p.endsWith(" LOAD")).map((p) => p.split("/")[1]), ["g:a:1.0.0"]);
  h.all("LOAD", "LOADED");
  h.tick();
  assert.equal(h.instances().filter((i) => i.includes("1.1.0")).length, 1, "kept while 1.0.0 activates");
  h.settle(); // ... and once it is ACTIVE, the last 1.1.0 instance goes
  assert.deepEqual(h.instances().map((i) => i.split(" ")[0].split("/")[1]), ["a:1.0.0", "a:1.0.0"]);
});

Deno.test("cdm: a failing routed version backs off on its own; the target version is replaced at once", () => {
  const h = new Harness(["n1", "n2", "n3"], [A, A11]);
  h.target("g:a", "1.0.0", 1);
  setRouting(h, 3, 1);
  h.settle();
  const routedKey = h.kv.range("instances/").find((e) => e.key.includes("1.1.0"))!.key;
  h.set(routedKey, "FAILED", { reason: "bad canary" });
  h.set("instances/n1/g:a:1.0.0/0", "FAILED", { reason: "lost", lost: true });
  let out = h.tick();
  const record = h.targetRecord("g:a");
  assert.equal(record.backoff, undefined, "a lost target instance is not a failure");
  assert.deepEqual(
    { ...record.routedBackoff, retryAt: undefined },
    {
      version: "1.1.0",
      failures: 1,
      retryAt: undefined,
      lastFailedNode: routedKey.split("/")[1],
      lastReason: `${routedKey.split("/")[1]}: bad canary`,
    },
  );
  assert.ok(puts(out).some((p) => p.includes("g:a:1.0.0") && p.endsWith("LOAD")), puts(out).join());
  assert.ok(!puts(out).some((p) => p.includes("g:a:1.1.0") && p.endsWith(" LOAD")), "1.1.0 waits");
  assert.ok(out.waiting.some((w) => /g:a:1.1.0 \(routed\): backing off after 1 failure/.test(w)));
  h.remove(routedKey);
  h.remove("instances/n1/g:a:1.0.0/0");
  h.now += 1_000;
  out = h.tick();
  assert.ok(puts(out).some((p) => p.includes("g:a:1.1.0") && p.endsWith(" LOAD")), "replaced after the wait");
  h.settle();
  h.now += 10_000;
  h.tick();
  assert.equal(h.targetRecord("g:a").routedBackoff, undefined, "healthy again: forgotten");
  // A routed backoff left behind when the version is no longer routed is dropped.
  putTarget(h.kv, "g:a", {
    ...h.targetRecord("g:a"),
    routedBackoff: { version: "1.1.0", failures: 2, retryAt: 0 },
  });
  clearRouting(h);
  h.tick();
  assert.equal(h.targetRecord("g:a").routedBackoff, undefined);
});

Deno.test("cdm: routing that names neither target version is ignored, and a decision void once routing changed", () => {
  const h = new Harness(["n1", "n2"], [A, A11, manifest("g:a:2.0.0", { methods: ["get"] })]);
  h.target("g:a", "2.0.0", 1);
  setRouting(h, 1, 1);
  h.settle();
  assert.deepEqual(h.instances(), ["n1/a:2.0.0/0 ACTIVE"]);
  assert.ok(
    h.tick().waiting.some((w) => w.includes("routing names 1.0.0 and 1.1.0, not the target version 2.0.0")),
  );
  // Target 1.0.0 with routing to 1.1.0: the decision to place 1.1.0 fails if routing is cleared before it applies.
  h.target("g:a", "1.0.0", 1);
  const out = h.tick(false);
  assert.ok(puts(out).some((p) => p.includes("g:a:1.1.0")), puts(out).join());
  clearRouting(h);
  assert.equal(isWriteOk(applyCommand(h.kv, out.commands[0].command)), false);
  assert.equal(h.kv.range("instances/").filter((e) => e.key.includes("1.1.0")).length, 0);
});
