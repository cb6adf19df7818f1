/**
 * The cluster core under the faults an outside review found defects with (issue 13): a member that catches up
 * by snapshot while watches are open on it, one cut link next to the leader, an isolated leader, and writes
 * sent right after the leader is killed. Real node processes on loopback; links cut with partition proxies.
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

interface Status {
  leader: { nodeId: string; view: number } | null;
  revision: number;
  phase: number;
  elections: { leaderChanges: number; proposals: number };
  limits: { watches: { watchers: number; maxWatchers: number }; revisionWaiters: { maxWaiting: number } };
}

const put = async (node: NodeProcess, key: string, value: string) => {
  const response = await node.api(`/api/v1/kv/${key}`, { method: "PUT", body: value });
  await response.body?.cancel();
  return response.status;
};

const status = async (node: NodeProcess) => (await node.json<Status>("/api/v1/status")).body;

/** Reads an SSE stream in the background; `text` grows as it arrives, `ended` settles when it closes. */
function readStream(response: Response): { text: () => string; ended: Promise<void> } {
  let text = "";
  const ended = (async () => {
    for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) text += chunk;
  })().catch(() => {});
  return { text: () => text, ended };
}

Deno.test("a member far behind catches up by snapshot with watches open on it, and keeps running", async () => {
  // Snapshots every 50 phases, 20 retained: a member that misses more phases than the engine keeps in memory
  // (512) needs a snapshot.
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    extraArgs: ["--snapshot-every-phases", "50", "--retained-log-phases", "20"],
    proxyLinks: true,
  });
  try {
    await cluster.waitForLeader();
    const [a, b, c] = cluster.nodes;
    await c.stop("SIGTERM");
    for (let i = 0; i < 700; i++) equal(await put(a, `app/s/${i % 50}`, `v${i}`), 200);
    const behind = await status(a);

    // c starts cut off from both peers, so the watch below is opened before it catches up.
    cluster.link(a.id, c.id).partition();
    cluster.link(b.id, c.id).partition();
    await c.start();
    const controller = new AbortController();
    const watchResponse = await c.api(`/api/v1/kv-watch?prefix=app/`, {
      signal: controller.signal,
    });
    equal(watchResponse.status, 200);
    const watch = readStream(watchResponse);
    cluster.link(a.id, c.id).heal();
    cluster.link(b.id, c.id).heal();
    // Writes keep coming while it catches up, so decisions follow the snapshot it installs.
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing && i < 2_000; i++) await put(a, `app/during/${i % 20}`, `w${i}`);
    })();
    try {
      await cluster.waitFor("the lagging member catches up", async () => {
        const s = await status(c);
        return s.revision >= behind.revision && s.phase >= behind.phase;
      }, 15_000);
    } finally {
      writing = false;
      await writer;
    }
    // Still running a while later (the defect: it exited within half a second of installing the snapshot).
    await new Promise((r) => setTimeout(r, 1_000));
    ok(c.running && (await c.json("/api/v1/health")).status === 200, `c stopped:\n${c.log}`);
    // The old watch needed revisions the snapshot replaced: it ended with "gone".
    await Promise.race([watch.ended, new Promise((r) => setTimeout(r, 5_000))]);
    ok(/event: error/.test(watch.text()) && /snapshot/.test(watch.text()), watch.text().slice(-300));
    controller.abort();
    // A new watch on c sees new writes in order.
    const freshController = new AbortController();
    const fresh = await c.api(`/api/v1/kv-watch?prefix=app/after/`, {
      signal: freshController.signal,
    });
    const stream = readStream(fresh);
    equal(await put(a, "app/after/1", "x"), 200);
    equal(await put(c, "app/after/2", "y"), 200);
    await cluster.waitFor(
      "the new watch sees both writes",
      () => Promise.resolve(stream.text().includes("app/after/2") && stream.text().includes("app/after/1")),
    );
    freshController.abort();
    await stream.ended;
    equal((await c.json<{ status: number }>("/api/v1/health")).status, 200);
  } finally {
    await cluster.close();
  }
});

