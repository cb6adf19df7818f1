/**
 * Regression test for Nagle's algorithm on the mesh's sockets, across two processes on loopback.
 *
 * The pattern: a member sends a small message the peer does not answer (a heartbeat, a vote), then 1-5 ms
 * later another one (a consensus Propose). On a socket without TCP_NODELAY the second waits until the first
 * is acknowledged, and the peer's kernel delays that lone ACK by about 40 ms. Deno's client WebSocket had this
 * on the dialing side, which made each consensus decision take 20-50 ms instead of under one. Both directions
 * are checked: this process dialing the member in the child, and the child dialing this process.
 */

import assert from "node:assert/strict";
import { Mesh } from "./mesh.ts";
import { DIALER_ENV_VARS } from "./_dialer.ts";
import { hex, recordingLogger, SECRET, waitFor } from "./_testing.ts";
import { spawnDenoChild } from "../../tests/_support/child.ts";

const options = { sanitizeOps: true, sanitizeResources: true };
const root = new URL("../../", import.meta.url).pathname;
const memberScript = new URL("../../tests/_support/mesh_member.ts", import.meta.url).pathname;

/** The member in the child echoes "echo" and drops (counts) messages on a channel it does not handle. */
const UNANSWERED = "unanswered";
const SAMPLES = 30;
/** The delayed-ACK stall is about 40 ms; a healthy round trip on loopback is well under 1 ms. */
const P50_LIMIT_MS = 10;

/** p50 of the time from the second send to its echo, over SAMPLES rounds of the gap pattern. */
async function gapPatternP50(mesh: Mesh, peer: string): Promise<{ p50: number; times: number[] }> {
  // Resolved by the handler itself: polling would add its own interval to every sample.
  let expect = { seq: -1, arrived: () => {} };
  mesh.onMessage("echo", (_from, message) => {
    if ((message as { seq: number }).seq === expect.seq) expect.arrived();
  });
  const times: number[] = [];
  for (let seq = 0; seq < SAMPLES + 3; seq++) {
    assert.equal(mesh.send(peer, UNANSWERED, { t: "vote1", phase: seq }), true);
    // The quiet gap is the pattern under test, not a wait for a condition.
    await new Promise((resolve) => setTimeout(resolve, 1 + (seq % 5)));
    const echoed = Promise.withResolvers<void>();
    expect = { seq, arrived: echoed.resolve };
    const timeout = setTimeout(() => echoed.reject(new Error(`no echo of ${seq} within 5 s`)), 5000);
    const start = performance.now();
    assert.equal(mesh.send(peer, "echo", { seq }), true);
    await echoed.promise.finally(() => clearTimeout(timeout));
    if (seq >= 3) times.push(performance.now() - start); // the first rounds warm the JIT up
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { p50: sorted[Math.floor(sorted.length / 2)], times };
}

async function runPair(localId: "n1" | "n2") {
  const childId = localId === "n1" ? "n2" : "n1";
  const mesh = new Mesh({
    self: localId,
    peers: [{ id: "n1", host: "127.0.0.1", port: 0 }, { id: "n2", host: "127.0.0.1", port: 0 }],
    secret: SECRET,
    logger: recordingLogger().logger,
  });
  await mesh.start();
  // The child's address for itself is port 0; this process's is its bound port (the child dials it if n1).
  const peers = localId === "n1"
    ? "n1@127.0.0.1:0,n2@127.0.0.1:0"
    : `n1@127.0.0.1:0,n2@127.0.0.1:${mesh.port}`;
  const child = spawnDenoChild(
    [
      "run",
      "--allow-net=127.0.0.1",
      `--allow-env=${DIALER_ENV_VARS.join(",")}`,
      memberScript,
      "--id",
      childId,
      "--peers",
      peers,
      "--secret-hex",
      hex(SECRET),
    ],
    { cwd: root },
  );
  try {
    const ready = await child.waitForLine((line) => line.event === "ready", 20_000);
    if (localId === "n1") mesh.setPeerAddress("n2", "127.0.0.1", ready.clusterPort as number);
    await waitFor(() => mesh.isConnected(childId), `${childId} up`, 10_000);
    assert.equal(mesh.peerStats(childId).role, localId === "n1" ? "dialer" : "acceptor");
    const { p50, times } = await gapPatternP50(mesh, childId);
    console.log(
      `${mesh.peerStats(childId).role} -> peer: p50 ${p50.toFixed(2)} ms over ${times.length} samples, max ${
        Math.max(...times).toFixed(2)
      } ms`,
    );
    assert.ok(
      p50 < P50_LIMIT_MS,
      `a message sent 1-5 ms after an unanswered one took p50 ${p50.toFixed(1)} ms to be echoed ` +
        `(limit ${P50_LIMIT_MS} ms; about 40 ms means Nagle + delayed ACK). Samples: ${
          times.map((t) => t.toFixed(1)).join(", ")
        }`,
    );
  } finally {
    await child.stop();
    await mesh.stop();
  }
}

Deno.test(
  "dialer -> acceptor: a message 1-5 ms after an unanswered one is not held back by Nagle",
  options,
  () => runPair("n1"),
);

Deno.test(
  "acceptor -> dialer: a message 1-5 ms after an unanswered one is not held back by Nagle",
  options,
  () => runPair("n2"),
);
