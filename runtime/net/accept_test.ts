/**
 * The acceptor's bounds on connections that have not authenticated (see _accept.ts): a deadline from TCP
 * accept, a bound per remote address and in all (the oldest goes), and the frame limit raised once a peer has
 * authenticated.
 */

import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { Mesh } from "./mesh.ts";
import { MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_ADDRESS } from "./_accept.ts";
import { allConnected, recordingLogger, SECRET, startMeshes, waitFor } from "./_testing.ts";

const options = { sanitizeOps: false, sanitizeResources: false };

async function startVictim(authTimeoutMs = 10_000): Promise<Mesh> {
  const mesh = new Mesh({
    self: "n2",
    peers: [{ id: "n1", host: "127.0.0.1", port: 0 }, { id: "n2", host: "127.0.0.1", port: 0 }],
    secret: SECRET,
    logger: recordingLogger().logger,
    authTimeoutMs,
  });
  await mesh.start();
  return mesh;
}

/** A raw TCP connection from `localAddress` that never sends a byte; `closed` flips when it is ended. */
async function idleConnection(port: number, localAddress: string) {
  const socket: Socket = connect({ host: "127.0.0.1", port, localAddress });
  const state = { socket, closed: false };
  socket.on("error", () => {});
  socket.on("close", () => state.closed = true);
  await new Promise((resolve) => socket.once("connect", resolve));
  return state;
}

Deno.test("a connection that does not authenticate within authTimeoutMs is dropped", options, async () => {
  const mesh = await startVictim(300);
  try {
    const idle = await idleConnection(mesh.port, "127.0.0.1");
    const start = performance.now();
    await waitFor(() => idle.closed, "the idle connection to be dropped", 5000);
    const elapsed = performance.now() - start;
    assert.ok(elapsed > 200 && elapsed < 2000, `dropped after ${elapsed} ms`);
    assert.equal(mesh.stats().droppedUnauthenticated, 1);
  } finally {
    await mesh.stop();
  }
});

Deno.test(
  "unauthenticated connections are bounded per address and in all; the oldest are dropped",
  options,
  async () => {
    const mesh = await startVictim();
    const held: { socket: Socket; closed: boolean }[] = [];
    try {
      for (let i = 0; i < MAX_UNAUTHENTICATED_PER_ADDRESS + 2; i++) {
        held.push(await idleConnection(mesh.port, "127.0.0.9"));
      }
      await waitFor(() => held[0].closed && held[1].closed, "the two oldest from 127.0.0.9 to be dropped");
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(held.map((c) => c.closed), held.map((_, i) => i < 2));
      // In all: fill the rest of the bound from other addresses; one more drops the oldest overall.
      const others: { socket: Socket; closed: boolean }[] = [];
      for (let i = 0; others.length < MAX_UNAUTHENTICATED - MAX_UNAUTHENTICATED_PER_ADDRESS; i++) {
        others.push(await idleConnection(mesh.port, `127.0.1.${Math.floor(i / 4) + 1}`));
      }
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(held[2].closed, false);
      others.push(await idleConnection(mesh.port, "127.0.2.1"));
      await waitFor(() => held[2].closed, "the oldest connection overall to be dropped");
      assert.equal(mesh.stats().droppedUnauthenticated, 3);
      for (const c of held.slice(3)) c.socket.destroy();
      for (const c of others) c.socket.destroy();
    } finally {
      for (const c of held) c.socket.destroy();
      await mesh.stop();
    }
  },
);

Deno.test(
  "after authentication a peer may send frames far over the 1 KiB handshake limit",
  options,
  async () => {
    const meshes = await startMeshes(["n1", "n2"]);
    try {
      await allConnected(meshes);
      const received: unknown[] = [];
      meshes[1].onMessage("big", (_from, message) => received.push(message));
      const big = new Uint8Array(1024 * 1024).fill(7);
      assert.equal(meshes[0].send("n2", "big", big), true); // n1 dialed n2, so n2's acceptor receives it
      await waitFor(() => received.length === 1, "the 1 MiB message");
      assert.deepEqual(received[0], big);
      assert.ok(meshes[1].isConnected("n1"));
    } finally {
      await Promise.all(meshes.map((m) => m.stop()));
    }
  },
);
