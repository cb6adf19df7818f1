/**
 * The simulated mesh behaves like the WebSocket mesh where the replica and the elections can tell: connections
 * come up after a handshake, a cut link is noticed by each end only after the liveness deadline (messages sent
 * meanwhile are lost), a dead process's connections close at once, and a one-link cut leaves every other link up.
 */

import assert from "node:assert/strict";
import { type NodeId, Rng, VirtualTime } from "../../core/mod.ts";
import { type Endpoint, type NetworkSettings, SimNetwork } from "./network.ts";

const SETTINGS: NetworkSettings = {
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  minDelayMs: 1,
  maxDelayMs: 1,
  maxDetourMs: 1,
  silenceDetectMs: [1000, 1000],
  closeDetectMs: [2, 2],
  connectMs: [10, 10],
};

class Peer implements Endpoint {
  incarnation = 1;
  alive = true;
  readonly events: string[] = [];
  constructor(readonly id: NodeId, readonly time: VirtualTime) {}
  deliver(from: NodeId, channel: string, message: unknown): void {
    this.events.push(`${this.time.nowMs} ${from}>${channel}:${message}`);
  }
  peerUp(peer: NodeId): void {
    this.events.push(`${this.time.nowMs} up ${peer}`);
  }
  peerDown(peer: NodeId): void {
    this.events.push(`${this.time.nowMs} down ${peer}`);
  }
}

function mesh() {
  const time = new VirtualTime();
  const peers = ["n1", "n2", "n3"].map((id) => new Peer(id, time));
  const network = new SimNetwork(new Rng(1), SETTINGS, time, peers);
  for (const peer of peers) network.started(peer);
  const runUntil = (ms: number) => {
    while ((time.nextAtMs() ?? Infinity) <= ms) time.step();
  };
  runUntil(20);
  return { time, peers, network, runUntil };
}

Deno.test("sim mesh: connections come up after the handshake; messages arrive after their delay", () => {
  const { peers, network, runUntil } = mesh();
  const [n1, n2] = peers;
  assert.ok(network.isConnected("n1", "n2") && network.isConnected("n2", "n1") && network.whole);
  assert.deepEqual(n1.events, ["10 up n2", "10 up n3"]);
  assert.equal(network.send(n1, "n2", "c", "hello"), true);
  runUntil(30);
  assert.deepEqual(n2.events.slice(-1), ["11 n1>c:hello"]);
});

Deno.test("sim mesh: a one-link cut goes unnoticed for the liveness deadline and loses what is sent meanwhile", () => {
  const { peers, network, runUntil } = mesh();
  const [n1, n2, n3] = peers;
  network.cut("n1", "n2");
  assert.ok(network.isConnected("n1", "n2"), "the cut is not noticed at once");
  assert.equal(network.send(n1, "n2", "c", "lost"), true);
  assert.equal(network.send(n1, "n3", "c", "kept"), true);
  runUntil(1009);
  assert.ok(network.isConnected("n1", "n2"));
  runUntil(1010);
  assert.ok(!network.isConnected("n1", "n2") && !network.isConnected("n2", "n1"));
  assert.ok(network.isConnected("n1", "n3") && network.isConnected("n2", "n3"), "the other links stay up");
  assert.equal(network.send(n1, "n2", "c", "refused"), false, "no connection: the send is refused");
  assert.ok(!n2.events.some((e) => e.includes("lost")));
  assert.ok(n3.events.some((e) => e.includes("n1>c:kept")));
  assert.deepEqual(n1.events.slice(-1), ["1010 down n2"]);
  network.restore("n1", "n2");
  runUntil(1100);
  assert.ok(network.isConnected("n1", "n2"));
  assert.deepEqual(n2.events.slice(-1), ["1020 up n1"]);
});

Deno.test("sim mesh: a dead process's connections close at once; cuts of one link by two faults need two restores", () => {
  const { time, peers, network, runUntil } = mesh();
  const [n1, n2] = peers;
  n2.alive = false;
  network.stopped(n2);
  runUntil(time.nowMs + 2);
  assert.ok(!network.isConnected("n1", "n2"));
  assert.deepEqual(n1.events.slice(-1), ["12 down n2"]);
  n2.alive = true;
  n2.incarnation++;
  network.started(n2);
  runUntil(100);
  assert.ok(network.isConnected("n1", "n2"));
  network.cut("n1", "n3");
  network.partition(["n1"], ["n2", "n3"]);
  network.restore("n1", "n3");
  runUntil(2000);
  assert.ok(!network.linked("n1", "n3"), "still cut by the partition");
  network.healAll();
  runUntil(2100);
  assert.ok(network.whole);
});
