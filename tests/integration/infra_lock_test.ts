/**
 * The lock service (leases in the consensus KV) on 3 real node processes, through a slice
 * (tests/fixtures/infra/probe.ts): a holder on the leader's node is paused (SIGSTOP, so it cannot renew and
 * the leadership moves); the new leader still counts the lease until its TTL, then the next holder gets a
 * larger fencing token and the paused holder's writes to a fenced resource are refused once it resumes.
 * Clients on all three nodes contend for one lock while the leader is killed with -9: no two holders overlap,
 * tokens grow, and the dead node's lease ends with its TTL.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { post } from "../_support/fixture_slices.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const PROBE = new URL("../fixtures/infra/probe.ts", import.meta.url).pathname;

Deno.test("lock on 3 nodes: a paused leader-holder is fenced off; exclusion across a leader kill -9", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1, n2] = cluster.nodes;
    await pushArtifact(n1, await buildSlice(PROBE));
    const r = await postBlueprint(
      n1,
      `id = "org.example.probe:probe:1.0.0"\n[[slices]]\nartifact = "org.example.probe:probe:1.0.0"\n` +
        `instances = 3\nrequires = ["kv", "lock"]\n`,
    );
    equal(r.status, 201, JSON.stringify(r.body));
    await cluster.waitFor("probe ACTIVE on 3 nodes", async () => {
      const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.probe:probe");
      return s !== undefined && s.instances.filter((i) => i.state === "ACTIVE").length === 3;
    }, 90_000);
    for (const node of cluster.nodes) {
      await cluster.waitFor(`${node.id} routes`, async () => {
        const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
        return body.routes.some((r) => r.path === "/probe/fenced-write");
      }, 30_000);
    }

    await t.step("bad input names the field", async () => {
      const bad = await post(n2, "/probe/acquire", { name: "job", ttlMs: -5 });
      equal(bad.status, 400);
      match(String(bad.body.detail), /lock\.acquire: ttlMs must be an integer from 1 to 3600000/);
      const badToken = await post(n2, "/probe/release", { name: "job", token: "x" });
      equal(badToken.status, 400);
      match(String(badToken.body.detail), /lock\.release: token must be the token acquire returned/);
    });

    let token = 0;
    await t.step(
      "the holder's node is the leader and is paused: the lease outlives the failover",
      async () => {
        const frozen = cluster.node(await cluster.waitForLeader());
        const [other, third] = cluster.nodes.filter((n) => n !== frozen);
        const ttlMs = 4_000;
        const sentAtMs = Date.now();
        const a = await post(frozen, "/probe/acquire", { name: "job", ttlMs });
        equal(a.status, 200, JSON.stringify(a.body));
        const t1 = a.body.token as number;
        equal(
          (await post(frozen, "/probe/fenced-write", { name: "job", token: t1, value: "a1" })).status,
          200,
        );
        frozen.freeze(true); // the holder's node, and the leader: alive, silent, cannot renew
        let b;
        let bAtMs = 0;
        try {
          const leader = await leaderAmong([other, third], frozen.id);
          // A new leader counts the lease from its election: the lease is still held.
          const busy = await post(other, "/probe/acquire", { name: "job", waitMs: 0 });
          equal(busy.status, 409, `after the failover to ${leader}: ${JSON.stringify(busy.body)}`);
          match(String(busy.body.detail), /is held/);
          b = await post(other, "/probe/acquire", { name: "job", ttlMs: 60_000, waitMs: 20_000 });
          bAtMs = Date.now();
        } finally {
          frozen.freeze(false);
        }
        equal(b.status, 200, JSON.stringify(b.body));
        ok(bAtMs - sentAtMs >= ttlMs, `the next holder waited the whole TTL (${bAtMs - sentAtMs} ms)`);
        const t2 = b.body.token as number;
        ok(t2 > t1, `the next holder's token ${t2} is larger than ${t1}`);
        equal(
          (await post(third, "/probe/fenced-write", { name: "job", token: t2, value: "b1" })).status,
          200,
        );
        // The resumed holder still believes it holds the lock: every write it makes is refused.
        await cluster.waitForLeader(30_000);
        const stale = await post(frozen, "/probe/fenced-write", { name: "job", token: t1, value: "a2" });
        equal(stale.status, 409, JSON.stringify(stale.body));
        match(String(stale.body.detail), new RegExp(`token ${t1} is older than ${t2}`));
        const renew = await post(frozen, "/probe/renew", { name: "job", token: t1 });
        equal(renew.status, 409);
        match(String(renew.body.detail), /has ended/);
        const holder = await post(third, "/probe/release", { name: "job", token: t1 });
        equal(holder.body.value, false, "a stale token releases nothing");
        token = t2;
      },
    );

    await t.step("kill -9 of the leader under contention: holders never overlap, tokens grow", async () => {
      const leader = cluster.node(await cluster.waitForLeader());
      const survivors = cluster.nodes.filter((n) => n !== leader);
      equal((await post(survivors[0], "/probe/release", { name: "job", token })).body.value, true);
      // A lease held by the node about to die: it ends with its TTL.
      const departed = await post(leader, "/probe/acquire", { name: "departed", ttlMs: 3_000 });
      equal(departed.status, 200, JSON.stringify(departed.body));
      const holds: Hold[] = [];
      const stopAtMs = { value: Number.POSITIVE_INFINITY };
      const workers = cluster.nodes.map((n) => contend(n, holds, stopAtMs));
      await new Promise((r) => setTimeout(r, 2_000));
      const killedAtMs = Date.now();
      await leader.stop("SIGKILL");
      await cluster.waitForLeader(30_000);
      stopAtMs.value = Date.now() + 8_000;
      await Promise.all(workers);
      const after = holds.filter((h) => h.acquiredAtMs > killedAtMs);
      console.log(`contention: ${holds.length} leases in all, ${after.length} after the leader's kill`);
      ok(after.length >= 3, `holders after the kill: ${after.length} (${holds.length} in all)`);
      const ordered = [...holds].sort((x, y) => x.acquiredAtMs - y.acquiredAtMs);
      for (let i = 1; i < ordered.length; i++) {
        const [prev, next] = [ordered[i - 1], ordered[i]];
        ok(next.token > prev.token, `tokens grow: ${JSON.stringify([prev, next])}`);
        ok(next.acquiredAtMs >= prev.releasedAtMs, `two holders at once: ${JSON.stringify([prev, next])}`);
      }
      equal(holds.filter((h) => h.fencedStatus === 409).length, 0, JSON.stringify(holds));
      const next = await post(survivors[1], "/probe/acquire", {
        name: "departed",
        ttlMs: 5_000,
        waitMs: 15_000,
      });
      equal(next.status, 200, JSON.stringify(next.body));
      ok((next.body.token as number) > (departed.body.token as number));
      token = Math.max(token, ...holds.map((h) => h.token));
    });

    await t.step("after the leader's kill: the lease still excludes; the next token is larger", async () => {
      const survivors = cluster.running();
      const a = await post(survivors[0], "/probe/acquire", { name: "job", ttlMs: 30_000 });
      equal(a.status, 200, JSON.stringify(a.body));
      const busy = await post(survivors[1], "/probe/acquire", { name: "job", waitMs: 0 });
      equal(busy.status, 409, JSON.stringify(busy.body));
      match(String(busy.body.detail), /is held/);
      const released = await post(survivors[1], "/probe/release", { name: "job", token: a.body.token });
      equal(released.body.value, true, JSON.stringify(released.body));
      const rounds: number[] = [a.body.token as number];
      for (let round = 0; round < 5; round++) {
        const attempts = await Promise.all(
          survivors.map((n) => post(n, "/probe/acquire", { name: "job", ttlMs: 30_000, waitMs: 0 })),
        );
        const won = attempts.filter((a) => a.status === 200);
        equal(won.length, 1, JSON.stringify(attempts));
        const held = won[0].body.token as number;
        ok(held > rounds.at(-1)!, `round ${round}: ${held}`);
        rounds.push(held);
        equal(
          (await post(survivors[round % 2], "/probe/release", { name: "job", token: held })).body.value,
          true,
        );
      }
    });
  } finally {
    await cluster.close();
  }
});

/** One lease as a contending client saw it: from the acquire's answer to the release's request. */
interface Hold {
  node: string;
  token: number;
  acquiredAtMs: number;
  releasedAtMs: number;
  fencedStatus: number;
}