/** Distinct leader views named by every node, sampled every 100 ms for `ms`; writes go through `writer`. */
async function watchLeadership(
  cluster: TestCluster,
  writer: NodeProcess,
  ms: number,
): Promise<{ views: Set<number>; writes: number; failedWrites: number }> {
  const views = new Set<number>();
  let writes = 0;
  let failedWrites = 0;
  const deadline = Date.now() + ms;
  for (let i = 0; Date.now() < deadline; i++) {
    for (const node of cluster.running()) {
      const view = (await status(node)).leader?.view;
      if (view !== undefined) views.add(view);
    }
    writes++;
    if ((await put(writer, `app/cut/${i % 10}`, `v${i}`)) !== 200) failedWrites++;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { views, writes, failedWrites };
}

Deno.test("cutting one of the leader's links changes the leader at most once, and KV stays available", async () => {
  const cluster = await TestCluster.start(3, { proxyLinks: true });
  try {
    const leader = await cluster.waitForLeader();
    const [cutFrom, bridge] = cluster.nodes.filter((n) => n.id !== leader).map((n) => n.id);
    const before = (await status(cluster.node(leader))).leader!.view;
    cluster.link(leader, cutFrom).partition();
    // The mesh declares the link dead after 1 s; watch for six.
    const seen = await watchLeadership(cluster, cluster.node(bridge), 6_000);
    const changes = [...seen.views].filter((v) => v > before).length;
    console.log(`leader changes during 6 s with one of the leader's links cut: ${changes}`);
    // Each member counts the changes it saw, and reports the core's bounded queues.
    for (const node of cluster.nodes) {
      const s = await status(node);
      ok(s.elections.leaderChanges <= 2, `${node.id} saw ${s.elections.leaderChanges} leader changes`);
      ok(
        s.limits.watches.maxWatchers > 0 && s.limits.revisionWaiters.maxWaiting > 0,
        JSON.stringify(s.limits),
      );
    }
    ok(changes <= 1, `${changes} leader changes during one cut link (views ${[...seen.views].join(",")})`);
    equal(seen.failedWrites, 0, `${seen.failedWrites} of ${seen.writes} writes through ${bridge} failed`);
    // Writes through both ends of the cut link succeed too.
    equal(await put(cluster.node(cutFrom), "app/cut/end", "a"), 200);
    equal(await put(cluster.node(leader), "app/cut/end", "b"), 200);
    cluster.link(leader, cutFrom).heal();
    await cluster.waitForLeader();
  } finally {
    await cluster.close();
  }
});

Deno.test("a leader cut off from both others is replaced about a second after the mesh notices", async () => {
  const cluster = await TestCluster.start(3, { proxyLinks: true });
  try {
    const leader = await cluster.waitForLeader();
    const others = cluster.nodes.filter((n) => n.id !== leader);
    const started = Date.now();
    for (const other of others) cluster.link(leader, other.id).partition();
    const next = await cluster.waitFor("the other two agree on a new leader", async () => {
      const named = await Promise.all(others.map(async (n) => (await status(n)).leader?.nodeId));
      return named[0] && named[0] !== leader && named.every((id) => id === named[0]) ? named[0] : null;
    }, 10_000);
    const elapsedMs = Date.now() - started;
    // 1 s for the mesh to declare the links dead (deadAfterMs), then reports and one decision: 1.05-1.23 s in 20
    // of 22 runs, 1.91-1.95 s in two (README, Measured numbers). The goal is 2 s; the bound here leaves room for
    // a loaded machine, and the simulator checks the 2 s goal in virtual time.
    ok(elapsedMs < 2_500, `new leader ${next} after ${elapsedMs} ms`);
    console.log(`isolated leader replaced after ${elapsedMs} ms`);
    for (const other of others) cluster.link(leader, other.id).heal();
    const after = await cluster.waitForLeader();
    equal(after, next, "the old leader does not take over again once it is back");
  } finally {
    await cluster.close();
  }
});

Deno.test("writes sent through the survivors right after the leader is killed are not refused", async () => {
  const cluster = await TestCluster.start(3);
  try {
    let sent = 0;
    let refused = 0;
    const details = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const leader = await cluster.waitForLeader();
      const survivors = cluster.nodes.filter((n) => n.id !== leader);
      // Warm the forwarding path: both survivors have sent writes into the leader's batches.
      for (const node of survivors) equal(await put(node, "app/warm", node.id), 200);
      // The signal goes out now; for 30 ms writes go out through both survivors, most of them before the
      // survivors can have noticed (a killed process's sockets stay open while it is torn down).
      const killed = cluster.node(leader).kill();
      const writes: Promise<Response>[] = [];
      const startedAt = Date.now();
      for (let i = 0; Date.now() - startedAt < 30; i++) {
        writes.push(
          survivors[i % 2].api(`/api/v1/kv/app/k/${i}`, { method: "PUT", body: `${i}` }),
        );
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
      }
      for (const response of await Promise.all(writes)) {
        const body = await response.json();
        sent++;
        if (response.status !== 200) {
          refused++;
          details.add(`${response.status} ${body.detail}`);
        }
      }
      await killed;
      // Every acknowledged write is there, with its value.
      for (let i = 0; i < writes.length; i++) {
        const response = await survivors[0].api(`/api/v1/kv/app/k/${i}?consistent=true`);
        equal(await response.text(), `${i}`);
      }
      await cluster.node(leader).start();
    }
    console.log(`writes refused right after the leader was killed: ${refused} of ${sent}`);
    equal(refused, 0, [...details].join("; "));
  } finally {
    await cluster.close();
  }
});
