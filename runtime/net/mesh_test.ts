/** Meshes in one process over real loopback sockets: delivery, batching, input validation, backpressure. */

import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { Mesh } from "./mesh.ts";
import { createCodec } from "./codec.ts";
import { buildDataFrame, buildEntry, entryBodyBytes } from "./_frame.ts";
import {
  allConnected,
  authMessage,
  type MeshOptions,
  RawClient,
  recordingLogger,
  SECRET,
  startMeshes,
  waitFor,
} from "./_testing.ts";
import { startPartitionProxy } from "../../tests/_support/partition_proxy.ts";

const options = { sanitizeOps: true, sanitizeResources: true };
const quiet = () => recordingLogger().logger;

interface Received {
  to: string;
  from: string;
  channel: string;
  seq: number;
  blob?: Uint8Array;
}

Deno.test(
  "three meshes deliver every message in send order per pair, across channels and frames",
  options,
  async () => {
    const meshes = await startMeshes(["n1", "n2", "n3"], { logger: quiet() });
    try {
      await allConnected(meshes);
      const received: Received[] = [];
      for (const mesh of meshes) {
        for (const channel of ["a", "b"]) {
          mesh.onMessage(channel, (from, message) => {
            const m = message as { seq: number; blob?: Uint8Array };
            received.push({ to: mesh.self, from, channel, seq: m.seq, blob: m.blob });
          });
        }
      }
      const perPair = 3000;
      const before = meshes.map((m) => m.stats().peers.map((p) => p.framesOut).reduce((a, b) => a + b));
      for (let seq = 0; seq < perPair; seq++) {
        for (const mesh of meshes) {
          for (const other of meshes) {
            if (other === mesh) continue;
            // Every 50th message is 20 KB, so the 64 KiB frame target splits the burst into many frames.
            const blob = seq % 50 === 0 ? new Uint8Array(20_000).fill(seq & 0xff) : undefined;
            assert.equal(mesh.send(other.self, seq % 3 === 0 ? "b" : "a", { seq, blob }), true);
          }
        }
      }
      await waitFor(() => received.length === perPair * 6, "every message", 20_000);
      for (const to of ["n1", "n2", "n3"]) {
        for (const from of ["n1", "n2", "n3"]) {
          if (to === from) continue;
          const seqs = received.filter((r) => r.to === to && r.from === from).map((r) => r.seq);
          assert.deepEqual(
            seqs,
            Array.from({ length: perPair }, (_, i) => i),
            `${from} -> ${to} out of order`,
          );
        }
      }
      for (const r of received) {
        assert.equal(r.channel, r.seq % 3 === 0 ? "b" : "a");
        if (r.seq % 50 === 0) assert.deepEqual(r.blob, new Uint8Array(20_000).fill(r.seq & 0xff));
      }
      const after = meshes.map((m) => m.stats().peers.map((p) => p.framesOut).reduce((a, b) => a + b));
      for (const [i, mesh] of meshes.entries()) {
        const framesSent = after[i] - before[i];
        const messagesSent = mesh.stats().peers.map((p) => p.messagesOut).reduce((a, b) => a + b);
        assert.equal(messagesSent, perPair * 2);
        // 2 x 3000 messages with 6 MB of blobs: about 2 x 100 frames at 64 KiB, far fewer than one per message.
        assert.ok(framesSent > 20 && framesSent < messagesSent / 10, `${mesh.self}: ${framesSent} frames`);
      }
    } finally {
      await Promise.all(meshes.map((m) => m.stop()));
    }
  },
);

