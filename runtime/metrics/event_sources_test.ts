/**
 * The replicated-state sources over a real KvState: records written through the model's codec, applied by the
 * state machine, and the KV events it produced handed to the sources as the node does. Only real transitions
 * become events (a rewrite with the same state, an artifact's holders changing, a target's backoff changing are
 * not); a snapshot install rebuilds the caches silently.
 */

import assert from "node:assert/strict";
import { createLogger, type NodeId } from "../core/mod.ts";
import { type KvEvent, KvState } from "../kv/mod.ts";
import { encodeEntry, kvKeys } from "../model/mod.ts";
import { type ClusterEvent, EventBus } from "./events.ts";
import { EVENTS_CHANNEL, startEventSources } from "./event_sources.ts";

/** A single-member node's view: a real KvState, and a mesh with no peers (membership is tested on processes). */
function harness() {
  const state = new KvState();
  const bus = new EventBus({ node: "n1", clock: { now: () => 1_000 } });
  const seen: ClusterEvent[] = [];
  bus.subscribe((e) => seen.push(e));
  let kvListener: (events: readonly KvEvent[]) => void = () => {};
  let resetListener: () => void = () => {};
  const relayed: unknown[] = [];
  let relayHandler: (from: NodeId, message: unknown) => void = () => {};
  const sources = startEventSources({
    self: "n1",
    members: ["n1"],
    bus,
    log: createLogger({ level: "error" }),
    mesh: {
      onPeerUp: () => () => {},
      onPeerDown: () => () => {},
      onMessage: (channel, handler) => {
        assert.equal(channel, EVENTS_CHANNEL);
        relayHandler = handler;
        return () => {};
      },
      broadcast: (_channel, message) => {
        relayed.push(message);
        return [];
      },
      isConnected: () => false,
      peerStats: () => ({ framesIn: 0 }),
    },
    kv: {
      range: (p) => state.range(p),
      get: (k) => state.get(k),
      onEvents: (listener) => {
        kvListener = listener;
        return () => {};
      },
      onReset: (listener) => {
        resetListener = listener;
        return () => {};
      },
    },
  });
  const write = (key: string, value: unknown) => {
    const events: KvEvent[] = [];
    state.apply({ type: "put", key, value: encodeEntry(key, value) }, events);
    kvListener(events);
  };
  const remove = (key: string) => {
    const events: KvEvent[] = [];
    state.apply({ type: "delete", key }, events);
    kvListener(events);
  };
  const types = () => seen.map((e) => `${e.type} ${e.subject}`);
  return {
    state,
    bus,
    seen,
    types,
    write,
    remove,
    relayed,
    relay: (m: unknown) => relayHandler("n2", m),
    reset: () => resetListener(),
    sources,
  };
}

const COORDS = "org.example:orders:1.0.0";

Deno.test("event sources: instance lifecycle transitions, only when the state changes", () => {
  const h = harness();
  try {
    const key = kvKeys.instance("n2", COORDS, 0);
    h.write(key, { state: "LOAD", updatedAt: 1 });
    h.write(key, { state: "LOADING", updatedAt: 2, deadline: 99 });
    h.write(key, { state: "LOADING", updatedAt: 3, deadline: 100 });
    h.write(key, { state: "FAILED", updatedAt: 4, reason: "boom" });
    h.remove(key);
    assert.deepEqual(h.types(), [
      "instance.state n2/org.example:orders:1.0.0/0",
      "instance.state n2/org.example:orders:1.0.0/0",
      "instance.state n2/org.example:orders:1.0.0/0",
      "instance.removed n2/org.example:orders:1.0.0/0",
    ]);
    assert.deepEqual(h.seen.map((e) => [e.details.from, e.details.to]), [
      [null, "LOAD"],
      ["LOAD", "LOADING"],
      ["LOADING", "FAILED"],
      ["FAILED", undefined],
    ]);
    assert.equal(h.seen[2].details.reason, "boom");
    assert.deepEqual(
      { node: h.seen[0].details.node, slice: h.seen[0].details.slice, version: h.seen[0].details.version },
      { node: "n2", slice: "org.example:orders", version: "1.0.0" },
    );
  } finally {
    h.sources.stop();
  }
});

