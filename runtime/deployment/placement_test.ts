/**
 * Cordon, drain and placement rules in the cluster deployment manager (the leader's reducer), over a real
 * KvState with the node side played step by step.
 */
import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { KvState } from "../kv/mod.ts";
import {
  type CordonRecord,
  decodeValue,
  encodeValue,
  type InstanceRecord,
  kvKeys,
  type LifecycleState,
  parseNodeLabels,
  type TargetRecord,
} from "../model/mod.ts";
import type { SliceManifest } from "../../slices/host.ts";
import { pendingReasons } from "./status.ts";
import { validateBlueprint } from "./blueprint.ts";
import {
  ClusterDeploymentManager,
  type ClusterManagerOutput,
  isWriteOk,
  type WriteResult,
} from "./cluster_manager.ts";
import type { MemberStatus } from "./view.ts";
import { planBlueprintSource } from "./targets.ts";
import { applyCommand, manifest, membersOf, publish, putTarget, setLeader } from "./_testing.ts";

const A = manifest("g:a:1.0.0", { methods: ["get"] });
const B = manifest("g:b:1.0.0", { methods: ["run"] });
const NEXT: Partial<Record<LifecycleState, LifecycleState | "gone">> = {
  LOAD: "LOADED",
  ACTIVATE: "ACTIVE",
  DEACTIVATE: "LOADED",
  UNLOAD: "gone",
};

class Cluster {
  readonly kv = new KvState();
  cdm: ClusterDeploymentManager;
  members: MemberStatus[];
  now = 1_000;
  waiting: string[] = [];
  #results: WriteResult[] = [];

  constructor(nodes: string[], manifests: SliceManifest[]) {
    this.members = membersOf(nodes);
    publish(this.kv, ...manifests);
    setLeader(this.kv, nodes[0]);
    this.cdm = new ClusterDeploymentManager(nodes[0], { rebalance: true });
  }

  target(base: string, instances: number, extra: Partial<TargetRecord> = {}): void {
    putTarget(this.kv, base, { version: "1.0.0", instances, owners: [], updatedAt: 0, ...extra });
  }

  labels(node: string, labels: Record<string, string>): void {
    const value = encodeValue("nodeLabels", { labels, updatedAt: this.now });
    applyCommand(this.kv, { type: "put", key: kvKeys.nodeLabels(node), value });
  }

  cordon(node: string, mode: CordonRecord["mode"]): void {
    const value = encodeValue("cordon", { mode, since: this.now });
    applyCommand(this.kv, { type: "put", key: kvKeys.cordon(node), value });
  }

  uncordon(node: string): void {
    applyCommand(this.kv, { type: "delete", key: kvKeys.cordon(node) });
  }

  tick(): ClusterManagerOutput {
    this.now += 10;
    const out = this.cdm.step({
      kv: this.kv,
      members: this.members,
      nowMs: this.now,
      results: this.#results,
    });
    this.#results = out.commands.map((c) => ({ id: c.id, ok: isWriteOk(applyCommand(this.kv, c.command)) }));
    this.waiting = out.waiting;
    return out;
  }

  /** One node-side transition of one instance (the first in key order), so every intermediate state is seen. */
  nodeStep(): boolean {
    for (const e of this.kv.range("instances/")) {
      const r = decodeValue("instance", e.value);
      const to = NEXT[r.state];
      if (!to) continue;
      if (to === "gone") applyCommand(this.kv, { type: "delete", key: e.key });
      else {
        const record: InstanceRecord = { ...r, state: to, updatedAt: this.now };
        delete record.deadline;
        applyCommand(this.kv, { type: "put", key: e.key, value: encodeValue("instance", record) });
      }
      return true;
    }
    return false;
  }

  /** Runs leader and nodes until quiet; `check` runs after every single change. */
  settle(check: () => void = () => {}, maxRounds = 500): void {
    for (let round = 0; round < maxRounds; round++) {
      const out = this.tick();
      check();
      const moved = this.nodeStep();
      check();
      if (!moved && out.commands.length === 0 && this.tick().commands.length === 0) return;
    }
    assert.fail(`did not settle: ${this.instances().join(", ")}`);
  }

  instances(): string[] {
    return this.kv.range("instances/").map((e) => {
      const [, node, coordinates, n] = e.key.split("/");
      return `${node}/${coordinates.split(":")[1]}/${n} ${decodeValue("instance", e.value).state}`;
    });
  }

  active(base: string, node?: string): number {
    return this.kv.range("instances/").filter((e) => {
      const [, n, coordinates] = e.key.split("/");
      return coordinates.startsWith(`${base}:`) && (node === undefined || n === node) &&
        decodeValue("instance", e.value).state === "ACTIVE";
    }).length;
  }

  on(node: string): number {
    return this.kv.range(`instances/${node}/`).length;
  }
}

