/**
 * The partitioned store (runtime/infra-host) on real node processes, through /api/v1/stores: writes through
 * one node read through the others, compare-and-set, TTL, delete, clear errors for bad input; then writers
 * under load while a member is killed with SIGKILL and restarted, checking that every acknowledged write is
 * read back (through every node, and after the whole cluster is killed and restarted), that the killed
 * member's partitions failed over, and that it was given its partitions back once it returned (a memory-engine
 * store alongside: the member comes back empty and streams its copy back).
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { type NodeProcess, TestCluster } from "../_support/cluster.ts";

const json = (body: unknown) => ({
  method: "PUT",
  headers: { "content-type": "application/json" },
  body: JSON.stringify(body),
});

async function put(node: NodeProcess, store: string, key: string, body: unknown) {
  return await node.json<Record<string, unknown>>(
    `/api/v1/stores/${store}/entries/${encodeURIComponent(key)}`,
    json(body),
  );
}

async function get(node: NodeProcess, store: string, key: string) {
  return await node.json<Record<string, unknown>>(
    `/api/v1/stores/${store}/entries/${encodeURIComponent(key)}`,
  );
}

interface StoreView {
  name: string;
  epoch: number;
  moving: number;
  primary: number;
  promoted: number;
  owned: number;
  complete: number;
  entries: number;
}

async function view(node: NodeProcess, store: string): Promise<StoreView | undefined> {
  const { body } = await node.json<{ items: StoreView[] }>("/api/v1/stores");
  return body.items.find((s) => s.name === store);
}

async function createStore(cluster: TestCluster, body: Record<string, unknown>): Promise<void> {
  const created = await cluster.nodes[0].json("/api/v1/stores", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  equal(created.status, 201, JSON.stringify(created.body));
  // Every primary took its partitions over (promotion) before the test writes.
  await cluster.waitFor("every partition served by a primary", async () => {
    const views = await Promise.all(cluster.running().map((n) => view(n, body.name as string)));
    return views.every((v) => v !== undefined) && views.reduce((sum, v) => sum + v!.promoted, 0) === 1024;
  }, 30_000);
}

Deno.test({
  name: "store: a write through one node reads the same through the others; CAS, TTL, delete; bad input",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cluster = await TestCluster.start(3);
    try {
      await cluster.waitForLeader();
      await createStore(cluster, { name: "t", replicas: 3, writeQuorum: 2 });
      const [n1, n2, n3] = cluster.nodes;
      const again = await n2.json("/api/v1/stores", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "t" }),
      });
      equal(again.status, 200, "opening an existing store");
      const conflict = await n2.json<{ detail: string }>("/api/v1/stores", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "t", replicas: 2 }),
      });
      equal(conflict.status, 409);
      match(conflict.body.detail, /exists with replicas 3, not 2/);

      const written = await put(n1, "t", "user/42", { value: '{"name":"ada"}' });
      equal(written.status, 200, JSON.stringify(written.body));
      const version = written.body.version as number;
      for (const node of [n1, n2, n3]) {
        const read = await get(node, "t", "user/42");
        equal(read.status, 200);
        deepStrictEqual(read.body, { key: "user/42", value: '{"name":"ada"}', version });
      }

      // Compare-and-set.
      const stale = await put(n2, "t", "user/42", { value: "x", ifVersion: version - 1 });
      equal(stale.status, 409);
      equal(stale.body.version, version, "the problem names the current version");
      const create = await put(n3, "t", "user/42", { value: "x", ifVersion: 0 });
      equal(create.status, 409, "ifVersion 0: only if absent");
      const swapped = await put(n3, "t", "user/42", { value: "y", ifVersion: version });
      equal(swapped.status, 200);
      ok((swapped.body.version as number) > version);

      // TTL.
      equal((await put(n1, "t", "session", { value: "s", ttlMs: 400 })).status, 200);
      equal((await get(n2, "t", "session")).status, 200);
      await cluster.waitFor(
        "the entry to expire",
        async () => (await get(n3, "t", "session")).status === 404,
        5_000,
      );

      // Delete.
      const del = await n2.json(`/api/v1/stores/t/entries/user%2F42`, { method: "DELETE" });
      deepStrictEqual(del.body, { deleted: true });
      equal((await get(n1, "t", "user/42")).status, 404);
      deepStrictEqual((await n2.json(`/api/v1/stores/t/entries/user%2F42`, { method: "DELETE" })).body, {
        deleted: false,
      });

      // Bad input, each with a message that says what and where.
      const cases: [Promise<{ status: number; body: Record<string, unknown> }>, number, RegExp][] = [
        [put(n1, "t", "k", { value: 7 }), 400, /body\.value must be a string/],
        [put(n1, "t", "k", { value: "v", ttl: 5 }), 400, /body\.ttl is not a known field/],
        [put(n1, "t", "k", { value: "v", ttlMs: -1 }), 400, /ttlMs must be an integer >= 0/],
        [put(n1, "nope", "k", { value: "v" }), 404, /store nope does not exist/],
        [put(n1, "Bad!", "k", { value: "v" }), 400, /store name "Bad!" must be/],
        [get(n1, "t", "x".repeat(1100)), 413, /key is over 1024 bytes/],
        [
          n1.json("/api/v1/stores", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ name: "q", replicas: 2, writeQuorum: 3 }),
          }),
          400,
          /writeQuorum \(3\) must not exceed replicas \(2\)/,
        ],
      ];
      for (const [answer, status, detail] of cases) {
        const { status: actual, body } = await answer;
        equal(actual, status, JSON.stringify(body));
        match(String(body.detail), detail);
      }
    } catch (e) {
      console.error(cluster.logs().slice(-20_000));
      throw e;
    } finally {
      await cluster.close();
    }
  },
});

Deno.test({
  name:
    "store: kill -9 of a member under write load loses no acknowledged write; it fails over and comes back",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const cluster = await TestCluster.start(3);
    try {
      await cluster.waitForLeader();
      await createStore(cluster, { name: "load", replicas: 3, writeQuorum: 2 });
      // Every tenth write also goes to a memory-engine store: the killed member comes back empty and must
      // stream its partitions back before it serves them.
      await createStore(cluster, { name: "mem", replicas: 3, writeQuorum: 2, engine: "memory" });
      const acked = new Map<string, string>();
      const ackedMemory = new Map<string, string>();
      let attempts = 0;
      let failures = 0;
      let running = true;
      const writer = async (w: number) => {
        for (let i = 0; running; i++) {
          const via = cluster.running();
          if (via.length === 0) continue;
          const node = via[(w + i) % via.length];
          const key = `w${w}-${i}`;
          attempts++;
          try {
            const answer = await put(node, "load", key, { value: `${key}-value` });
            if (answer.status === 200) acked.set(key, `${key}-value`);
            else failures++;
            if (i % 10 === 0) {
              const memory = await put(node, "mem", key, { value: `${key}-m` });
              if (memory.status === 200) ackedMemory.set(key, `${key}-m`);
            }
          } catch {
            failures++; // the node died under the request
          }
        }
      };
      const writers = Array.from({ length: 6 }, (_, w) => writer(w));
      await new Promise((r) => setTimeout(r, 1_500));
      const victim = cluster.node("n2");
      const before = acked.size;
      await victim.kill();
      const killedAt = Date.now();
      // The survivors fail over: writes succeed again while n2 is still down.
      await cluster.waitFor(
        "writes to succeed with n2 down",
        () => Promise.resolve(acked.size > before + 200),
        20_000,
      );
      const recoveredMs = Date.now() - killedAt;
      await victim.start();
      await new Promise((r) => setTimeout(r, 1_500));
      running = false;
      await Promise.all(writers);
      console.log(
        `store kill test: ${acked.size} acknowledged of ${attempts} writes (${failures} failed or unknown); ` +
          `writes flowed again ${recoveredMs} ms after the kill`,
      );
      ok(acked.size > 100, `${acked.size} writes acknowledged`);

      // n2 gets its partitions back: streamed, then moved; every partition promoted and nothing moving.
      for (const store of ["load", "mem"]) {
        await cluster.waitFor(`n2 to own every partition of ${store} again, nothing moving`, async () => {
          const views = await Promise.all(cluster.nodes.map((n) => view(n, store)));
          return views.every((v) => v && v.moving === 0 && v.owned === 1024 && v.complete === 1024) &&
            views.reduce((sum, v) => sum + v!.promoted, 0) === 1024;
        }, 60_000);
      }

      const missing = async (node: NodeProcess, store = "load", expected = acked) => {
        const lost: string[] = [];
        const keys = [...expected.keys()];
        for (let i = 0; i < keys.length; i += 50) {
          const batch = keys.slice(i, i + 50);
          const reads = await Promise.all(batch.map((k) => get(node, store, k)));
          reads.forEach((r, j) => {
            if (r.status !== 200 || r.body.value !== expected.get(batch[j])) {
              lost.push(`${batch[j]}: ${r.status}`);
            }
          });
        }
        return lost;
      };
      for (const node of cluster.nodes) {
        deepStrictEqual((await missing(node)).slice(0, 10), [], `reads via ${node.id}`);
      }
      ok(ackedMemory.size > 10, `${ackedMemory.size} memory-store writes acknowledged`);
      deepStrictEqual(
        (await missing(cluster.nodes[1], "mem", ackedMemory)).slice(0, 10),
        [],
        "the memory store",
      );
      // n2 restarted empty and streamed its memory-store partitions back: it holds as many entries as n1.
      const [v1, v2] = await Promise.all([view(cluster.nodes[0], "mem"), view(cluster.nodes[1], "mem")]);
      equal(v2!.entries, v1!.entries, "n2's memory-store copy was streamed back");

      // Every copy is on disk: kill the whole cluster and start it again.
      await Promise.all(cluster.nodes.map((n) => n.kill()));
      await cluster.startAll();
      await cluster.waitForLeader();
      await cluster.waitFor("every partition served again", async () => {
        const views = await Promise.all(cluster.nodes.map((n) => view(n, "load")));
        return views.reduce((sum, v) => sum + (v?.promoted ?? 0), 0) === 1024;
      }, 30_000);
      deepStrictEqual((await missing(cluster.nodes[0])).slice(0, 10), [], "after a restart of every member");
    } catch (e) {
      console.error(cluster.logs().slice(-30_000));
      throw e;
    } finally {
      await cluster.close();
    }
  },
});