Deno.test("small messages sent in one task share a frame", options, async () => {
  const [a, b] = await startMeshes(["a", "b"], { logger: quiet(), heartbeatMs: 1000, deadAfterMs: 5000 });
  try {
    await allConnected([a, b]);
    const got: number[] = [];
    b.onMessage("v", (_from, m) => got.push((m as { phase: number }).phase));
    const framesBefore = b.peerStats("a").framesIn;
    for (let seq = 0; seq < 1000; seq++) a.send("b", "v", { t: "vote1", phase: seq, round: 1, value: 1 });
    await waitFor(() => got.length === 1000, "1000 votes");
    assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => i));
    const frames = b.peerStats("a").framesIn - framesBefore;
    assert.ok(frames <= 3, `1000 votes took ${frames} frames`);
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test(
  "with a small maxFrameBytes, messages sent together still fit the frames the peer accepts",
  options,
  async () => {
    const small = { logger: quiet(), heartbeatMs: 1000, deadAfterMs: 5000, maxFrameBytes: 4096 };
    const [a, b] = await startMeshes(["a", "b"], small);
    try {
      await allConnected([a, b]);
      const got: number[] = [];
      b.onMessage("v", (_from, m) => got.push((m as { seq: number }).seq));
      // 100 messages of about 1 KiB in one task: together far more than one 4 KiB frame.
      for (let seq = 0; seq < 100; seq++) a.send("b", "v", { seq, pad: "x".repeat(1000) });
      await waitFor(() => got.length === 100, "100 messages");
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
    } finally {
      await a.stop();
      await b.stop();
    }
  },
);

Deno.test("send reports down peers, broadcast reports whom it reached, misuse throws", options, async () => {
  const [a, b, c] = await startMeshes(["a", "b", "c"], { logger: quiet() });
  try {
    await allConnected([a, b, c]);
    const got: string[] = [];
    b.onMessage("m", (from) => got.push(`b<-${from}`));
    c.onMessage("m", (from) => got.push(`c<-${from}`));
    assert.deepEqual(a.broadcast("m", { cpu: 0.5 }).sort(), ["b", "c"]);
    await waitFor(() => got.length === 2, "broadcast delivery");
    const downs: string[] = [];
    a.onPeerDown((id, reason) => downs.push(`${id}: ${reason}`));
    await c.stop();
    await waitFor(() => !a.isConnected("c"), "a to see c go");
    assert.match(downs[0], /^c: connection closed/);
    assert.equal(a.send("c", "m", {}), false);
    assert.equal(a.peerStats("c").droppedPeerDown, 1);
    assert.deepEqual(a.broadcast("m", {}), ["b"]);
    assert.deepEqual(a.connectedPeers(), ["b"]);

    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof AetherError);
        return e.code;
      }
      return "no error";
    };
    assert.equal(code(() => a.send("zz", "m", {})), "bad_request");
    assert.equal(code(() => a.send("a", "m", {})), "bad_request");
    assert.equal(code(() => a.send("b", "bad channel", {})), "bad_request");
    assert.equal(code(() => a.send("b", "m", { n: 1n })), "bad_request");
    assert.equal(code(() => a.send("b", "m", new Uint8Array(9 * 1024 * 1024))), "too_large");
    assert.equal(code(() => a.onMessage("", () => {})), "bad_request");
    assert.equal(code(() => new Mesh({ self: "a", peers: [], secret: SECRET })), "bad_request");
    assert.equal(
      code(() =>
        new Mesh({ self: "a", peers: [{ id: "a", host: "127.0.0.1", port: 0 }], secret: new Uint8Array(4) })
      ),
      "bad_request",
    );
  } finally {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  }
});