Deno.test("drain: every instance leaves the node, each replacement ACTIVE before the old one goes", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A, B]);
  c.target("g:a", 3, { minAvailable: "3" });
  c.target("g:b", 2);
  c.settle();
  assert.equal(c.active("g:a"), 3);
  const onN3 = c.on("n3");
  assert.ok(onN3 > 0, "n3 carries instances before the drain");
  c.cordon("n3", "drain");
  let lowest = Infinity;
  c.settle(() => {
    lowest = Math.min(lowest, c.active("g:a"));
    assert.ok(c.active("g:a") >= 3, `g:a fell below its budget: ${c.instances().join(", ")}`);
    assert.ok(c.active("g:b") >= 2, `g:b fell below its count: ${c.instances().join(", ")}`);
  });
  assert.equal(lowest, 3);
  assert.equal(c.on("n3"), 0, c.instances().join(", "));
  assert.equal(c.active("g:a"), 3);
  assert.equal(c.active("g:b"), 2);
  // Still cordoned: nothing comes back after a scale-up, and rebalancing leaves it empty.
  c.target("g:a", 5, { minAvailable: "3" });
  c.settle();
  assert.equal(c.on("n3"), 0);
  assert.equal(c.active("g:a"), 5);
  // Uncordoned: rebalancing brings instances back to it.
  c.uncordon("n3");
  c.settle();
  assert.ok(c.on("n3") > 0, c.instances().join(", "));
});

Deno.test("drain: moves one instance at a time (never two moves in flight)", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A]);
  c.target("g:a", 6);
  c.settle();
  c.cordon("n1", "drain");
  c.settle(() => {
    const loading = c.instances().filter((i) => / LOAD(ED)?$| ACTIVATE$/.test(i) && !i.startsWith("n1/"));
    assert.ok(loading.length <= 1, `more than one replacement at once: ${c.instances().join(", ")}`);
  });
  assert.equal(c.on("n1"), 0);
  assert.equal(c.active("g:a"), 6);
});

Deno.test("drain: a new leader carries on from KV alone", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A]);
  c.target("g:a", 3);
  c.settle();
  c.cordon("n2", "drain");
  for (let k = 0; k < 3; k++) {
    c.tick();
    c.nodeStep();
  }
  assert.ok(c.on("n2") > 0, "the drain is still under way when the leader changes");
  setLeader(c.kv, "n3", 2);
  c.cdm = new ClusterDeploymentManager("n3", { rebalance: true });
  c.settle(() => assert.ok(c.active("g:a") >= 3 || c.instances().some((i) => i.startsWith("n2/"))));
  assert.equal(c.on("n2"), 0);
  assert.equal(c.active("g:a"), 3);
});

Deno.test("cordon: no new instances on the node, its own stay, and it is the first to shrink", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A]);
  c.target("g:a", 3);
  c.settle();
  c.cordon("n2", "cordon");
  c.target("g:a", 6);
  c.settle();
  assert.equal(c.on("n2"), 1, c.instances().join(", "));
  c.target("g:a", 2);
  c.settle();
  assert.equal(c.on("n2"), 0, c.instances().join(", "));
  assert.equal(c.active("g:a"), 2);
});

Deno.test("cordon: every node cordoned: the slice waits and says why", () => {
  const c = new Cluster(["n1", "n2"], [A]);
  c.cordon("n1", "cordon");
  c.cordon("n2", "cordon");
  c.target("g:a", 1);
  c.tick();
  assert.equal(c.on("n1") + c.on("n2"), 0);
  assert.ok(c.waiting.some((w) => w.includes("every live node is cordoned")), c.waiting.join("; "));
});

Deno.test("placement: require puts instances only on nodes with the labels; none: pending with the reason", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A, B]);
  c.labels("n1", { disk: "hdd" });
  c.labels("n2", { disk: "ssd" });
  c.labels("n3", { disk: "ssd", zone: "b" });
  c.target("g:a", 4, { placement: { require: { disk: "ssd" } } });
  c.target("g:b", 1, { placement: { require: { gpu: "yes" } } });
  c.settle();
  assert.equal(c.active("g:a", "n1"), 0);
  assert.equal(c.active("g:a"), 4);
  assert.equal(c.active("g:a", "n2"), 2);
  assert.equal(c.active("g:b"), 0);
  assert.ok(
    c.waiting.some((w) =>
      w.includes("g:b:1.0.0: cannot place 1 instance(s): no schedulable node has the labels gpu=yes")
    ),
    c.waiting.join("; "),
  );
});

