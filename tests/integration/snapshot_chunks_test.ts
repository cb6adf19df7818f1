/**
 * A member catching up by snapshot when the KV state is larger than one mesh frame (8 MiB). The snapshot used
 * to travel in one message: the send threw (`needs a 9614079-byte frame`) and the serving members crashed.
 * Now it travels in chunks (runtime/cluster/_snapshot_transfer.ts). Real node processes on loopback.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

/** Values of 900 KiB (the KV limit is 1 MiB): 12 of them are over 10 MiB, beyond the 8 MiB frame limit. */
const BIG_VALUE_BYTES = 900 * 1024;
const BIG_VALUES = 12;
/** Small writes after the big ones: more phases than a peer keeps in memory (512), so a snapshot is needed. */
const SMALL_WRITES = 1_000;
/** Writers at a time: few, since concurrent writes share a phase (batched) and phases are what must pass. */
const PARALLEL_WRITES = 2;
/** The decisions a peer answers from memory (the engine's recentDecisions). */
const PHASES_KEPT_IN_MEMORY = 512;

interface Status {
  revision: number;
  phase: number;
}

const status = async (node: NodeProcess) => (await node.json<Status>("/api/v1/status")).body;

/** A 503 right after a member stops (the leader was that member, or a link is re-dialled) is retried. */
const RETRY_503_MS = 10_000;

async function put(node: NodeProcess, key: string, value: Uint8Array | string): Promise<void> {
  const body = typeof value === "string" ? value : (value as Uint8Array<ArrayBuffer>);
  const deadline = Date.now() + RETRY_503_MS;
  for (;;) {
    const response = await node.api(`/api/v1/kv/${key}`, { method: "PUT", body });
    const text = await response.text();
    if (response.status === 503 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    equal(response.status, 200, `PUT ${key}: ${text}`);
    return;
  }
}

async function get(node: NodeProcess, key: string): Promise<Uint8Array> {
  const response = await node.api(`/api/v1/kv/${key}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  equal(response.status, 200, `GET ${key} on ${node.id}: ${new TextDecoder().decode(bytes.slice(0, 200))}`);
  return bytes;
}

/** A value no other key has, so a mixed-up chunk shows in the comparison. */
function bigValue(i: number): Uint8Array {
  const bytes = new Uint8Array(BIG_VALUE_BYTES);
  let x = (i + 1) * 2654435761;
  for (let j = 0; j < bytes.length; j++) {
    x = (x * 1103515245 + 12345) >>> 0;
    bytes[j] = x >>> 24;
  }
  return bytes;
}

async function inParallel(count: number, run: (i: number) => Promise<void>, parallel = 8): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await run(next++);
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

Deno.test("a member catches up from a snapshot larger than a mesh frame (over 10 MiB of KV), no node crashes", async () => {
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    extraArgs: ["--snapshot-every-phases", "20", "--retained-log-phases", "5"],
  });
  try {
    await cluster.waitForLeader();
    const [a, b, c] = cluster.nodes;
    // Every link up before c stops: a and b must form a quorum between themselves.
    await cluster.waitFor("every member is ready and connected to every other", async () => {
      for (const node of [a, b, c]) {
        const { body } = await node.json<{ ready: boolean; members: { connected: boolean }[] }>(
          "/api/v1/health",
        );
        if (!body.ready || !body.members.every((m) => m.connected)) return false;
      }
      return true;
    });
    const stoppedAt = await status(c);
    await c.stop("SIGTERM");
    const values = Array.from({ length: BIG_VALUES }, (_, i) => bigValue(i));
    await inParallel(BIG_VALUES, (i) => put(i % 2 === 0 ? a : b, `app/big/${i}`, values[i]));
    await inParallel(
      SMALL_WRITES,
      (i) => put(i % 2 === 0 ? a : b, `app/small/${i % 50}`, `v${i}`),
      PARALLEL_WRITES,
    );
    const behind = await status(a);
    ok(
      behind.phase - stoppedAt.phase > PHASES_KEPT_IN_MEMORY,
      `only ${behind.phase - stoppedAt.phase} phases missed`,
    );

    const started = performance.now();
    await c.start();
    await cluster.waitFor("the restarted member catches up", async () => {
      const s = await status(c);
      return s.revision >= behind.revision && s.phase >= behind.phase;
    }, 25_000);
    const catchUpMs = Math.round(performance.now() - started);
    console.log(
      `catch-up of a ${(BIG_VALUES * BIG_VALUE_BYTES / 2 ** 20).toFixed(1)} MiB state: ${catchUpMs} ms`,
    );
    const received = c.log.split("\n").find((line) =>
      line.includes("received a catch-up snapshot in chunks")
    );
    ok(received, `c did not fetch a snapshot in chunks:\n${c.log.slice(-2000)}`);
    console.log(received);

    // Consistent reads on the member that caught up: every big value byte for byte, the small keys too.
    for (let i = 0; i < BIG_VALUES; i++) deepEqual(await get(c, `app/big/${i}`), values[i], `app/big/${i}`);
    const small = async (node: NodeProcess) =>
      (await node.json<{ items: { key: string; value?: string }[] }>("/api/v1/kv?prefix=app/small/")).body
        .items;
    deepEqual(await small(c), await small(a));
    // It takes part again: a write through it is applied everywhere.
    await put(c, "app/after", "x");
    for (const node of [a, b]) {
      await cluster.waitFor(`${node.id} sees the write through c`, async () => {
        const response = await node.api("/api/v1/kv/app/after");
        return (await response.text()) === "x";
      });
    }
    for (const node of [a, b, c]) {
      ok(node.running, `${node.id} stopped:\n${node.log.slice(-2000)}`);
      ok(!/uncaught/i.test(node.log), `${node.id} threw:\n${node.log.slice(-2000)}`);
      equal((await node.json("/api/v1/health")).status, 200);
    }
  } finally {
    await cluster.close();
  }
});
