import assert from "node:assert/strict";
import { createLogger, LogRing, type NodeId } from "../core/mod.ts";
import { Mesh } from "../net/mod.ts";
import { ClusterLogs, MAX_LOG_ANSWER_BYTES, nodeLogger } from "./logs.ts";

const SECRET = new TextEncoder().encode("logs-test-secret-0123456789");
const quiet = createLogger({ level: "error", sink: () => {} });

/** Two or three members with real meshes on loopback, each with its own ring and ClusterLogs. */
async function members(ids: NodeId[]) {
  const meshes = ids.map((self) =>
    new Mesh({
      self,
      peers: ids.map((id) => ({ id, host: "127.0.0.1", port: 0 })),
      secret: SECRET,
      logger: quiet,
    })
  );
  for (const mesh of meshes) await mesh.start();
  for (const mesh of meshes) {
    for (const other of meshes) if (other !== mesh) mesh.setPeerAddress(other.self, "127.0.0.1", other.port);
  }
  const deadline = Date.now() + 10_000;
  while (!meshes.every((m) => ids.every((id) => id === m.self || m.isConnected(id)))) {
    if (Date.now() > deadline) throw new Error("meshes did not connect");
    await new Promise((r) => setTimeout(r, 10));
  }
  const nodes = meshes.map((mesh) => {
    const ring = new LogRing();
    const log = createLogger({
      level: "debug",
      name: mesh.self,
      sink: () => {},
      onRecord: (r, n) => ring.append(r, n),
    });
    const logs = new ClusterLogs({ self: mesh.self, members: ids, mesh, ring, log: quiet, timeoutMs: 2_000 });
    return { id: mesh.self, mesh, ring, log, logs };
  });
  return {
    nodes,
    async stop() {
      for (const n of nodes) n.logs.stop();
      await Promise.all(meshes.map((m) => m.stop()));
    },
  };
}

Deno.test("ClusterLogs: gathers every member's matching records over the mesh, merged by time", async () => {
  const cluster = await members(["n1", "n2", "n3"]);
  try {
    const [n1, n2, n3] = cluster.nodes;
    n2.log.info("slice line", { slice: "g:a:1.0.0", requestId: "r1" });
    await new Promise((r) => setTimeout(r, 5));
    n3.log.warn("other slice", { slice: "g:b:1.0.0", requestId: "r1" });
    await new Promise((r) => setTimeout(r, 5));
    n1.log.debug("local", { requestId: "r1" });
    n1.log.info("unrelated");
    const all = await n1.logs.gather({ filter: { requestId: "r1" }, limit: 10 });
    assert.deepEqual(all.records.map((r) => [r.node, r.msg]), [
      ["n2", "slice line"],
      ["n3", "other slice"],
      ["n1", "local"],
    ]);
    assert.deepEqual(all.unreachable, {});
    assert.deepEqual(Object.keys(all.cursors).sort(), ["n1", "n2", "n3"]);
    const bySlice = await n1.logs.gather({ filter: { slice: "g:a" }, limit: 10 });
    assert.deepEqual(bySlice.records.map((r) => r.msg), ["slice line"]);
    const warnOnly = await n2.logs.gather({ filter: { level: "warn" }, limit: 10 });
    assert.deepEqual(warnOnly.records.map((r) => r.node), ["n3"]);
    const newestTwo = await n3.logs.gather({ filter: {}, limit: 2 });
    assert.deepEqual(newestTwo.records.map((r) => r.msg), ["local", "unrelated"]);
    const oneNode = await n3.logs.gather({ filter: { node: "n2" }, limit: 10 });
    assert.deepEqual(oneNode.records.map((r) => r.node), ["n2"]);
  } finally {
    await cluster.stop();
  }
});

Deno.test("ClusterLogs: a follower's cursors read each new record once; a down member is named unreachable", async () => {
  const cluster = await members(["n1", "n2", "n3"]);
  try {
    const [n1, n2, n3] = cluster.nodes;
    n2.log.info("before");
    const first = await n1.logs.gather({ filter: {}, limit: 100 });
    assert.deepEqual(first.records.map((r) => r.msg), ["before"]);
    n2.log.info("after 1");
    n3.log.info("after 2");
    const next = await n1.logs.gather({ filter: {}, limit: 100, cursors: first.cursors });
    assert.deepEqual(next.records.map((r) => r.msg), ["after 1", "after 2"]);
    const none = await n1.logs.gather({
      filter: {},
      limit: 100,
      cursors: { ...first.cursors, ...next.cursors },
    });
    assert.deepEqual(none.records, []);
    // A cursor of another epoch (the member restarted since): its ring is read from the start.
    const restarted = await n1.logs.gather({
      filter: { node: "n2" },
      limit: 100,
      cursors: { n2: { epoch: "gone", seq: 99 } },
    });
    assert.deepEqual(restarted.records.map((r) => r.msg), ["before", "after 1"]);
    await n3.mesh.stop();
    const partial = await n1.logs.gather({ filter: {}, limit: 100 });
    assert.match(partial.unreachable.n3, /n3 (is not connected|went down|did not answer)/);
    assert.ok(partial.records.every((r) => r.node !== "n3"));
  } finally {
    await cluster.stop();
  }
});

Deno.test("ClusterLogs: a peer's answer larger than one mesh message comes in pages, newest last", async () => {
  const cluster = await members(["n1", "n2", "n3"]);
  try {
    const [n1, n2] = cluster.nodes;
    const padding = "x".repeat(1_000);
    const count = Math.ceil((MAX_LOG_ANSWER_BYTES * 1.5) / padding.length);
    for (let i = 0; i < count; i++) n2.log.info(`m${i}`, { padding });
    const all = await n1.logs.gather({ filter: { node: "n2" }, limit: count });
    assert.equal(all.records.length, count);
    assert.deepEqual(all.records.map((r) => r.seq), Array.from({ length: count }, (_, i) => i + 1));
    const newest = await n1.logs.gather({ filter: { node: "n2" }, limit: count - 10 });
    assert.equal(newest.records.length, count - 10);
    assert.equal(newest.records[0].msg, "m10");
    assert.equal(newest.records.at(-1)!.msg, `m${count - 1}`);
  } finally {
    await cluster.stop();
  }
});

Deno.test("nodeLogger: every record at or above the level lands in the ring with the node id", () => {
  const { log, ring } = nodeLogger({ id: "n7", logLevel: "info", logFormat: "json" });
  assert.equal(ring.stats.records, 0);
  // Also written to standard error (as a node's JSON line); the ring is what this test reads.
  log.debug("not kept");
  log.warn("kept", { requestId: "x" });
  const { records } = ring.query({ filter: {}, limit: 10 });
  assert.deepEqual(records.map((r) => [r.node, r.level, r.msg, r.fields.requestId]), [[
    "n7",
    "warn",
    "kept",
    "x",
  ]]);
});