Deno.test("placement: spread over a label puts instances in every zone first", () => {
  const c = new Cluster(["n1", "n2", "n3", "n4"], [A]);
  c.labels("n1", { zone: "a" });
  c.labels("n2", { zone: "a" });
  c.labels("n3", { zone: "b" });
  c.labels("n4", { zone: "c" });
  // Without the rule the lowest ids win (n1, n2, n3); with it, zones a, b and c get one each.
  c.target("g:a", 3, { placement: { spread: "zone" } });
  c.settle();
  assert.equal(c.active("g:a", "n1") + c.active("g:a", "n2"), 1, c.instances().join(", "));
  assert.equal(c.active("g:a", "n3"), 1);
  assert.equal(c.active("g:a", "n4"), 1);
  // A zone's node dies: its replacement goes to the zone that lost it... unless none is left there.
  c.members = c.members.map((m) => m.id === "n4" ? { ...m, connected: false, sinceMs: c.now } : m);
  c.now += 10_000;
  c.settle();
  assert.equal(c.active("g:a"), 3);
  assert.equal(c.active("g:a", "n3"), 1, "zone b keeps its instance");
  assert.equal(c.active("g:a", "n1") + c.active("g:a", "n2"), 2);
});

Deno.test("drain honours placement: the instance moves only to a node with the required labels", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A]);
  c.labels("n1", { disk: "ssd" });
  c.labels("n2", { disk: "hdd" });
  c.labels("n3", { disk: "ssd" });
  c.target("g:a", 2, { placement: { require: { disk: "ssd" } } });
  c.settle();
  c.cordon("n3", "drain");
  c.settle();
  assert.equal(c.active("g:a", "n1"), 2, c.instances().join(", "));
  assert.equal(c.on("n2"), 0);
  // With n1 cordoned too, nothing is left to take it: the drain waits and says so.
  c.uncordon("n3");
  c.settle();
  c.cordon("n1", "drain");
  c.cordon("n3", "drain");
  c.settle();
  assert.equal(c.active("g:a"), 2, "nothing stops while there is nowhere to go");
  assert.ok(
    c.waiting.some((w) => w.includes("cannot move off n1 (node n1 is draining)")),
    c.waiting.join("; "),
  );
});

Deno.test("blueprint placement: the rule goes into the target, is dropped with it, and bad rules name their line", () => {
  const kv = new KvState();
  publish(kv, manifest("shop:orders:1.0.0"));
  const source = (placement: string) =>
    `id = "shop:app:1.0.0"\n[[slices]]\nartifact = "shop:orders:1.0.0"\ninstances = 3\n${placement}\n`;
  const apply = (text: string, nowMs: number) => {
    const result = applyCommand(kv, planBlueprintSource(kv, text, nowMs).command);
    assert.ok(result.ok && result.succeeded !== false, JSON.stringify(result));
  };
  const placement = () => decodeValue("target", kv.get(kvKeys.target("shop:orders"))!.value).placement;
  apply(source(`placement = { spread = "zone", require = { disk = "ssd" } }`), 1);
  assert.deepEqual(placement(), { spread: "zone", require: { disk: "ssd" } });
  apply(source(""), 2);
  assert.equal(placement(), undefined);
  for (
    const [bad, pattern] of [
      [`placement = { spread = "Zone" }`, /line 5.*placement\.spread: must be a label name/],
      [`placement = { require = { disk = 1 } }`, /line 5.*placement\.require\.disk: must be a label/],
      [`placement = { near = "x" }`, /line 5.*placement\.near: is not a placement rule/],
      [`placement = "zone"`, /line 5.*placement: must be a table/],
    ] as const
  ) {
    assert.throws(
      () => planBlueprintSource(kv, source(bad), 3),
      (e: unknown) => e instanceof AetherError && pattern.test(e.message),
      bad,
    );
  }
});

Deno.test("node labels: --labels text parses, and a bad pair is named", () => {
  assert.deepEqual(parseNodeLabels("zone=a, disk=ssd"), { zone: "a", disk: "ssd" });
  assert.deepEqual(parseNodeLabels(""), {});
  assert.throws(() => parseNodeLabels("zone"), /--labels: "zone" is not name=value/);
  assert.throws(() => parseNodeLabels("Zone=a"), /--labels: "Zone=a" is not name=value/);
  assert.throws(() => parseNodeLabels("zone=a,zone=b"), /label "zone" is given twice/);
});

Deno.test("placement: a new require rule moves instances off nodes that lack the labels, one at a time", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A]);
  c.labels("n1", { disk: "hdd" });
  c.labels("n2", { disk: "hdd" });
  c.labels("n3", { disk: "ssd" });
  c.target("g:a", 3);
  c.settle();
  assert.equal(c.active("g:a", "n3"), 1);
  c.target("g:a", 3, { placement: { require: { disk: "ssd" } } });
  c.settle(() => assert.ok(c.active("g:a") >= 3, `g:a fell below its count: ${c.instances().join(", ")}`));
  assert.equal(c.active("g:a", "n3"), 3, c.instances().join(", "));
  assert.equal(c.on("n1") + c.on("n2"), 0);
});