Deno.test("event sources: targets (count and version, not backoff), routing, leader, alert rules", () => {
  const h = harness();
  try {
    const target = { version: "1.0.0", instances: 2, owners: [], updatedAt: 1 };
    h.write(kvKeys.target("org.example:orders"), target);
    h.write(kvKeys.target("org.example:orders"), {
      ...target,
      updatedAt: 2,
      backoff: { failures: 1, retryAt: 5 },
    });
    h.write(kvKeys.target("org.example:orders"), { ...target, instances: 4, updatedAt: 3 });
    const routing = { oldVersion: "1.0.0", newVersion: "1.1.0", oldWeight: 90, newWeight: 10, updatedAt: 4 };
    h.write(kvKeys.routing("org.example:orders"), routing);
    h.write(kvKeys.routing("org.example:orders"), { ...routing, updatedAt: 5 });
    h.write(kvKeys.leader(), { nodeId: "n1", view: 1, electedAt: 6 });
    h.write(kvKeys.leader(), { nodeId: "n1", view: 1, electedAt: 7 });
    h.write(kvKeys.leader(), { nodeId: "n3", view: 2, electedAt: 8 });
    const rule = { metric: "node_cpu", op: ">", threshold: 0.9, forMs: 0, severity: "warning", updatedAt: 9 };
    h.write(kvKeys.threshold("cpu"), rule);
    h.write(kvKeys.threshold("cpu"), { ...rule, updatedAt: 10 });
    h.remove(kvKeys.threshold("cpu"));
    h.remove(kvKeys.target("org.example:orders"));
    assert.deepEqual(h.types(), [
      "target.changed org.example:orders",
      "target.changed org.example:orders",
      "routing.changed org.example:orders",
      "leader.changed n1",
      "leader.changed n3",
      "alert.rule-changed cpu",
      "alert.rule-removed cpu",
      "target.removed org.example:orders",
    ]);
    assert.deepEqual(h.seen[1].details.previous, { version: "1.0.0", instances: 2 });
    assert.equal(h.seen[1].details.instances, 4);
    assert.deepEqual(h.seen[4].details, { leader: "n3", previous: "n1", view: 2 });
  } finally {
    h.sources.stop();
  }
});

Deno.test("event sources: a snapshot install rebuilds the caches without events", () => {
  const h = harness();
  try {
    const key = kvKeys.instance("n2", COORDS, 0);
    h.write(key, { state: "ACTIVE", updatedAt: 1 });
    // The state changes behind the sources' back (as a snapshot install does), then they are told.
    h.state.apply({ type: "put", key, value: encodeEntry(key, { state: "DEACTIVATE", updatedAt: 2 }) });
    h.reset();
    h.write(key, { state: "DEACTIVATE", updatedAt: 3 });
    h.write(key, { state: "DEACTIVATING", updatedAt: 4 });
    assert.deepEqual(h.seen.map((e) => [e.details.from, e.details.to]), [[null, "ACTIVE"], [
      "DEACTIVATE",
      "DEACTIVATING",
    ]]);
  } finally {
    h.sources.stop();
  }
});

Deno.test("event sources: everywhere events go out over the mesh; relayed ones land with their origin", () => {
  const h = harness();
  try {
    h.bus.publish({
      type: "controller.decision",
      subject: "org.example:orders",
      details: { to: 4 },
      everywhere: true,
    });
    h.bus.publish({ type: "node.down", subject: "n2" });
    assert.deepEqual(h.relayed, [{
      type: "controller.decision",
      subject: "org.example:orders",
      details: { to: 4 },
      time: 1_000,
    }]);
    h.relay({ type: "alert.firing", subject: "cpu/n2", details: { alert: { id: "cpu/n2" } }, time: 500 });
    h.relay({ type: "Bad Type", subject: "x", details: {}, time: 1 });
    h.relay("not an event");
    const last = h.seen.at(-1)!;
    assert.equal(last.type, "alert.firing");
    assert.equal(last.origin, "n2");
    assert.equal(last.node, "n1");
    assert.equal(last.time, 500);
    assert.equal(h.seen.length, 3, "malformed relayed events are dropped");
  } finally {
    h.sources.stop();
  }
});