Deno.test(
  "bad input from an authenticated peer is counted and dropped; the connection lives on",
  options,
  async () => {
    const { logger, records } = recordingLogger();
    const mesh = new Mesh({
      self: "n2",
      peers: [{ id: "n1", host: "127.0.0.1", port: 0 }, { id: "n2", host: "127.0.0.1", port: 0 }],
      secret: SECRET,
      logger,
      maxFrameBytes: 64 * 1024,
      maxQueuedBytesPerPeer: 1024 * 1024,
    });
    const got: unknown[] = [];
    mesh.onMessage("c", (_from, message) => got.push(message));
    mesh.onMessage("boom", () => {
      throw new Error("handler bug");
    });
    await mesh.start();
    const client = new RawClient(mesh.port);
    try {
      await client.receivedAtLeast(1);
      client.send(await authMessage(client, { id: "n1", to: "n2", secret: SECRET }));
      await waitFor(() => mesh.isConnected("n1"), "the raw peer to be accepted");
      const msgpack = createCodec("msgpack");
      const entry = (channel: string, payload: Uint8Array) => buildEntry(channel, payload);
      const frame = (codecId: number, ...entries: Uint8Array[]) =>
        buildDataFrame(
          codecId,
          entries,
          0,
          entries.length,
          entries.reduce((n, e) => n + entryBodyBytes(e), 0),
        );
      const good = (n: number) => entry("c", msgpack.encodeShared({ n }).slice());

      client.send("a text frame after the handshake");
      client.send(new Uint8Array([0x7f, 1, 2, 3])); // unknown frame type
      client.send(frame(9, good(0))); // unknown codec
      client.send(frame(1, good(1)).subarray(0, 7)); // truncated entry
      client.send(frame(1, entry("c", new Uint8Array([0xc1])), good(2))); // undecodable, then a good one
      client.send(frame(1, entry("nobody", msgpack.encodeShared({}).slice()), good(3))); // unknown channel
      client.send(frame(1, entry("boom", msgpack.encodeShared({}).slice()), good(4))); // throwing handler
      client.send(new Uint8Array(100 * 1024).fill(1)); // over maxFrameBytes
      client.send(frame(1, good(5)));
      await waitFor(() => got.length === 4, "the valid messages");
      assert.deepEqual(got, [{ n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
      const stats = mesh.peerStats("n1");
      assert.equal(stats.connected, true);
      assert.equal(stats.malformedFrames, 5);
      assert.equal(stats.oversizeFrames, 1);
      assert.equal(stats.unknownChannelMessages, 1);
      assert.equal(stats.handlerErrors, 1);
      assert.ok(records.some((r) => r.message === "mesh dropped bad input from a peer"));
      assert.ok(records.some((r) => r.message.startsWith("mesh message on a channel nobody handles")));
      assert.ok(records.some((r) => r.message === "mesh message handler threw"));
    } finally {
      await client.close();
      await mesh.stop();
    }
  },
);

/** Mesh a dials mesh b through a partition proxy. */
async function pairThroughProxy(aOptions: MeshOptions, bOptions: MeshOptions = aOptions) {
  const host = "127.0.0.1";
  const b = new Mesh({
    self: "b",
    peers: [{ id: "a", host, port: 0 }, { id: "b", host, port: 0 }],
    secret: SECRET,
    ...bOptions,
  });
  await b.start();
  const proxy = startPartitionProxy({ targetPort: b.port });
  const a = new Mesh({
    self: "a",
    peers: [{ id: "a", host, port: 0 }, { id: "b", host, port: proxy.port }],
    secret: SECRET,
    ...aOptions,
  });
  await a.start();
  const events: string[] = [];
  for (const mesh of [a, b]) {
    mesh.onPeerUp((id) => events.push(`${mesh.self}: up ${id}`));
    mesh.onPeerDown((id, reason) => events.push(`${mesh.self}: down ${id} (${reason})`));
  }
  const stop = async () => {
    proxy.heal();
    await a.stop();
    await b.stop();
    await proxy.close();
  };
  return { a, b, proxy, events, stop };
}

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends 16 KiB messages from a to b, yielding so the socket can write, until one is refused. */
async function fillUntilRefused(a: Mesh, nextSeq: number): Promise<number[]> {
  const payload = new Uint8Array(16 * 1024);
  const accepted: number[] = [];
  for (let seq = nextSeq;; seq++) {
    if (!a.send("b", "i", { seq, payload })) return accepted;
    accepted.push(seq);
    if (seq % 8 === 0) await delay(1);
    if (accepted.length > 20_000) throw new Error("the queue never filled: backpressure is not working");
  }
}

Deno.test(
  "backpressure: bounded queue, writable() waits for the drain, a stalled peer is cut off",
  options,
  async () => {
    const maxQueued = 1024 * 1024;
    const { a, b, proxy, events, stop } = await pairThroughProxy({
      logger: quiet(),
      maxQueuedBytesPerPeer: maxQueued,
      maxFrameBytes: 256 * 1024,
      // Only the stall policy may end the connection here, not the heartbeat.
      heartbeatMs: 1000,
      deadAfterMs: 60_000,
      stallTimeoutMs: 800,
    });
    try {
      await allConnected([a, b]);
      const got: number[] = [];
      b.onMessage("i", (_from, m) => got.push((m as { seq: number }).seq));

      // 1. The peer stops reading: the queue fills to its bound and then refuses; a writer waits; the peer
      //    resumes before the stall timeout, the waiter is released and everything accepted arrives in order.
      proxy.partition();
      const first = await fillUntilRefused(a, 0);
      let stats = a.peerStats("b");
      assert.equal(a.canSend("b"), false);
      assert.ok(
        stats.queuedBytes <= maxQueued && stats.queuedBytes > maxQueued / 2,
        `queued ${stats.queuedBytes}`,
      );
      assert.equal(stats.droppedQueueFull, 1);
      let released: boolean | undefined;
      const waiting = a.writable("b").then((ok) => released = ok);
      await delay(300);
      assert.equal(released, undefined, "writable() must wait while the queue is full");
      proxy.heal();
      assert.equal(await waiting, true);
      await waitFor(() => got.length === first.length, "the accepted messages");
      assert.deepEqual(got, first);
      assert.equal(events.filter((e) => e.includes("down")).length, 0, "a drained queue is not a stall");

      // 2. The peer stays unreadable: after stallTimeoutMs over the bound the connection is cut, the queue
      //    dropped, waiters told no, and once the path heals the dialer reconnects.
      proxy.partition();
      const second = await fillUntilRefused(a, first.length);
      const refusedAt = performance.now();
      const waiter = a.writable("b");
      await waitFor(() => !a.isConnected("b"), "the stall to cut the connection", 5000);
      const stallMs = performance.now() - refusedAt;
      assert.ok(stallMs >= 600 && stallMs < 2500, `cut after ${stallMs} ms with stallTimeoutMs 800`);
      assert.equal(await waiter, false);
      stats = a.peerStats("b");
      assert.equal(stats.stalls, 1);
      assert.equal(stats.queuedBytes, 0);
      assert.match(events.find((e) => e.startsWith("a: down"))!, /stalled: \d+ bytes queued/);
      assert.equal(a.send("b", "i", { seq: -1 }), false);
      proxy.heal();
      await waitFor(() => a.isConnected("b") && b.isConnected("a"), "the reconnect after the heal", 10_000);
      const last = first.length + second.length;
      assert.equal(a.send("b", "i", { seq: last }), true);
      await waitFor(() => got.at(-1) === last, "a message on the new connection");
      // Whatever arrived came in order; messages refused or lost with the cut connection are simply absent.
      for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], "delivery order");
    } finally {
      await stop();
    }
  },
);

Deno.test("a partition is detected on both sides within about a second and heals", options, async () => {
  const { a, b, proxy, events, stop } = await pairThroughProxy({ logger: quiet() }); // default 200 / 1000 ms
  try {
    await allConnected([a, b]);
    const downAt: Record<string, number> = {};
    a.onPeerDown(() => downAt.a ??= performance.now());
    b.onPeerDown(() => downAt.b ??= performance.now());
    const partitionedAt = performance.now();
    proxy.partition();
    await waitFor(() => downAt.a !== undefined && downAt.b !== undefined, "both sides to notice", 5000);
    for (const side of ["a", "b"]) {
      const detectedMs = downAt[side] - partitionedAt;
      console.log(`partition detected by ${side} after ${detectedMs.toFixed(0)} ms`);
      assert.ok(detectedMs >= 600 && detectedMs <= 1500, `${side} noticed after ${detectedMs} ms`);
    }
    assert.match(events.find((e) => e.startsWith("a: down"))!, /no frame for \d+ ms/);
    const healedAt = performance.now();
    proxy.heal();
    await waitFor(() => a.isConnected("b") && b.isConnected("a"), "the heal", 10_000);
    console.log(`reconnected ${(performance.now() - healedAt).toFixed(0)} ms after the heal`);
    assert.equal(events.filter((e) => e === "a: up b").length, 2);
    assert.equal(events.filter((e) => e === "b: up a").length, 2);
  } finally {
    await stop();
  }
});

Deno.test(
  "a re-dial while the acceptor still trusts the old connection replaces it cleanly",
  options,
  async () => {
    const { a, b, proxy, events, stop } = await pairThroughProxy(
      { logger: quiet(), heartbeatMs: 100, deadAfterMs: 400 },
      { logger: quiet(), heartbeatMs: 100, deadAfterMs: 30_000 },
    );
    try {
      await allConnected([a, b]);
      proxy.partition();
      await waitFor(() => !a.isConnected("b"), "a to give up on the old connection", 5000);
      assert.equal(b.isConnected("a"), true, "b has not noticed anything yet");
      a.setPeerAddress("b", "127.0.0.1", b.port); // a direct path, around the partition
      await waitFor(
        () => a.isConnected("b") && events.filter((e) => e === "b: up a").length === 2,
        "the new connection",
      );
      const bEvents = events.filter((e) => e.startsWith("b:"));
      assert.deepEqual(bEvents, [
        "b: up a",
        "b: down a (replaced by a newer connection from the same peer)",
        "b: up a",
      ]);
      const got: string[] = [];
      a.onMessage("x", (from, m) => got.push(`${from}:${m}`));
      b.onMessage("x", (from, m) => got.push(`${from}:${m}`));
      assert.equal(a.send("b", "x", "ping"), true);
      assert.equal(b.send("a", "x", "pong"), true);
      await waitFor(() => got.length === 2, "traffic both ways on the new connection");
      assert.deepEqual(got.sort(), ["a:ping", "b:pong"]);
    } finally {
      await stop();
    }
  },
);

Deno.test(
  "writers waiting in writable() are bounded per peer; the ones admitted are released",
  options,
  async () => {
    const maxQueued = 512 * 1024;
    const [a, b] = await startMeshes(["a", "b"], {
      logger: quiet(),
      maxFrameBytes: 256 * 1024,
      maxQueuedBytesPerPeer: maxQueued,
      maxWaitersPerPeer: 2,
    });
    try {
      await allConnected([a, b]);
      let got = 0;
      b.onMessage("i", () => got++);
      // Fill the queue past half its bound within one task (nothing is flushed before the microtask).
      let sent = 0;
      while (a.canSend("b")) {
        assert.equal(a.send("b", "i", new Uint8Array(32 * 1024)), true);
        sent++;
      }
      const admitted = [a.writable("b"), a.writable("b")];
      assert.equal(await a.writable("b"), false, "a third writer is refused at once");
      assert.equal(a.peerStats("b").waitersRefused, 1);
      assert.deepEqual(
        await Promise.all(admitted),
        [true, true],
        "the admitted writers are released as it drains",
      );
      await waitFor(() => got === sent, "every queued message");
      assert.equal(await a.writable("b"), true, "with room again writers are answered at once");
      assert.equal(a.peerStats("b").waitersRefused, 1);
      assert.throws(
        () =>
          new Mesh({
            self: "a",
            peers: [{ id: "a", host: "127.0.0.1", port: 0 }],
            secret: SECRET,
            maxWaitersPerPeer: 0,
          }),
        (e: unknown) => e instanceof AetherError && /maxWaitersPerPeer/.test(e.message),
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  },
);