Deno.test("pending reasons: the leader's placement lines about one slice, without its name, per version", () => {
  const waiting = [
    "g:audit:1.0.0: cannot place 2 instance(s): no schedulable node has the labels gpu=yes",
    "g:audit: cannot move off n2 (node n2 lacks gpu=yes): no schedulable node has the labels gpu=yes",
    "g:auditor:1.0.0: cannot place 1 instance(s): every node is cordoned",
    "g:audit: moves off n1 (node n1 is draining) once the slice is settled",
    "drain n1: 1 instance(s) left",
  ];
  assert.deepEqual(pendingReasons("g:audit", waiting), [
    "1.0.0: cannot place 2 instance(s): no schedulable node has the labels gpu=yes",
    "cannot move off n2 (node n2 lacks gpu=yes): no schedulable node has the labels gpu=yes",
  ]);
  assert.deepEqual(pendingReasons("g:other", waiting), []);
});

/** Nodes with an instance of `base`, sorted (repeated per instance). */
function nodesOf(c: Cluster, base: string): string[] {
  return c.kv.range("instances/").filter((e) => e.key.split("/")[2].startsWith(`${base}:`))
    .map((e) => e.key.split("/")[1]).sort();
}

Deno.test("antiAffinity keeps two slices apart, both ways, even when placed in the same step", () => {
  const c = new Cluster(["n1", "n2", "n3", "n4"], [A, B]);
  c.target("g:a", 2, { placement: { antiAffinity: ["g:b"] } });
  c.target("g:b", 2);
  c.settle();
  const a = nodesOf(c, "g:a");
  const b = nodesOf(c, "g:b");
  assert.deepEqual([a.length, b.length], [2, 2]);
  assert.deepEqual(a.filter((n) => b.includes(n)), [], `apart: a on ${a}, b on ${b}`);
  // b declares nothing, yet grows only onto nodes without a (a's rule names it).
  c.target("g:b", 5);
  c.settle();
  assert.equal(c.active("g:b"), 5);
  assert.deepEqual(nodesOf(c, "g:a").filter((n) => nodesOf(c, "g:b").includes(n)), []);
  // With every node running a, b cannot be placed, and the reason says why.
  const d = new Cluster(["n1", "n2"], [A, B]);
  d.target("g:a", 2, { placement: { antiAffinity: ["g:b"] } });
  d.settle();
  d.target("g:b", 1);
  d.settle();
  assert.equal(d.active("g:b"), 0);
  assert.ok(
    d.waiting.includes(
      "g:b:1.0.0: cannot place 1 instance(s): no schedulable node runs none of g:a (anti-affinity)",
    ),
    d.waiting.join("\n"),
  );
});

Deno.test("affinity co-locates a slice with another; none placed until the other runs, and the reason says so", () => {
  const c = new Cluster(["n1", "n2", "n3"], [A, B]);
  c.target("g:a", 2, { placement: { affinity: ["g:b"] } });
  c.settle();
  assert.equal(c.active("g:a"), 0);
  assert.ok(
    c.waiting.includes("g:a:1.0.0: cannot place 2 instance(s): no schedulable node runs g:b (affinity)"),
    c.waiting.join("\n"),
  );
  c.target("g:b", 1);
  c.settle();
  const b = nodesOf(c, "g:b");
  assert.deepEqual(nodesOf(c, "g:a"), [b[0], b[0]], "both instances of a beside the one of b");
  assert.equal(c.active("g:a"), 2);
});

Deno.test("blueprint affinity lists: slices without a version, no duplicates, a list", () => {
  const withPlacement = (placement: string) =>
    `id = "org.example:app:1.0.0"\n\n[[slices]]\nartifact = "org.example:a:1.0.0"\nplacement = ${placement}\n`;
  const ok = validateBlueprint(withPlacement(`{ affinity = ["g:b"], antiAffinity = ["g:c", "g:d"] }`));
  assert.ok(ok.ok);
  if (ok.ok) {
    assert.deepEqual(ok.blueprint.slices[0].placement, { affinity: ["g:b"], antiAffinity: ["g:c", "g:d"] });
  }
  const problems = (placement: string) => {
    const out = validateBlueprint(withPlacement(placement));
    return out.ok ? [] : out.problems.map((p) => p.message);
  };
  assert.deepEqual(problems(`{ affinity = ["g:b:1.0.0"] }`), [
    `slices[0].placement.affinity[0]: must be a slice "group:artifact" (no version), got the string "g:b:1.0.0"`,
  ]);
  assert.deepEqual(problems(`{ antiAffinity = ["g:b", "g:b"] }`), [
    "slices[0].placement.antiAffinity[1]: names g:b twice",
  ]);
  assert.match(problems(`{ affinity = "g:b" }`)[0], /affinity: must be a list of up to 16 slices/);
});
