/**
 * The lock service on 3 real node processes, through a slice (tests/fixtures/infra/probe.ts): a holder that
 * is paused (its node frozen with SIGSTOP, so it cannot renew) loses its lease when the TTL ends, the next
 * holder gets a larger fencing token, and the paused holder's writes to a fenced resource are refused once it
 * resumes; mutual exclusion holds across a kill -9 of the consensus leader, and the token keeps growing.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

type Json = Record<string, unknown>;
const PROBE = new URL("../fixtures/infra/probe.ts", import.meta.url).pathname;

async function post(node: NodeProcess, path: string, body: unknown) {
  const response = await fetch(node.httpUrl + path, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  const text = await response.text();
  const value = text ? JSON.parse(text) : null;
  return {
    status: response.status,
    body: (value !== null && typeof value === "object" ? value : { value }) as Json,
  };
}

Deno.test("lock on 3 nodes: a paused holder is fenced off; exclusion across a leader kill -9", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
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
    await t.step("a paused holder loses its lease; its writes are refused once it resumes", async () => {
      const a = await post(n1, "/probe/acquire", { name: "job", ttlMs: 1_500 });
      equal(a.status, 200, JSON.stringify(a.body));
      const t1 = a.body.token as number;
      equal((await post(n1, "/probe/fenced-write", { name: "job", token: t1, value: "a1" })).status, 200);
      n1.freeze(true); // the holder's node: alive, silent, cannot renew
      let b;
      try {
        b = await post(n2, "/probe/acquire", { name: "job", ttlMs: 60_000, waitMs: 20_000 });
      } finally {
        n1.freeze(false);
      }
      equal(b.status, 200, JSON.stringify(b.body));
      const t2 = b.body.token as number;
      ok(t2 > t1, `the next holder's token ${t2} is larger than ${t1}`);
      equal((await post(n3, "/probe/fenced-write", { name: "job", token: t2, value: "b1" })).status, 200);
      // The resumed holder still believes it holds the lock: every write it makes is refused.
      const stale = await post(n2, "/probe/fenced-write", { name: "job", token: t1, value: "a2" });
      equal(stale.status, 409, JSON.stringify(stale.body));
      match(String(stale.body.detail), new RegExp(`token ${t1} is older than ${t2}`));
      const renew = await post(n3, "/probe/renew", { name: "job", token: t1 });
      equal(renew.status, 409);
      match(String(renew.body.detail), /has ended/);
      token = t2;
    });

    await t.step("kill -9 of the leader: the lease still excludes; the next token is larger", async () => {
      const leader = cluster.node(await cluster.waitForLeader());
      await leader.stop("SIGKILL");
      const survivors = cluster.running();
      await cluster.waitForLeader(30_000);
      const busy = await post(survivors[0], "/probe/acquire", { name: "job", waitMs: 0 });
      equal(busy.status, 409, JSON.stringify(busy.body));
      match(String(busy.body.detail), /is held/);
      const released = await post(survivors[1], "/probe/release", { name: "job", token });
      equal(released.body.value, true, JSON.stringify(released.body));
      const rounds: number[] = [];
      for (let round = 0; round < 5; round++) {
        const attempts = await Promise.all(
          survivors.map((n) => post(n, "/probe/acquire", { name: "job", ttlMs: 30_000, waitMs: 0 })),
        );
        const won = attempts.filter((a) => a.status === 200);
        equal(won.length, 1, JSON.stringify(attempts));
        const held = won[0].body.token as number;
        ok(held > (rounds.at(-1) ?? token), `round ${round}: ${held}`);
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