/**
 * Acquires "contended", writes the fenced resource with its token, releases; again until `stopAtMs`. A node
 * that stops answering (killed) ends its loop; its last lease counts as held until that moment.
 */
async function contend(node: NodeProcess, holds: Hold[], stopAtMs: { value: number }): Promise<void> {
  while (Date.now() < stopAtMs.value) {
    let acquiredAtMs = 0;
    let held: Omit<Hold, "releasedAtMs"> | undefined;
    try {
      const a = await post(node, "/probe/acquire", { name: "contended", ttlMs: 5_000, waitMs: 3_000 });
      acquiredAtMs = Date.now();
      if (a.status !== 200) continue;
      const token = a.body.token as number;
      const fenced = await post(node, "/probe/fenced-write", { name: "contended", token, value: node.id });
      held = { node: node.id, token, acquiredAtMs, fencedStatus: fenced.status };
      const releasedAtMs = Date.now();
      await post(node, "/probe/release", { name: "contended", token });
      holds.push({ ...held, releasedAtMs });
    } catch {
      // The node is gone: a lease it held lasts until its TTL, which the others' waits cover.
      if (held) holds.push({ ...held, releasedAtMs: Date.now() });
      return;
    }
  }
}

/** Polls the given nodes' health until they all name one leader other than `not`; returns its id. */
async function leaderAmong(nodes: NodeProcess[], not: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const leaders = await Promise.all(nodes.map(async (n) => {
      try {
        const r = await n.json<{ leader: string | null }>("/api/v1/health", {
          signal: AbortSignal.timeout(1_000),
        });
        return r.body.leader;
      } catch {
        return null;
      }
    }));
    if (leaders[0] && leaders[0] !== not && leaders.every((l) => l === leaders[0])) return leaders[0];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no leader other than ${not} among ${nodes.map((n) => n.id).join(", ")}`);
}
