/**
 * Durable pub/sub on 3 real node processes, through slices (tests/fixtures/infra/pubsub_slice.ts, and
 * pubsub_other.ts of another group):
 *
 * - bad input is refused naming the field;
 * - the leader (the deliverer) is killed with SIGKILL while publishers and two consumer groups run: every
 *   acknowledged publish is delivered at least once to each group, in order per key (the subscriber checks it
 *   against kv), and the restarted node catches up;
 * - poison messages reach the dead-letter topic after maxAttempts and the good ones still flow;
 * - replay: seek a group to offset 0 and every message is delivered again;
 * - another group's slice naming the same topic reaches its own (empty) topic and cannot subscribe, seek or
 *   deliver across groups;
 * - the API shows topics and lag.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { runCli } from "../_support/cli.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

type Json = Record<string, unknown>;
const FIXTURE = new URL("../fixtures/infra/pubsub_slice.ts", import.meta.url).pathname;
const OTHER = new URL("../fixtures/infra/pubsub_other.ts", import.meta.url).pathname;
const KEYS = Array.from({ length: 6 }, (_, i) => `customer-${i}`);
const PER_KEY = 30;

async function post(node: NodeProcess, path: string, body: unknown, timeoutMs = 15_000) {
  const response = await fetch(node.httpUrl + path, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await response.text();
  const value = text ? JSON.parse(text) : null;
  return {
    status: response.status,
    body: (value !== null && typeof value === "object" ? value : { value }) as Json,
  };
}

Deno.test("pubsub on 3 nodes: kill -9 of the deliverer, dead letters, replay, groups kept apart", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1, n2] = cluster.nodes;
    for (const path of [FIXTURE, OTHER]) {
      const built = await buildSlice(path);
      // The push needs every member reachable: right after the start one may still be connecting.
      await cluster.waitFor(`push of ${path}`, () => pushArtifact(n1, built).then(() => true), 30_000);
    }
    for (
      const [id, instances, requires] of [
        ["org.example.orders:pubsub:1.0.0", 3, '["pubsub", "kv"]'],
        ["org.example.other:other:1.0.0", 1, '["pubsub"]'],
      ] as const
    ) {
      const r = await postBlueprint(
        n1,
        `id = "${id}"\n[[slices]]\nartifact = "${id}"\ninstances = ${instances}\nrequires = ${requires}\n`,
      );
      equal(r.status, 201, JSON.stringify(r.body));
    }
    await cluster.waitFor("slices ACTIVE", async () => {
      const all = await sliceStatuses(n1);
      const active = (slice: string) =>
        all.find((x) => x.slice === slice)?.instances.filter((i) => i.state === "ACTIVE").length ?? 0;
      return active("org.example.orders:pubsub") === 3 && active("org.example.other:other") === 1;
    }, 90_000);
    for (const node of cluster.nodes) {
      await cluster.waitFor(`${node.id} routes`, async () => {
        const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
        return body.routes.some((r) => r.path === "/ps/progress") &&
          body.routes.some((r) => r.path === "/other/info");
      }, 30_000);
    }

    await t.step("bad input names the field", async () => {
      const cases: Array<[Json, number, RegExp]> = [
        // The SDK refuses a bad name before sending (a TypeError in the slice: 500 with its message).
        [{ topic: "bad/name", value: 1 }, 500, /ctx\.infra\.topic\(name\): the name must be 1-64 letters/],
        [{ topic: "x".repeat(64), value: 1 }, 400, /pubsub\.publish: topic must be 1-60 letters/],
        [{ topic: "orders" }, 400, /pubsub\.publish: value is required/],
        [{ topic: "orders", value: 1, idempotencyKey: "a b" }, 400, /idempotencyKey must be 1-128/],
        [{ topic: "orders", value: 1, key: "" }, 400, /key must be a string of 1 to 256 bytes/],
        [{ topic: "orders", value: "x".repeat(300_000) }, 413, /over the limit of 262144/],
      ];
      for (const [body, status, detail] of cases) {
        const r = await post(n2, "/ps/publish", body);
        equal(r.status, status, JSON.stringify(r.body));
        match(String(r.body.detail), detail);
      }
      const badSub = await post(n2, "/ps/subscribe", { topic: "orders", group: "g", method: "no such" });
      equal(badSub.status, 400);
      match(String(badSub.body.detail), /pubsub\.subscribe: method must be a method name/);
      const badCreate = await post(n2, "/ps/create", { topic: "orders", partitions: 99 });
      equal(badCreate.status, 400);
      match(String(badCreate.body.detail), /partitions must be an integer from 1 to 32, got 99/);
      const api = await n1.api("/api/v1/topics/org.example.orders/orders/seek", {
        method: "POST",
        body: JSON.stringify({ group: "main", offset: -1 }),
        headers: { "content-type": "application/json" },
      });
      equal(api.status, 400);
      match(String((await api.json()).detail), /offset must be an integer from 0/);
    });

    await t.step("set up topics and consumer groups", async () => {
      equal((await post(n1, "/ps/create", { topic: "orders", partitions: 4 })).status, 200);
      for (const group of ["main", "audit"]) {
        const r = await post(n1, "/ps/subscribe", {
          topic: "orders",
          group,
          method: "onMessage",
          maxAttempts: 100,
          from: "earliest",
        });
        equal(r.status, 200, JSON.stringify(r.body));
      }
      const risky = await post(n1, "/ps/subscribe", {
        topic: "risky",
        group: "g",
        method: "onMessage",
        maxAttempts: 3,
        from: "earliest",
      });
      equal(risky.status, 200, JSON.stringify(risky.body));
      const dead = await post(n1, "/ps/subscribe", {
        topic: "risky.dlq",
        group: "watch",
        method: "onDead",
        from: "earliest",
      });
      equal(dead.status, 200, JSON.stringify(dead.body));
    });

    await t.step("idempotent publish: the same key is stored once", async () => {
      const a = await post(n1, "/ps/publish", { topic: "idem", value: 1, idempotencyKey: "order-1" });
      const b = await post(n2, "/ps/publish", { topic: "idem", value: 1, idempotencyKey: "order-1" });
      equal(a.status, 200, JSON.stringify(a.body));
      equal(b.body.duplicate, true);
      equal(b.body.offset, a.body.offset);
      const info = await post(n2, "/ps/info", { topic: "idem" });
      equal(info.body.messages, 1);
    });

    await t.step(
      "kill -9 of the leader during publish and consumption: nothing acknowledged lost",
      async () => {
        const acked = new Map<string, number>(KEYS.map((k) => [k, 0]));
        let publishFailures = 0;
        // One publisher per key, in order: seq n+1 only after n was acknowledged; retried (same idempotency key)
        // through the running nodes until acknowledged.
        const publisher = async (key: string) => {
          for (let seq = 0; seq < PER_KEY; seq++) {
            for (let attempt = 0;; attempt++) {
              const nodes = cluster.running();
              const node = nodes[(seq + attempt) % nodes.length];
              try {
                const r = await post(node, "/ps/publish", {
                  topic: "orders",
                  key,
                  value: { seq },
                  idempotencyKey: `${key}.${seq}`,
                }, 10_000);
                if (r.status === 200) break;
                publishFailures++;
              } catch {
                publishFailures++;
              }
              await new Promise((r) => setTimeout(r, 100));
            }
            acked.set(key, seq + 1);
            await new Promise((r) => setTimeout(r, 20));
          }
        };
        const publishers = KEYS.map(publisher);
        // Poison and good messages on "risky".
        for (let i = 0, seq = 0; i < 6; i++) {
          const poison = i % 3 === 0;
          const value = poison ? { seq: -1, poison } : { seq: seq++ };
          const r = await post(n1, "/ps/publish", { topic: "risky", key: "r", value });
          equal(r.status, 200, JSON.stringify(r.body));
        }
        await cluster.waitFor(
          "a third published",
          () => Promise.resolve([...acked.values()].every((n) => n >= PER_KEY / 3)),
          60_000,
        );
        const victim = cluster.node(await cluster.waitForLeader());
        await victim.kill();
        console.log(`pubsub: killed the leader ${victim.id} with SIGKILL`);
        await cluster.waitForLeader(30_000);
        await victim.start();
        await Promise.all(publishers);
        console.log(
          `pubsub: all ${KEYS.length * PER_KEY} publishes acknowledged (${publishFailures} attempts failed)`,
        );
        const survivor = cluster.running().find((n) => n !== victim)!;
        for (const group of ["main", "audit"]) {
          const progress = await cluster.waitFor(`group ${group} delivered everything`, async () => {
            const r = await post(survivor, "/ps/progress", { group, keys: KEYS });
            const next = r.body.next as Record<string, number>;
            return KEYS.every((k) => next[k] === PER_KEY) ? r.body : null;
          }, 60_000);
          console.log(`pubsub: group ${group}: ${JSON.stringify(progress)}`);
          equal(progress.violations, 0, `order per key kept in ${group}`);
          ok((progress.deliveries as number) >= KEYS.length * PER_KEY);
        }
        // Lag reaches 0 in the API.
        await cluster.waitFor("lag 0", async () => {
          const { body } = await survivor.json<Json>("/api/v1/topics/org.example.orders/orders");
          const groups = body.consumerGroups as Array<{ consumerGroup: string; lag: number }>;
          return groups.length === 2 && groups.every((g) => g.lag === 0);
        }, 20_000);
      },
    );

    await t.step("poison messages reach the dead-letter topic; good ones are delivered", async () => {
      const node = cluster.running()[0];
      const dead = await cluster.waitFor("2 dead letters seen by the dlq subscriber", async () => {
        const r = await post(node, "/ps/progress", { group: "watch", keys: [] });
        return (r.body.dead as number) >= 2 ? r.body : null;
      }, 30_000);
      equal(dead.dead, 2);
      const good = await post(node, "/ps/progress", { group: "g", keys: ["r"] });
      equal(good.body.violations, 0);
      equal((good.body.next as Record<string, number>).r, 4);
      const info = await post(node, "/ps/info", { topic: "risky.dlq" });
      equal(info.body.messages, 2);
      const risky = await post(node, "/ps/info", { topic: "risky" });
      const groups = risky.body.consumerGroups as Array<{ lag: number }>;
      equal(groups[0].lag, 0);
    });

    await t.step("replay: seek a group to offset 0 and every message is delivered again", async () => {
      const node = cluster.running()[1];
      const before = (await post(node, "/ps/progress", { group: "audit", keys: KEYS })).body;
      const r = await node.api("/api/v1/topics/org.example.orders/orders/seek", {
        method: "POST",
        body: JSON.stringify({ group: "audit", offset: 0 }),
        headers: { "content-type": "application/json" },
      });
      equal(r.status, 200, await r.clone().text());
      await r.body?.cancel();
      const after = await cluster.waitFor("redelivered", async () => {
        const p = (await post(node, "/ps/progress", { group: "audit", keys: KEYS })).body;
        return (p.dups as number) - (before.dups as number) >= KEYS.length * PER_KEY ? p : null;
      }, 30_000);
      equal(after.violations, 0);
    });

    await t.step("a subscription the slice declares in its manifest delivers once deployed", async () => {
      const node = cluster.running()[0];
      await cluster.waitFor("the declared group exists", async () => {
        const info = (await post(node, "/ps/info", { topic: "declared" })).body;
        const groups = (info.consumerGroups ?? []) as Array<Json>;
        return groups.some((g) =>
          g.consumerGroup === "decl" && g.method === "onMessage" && g.maxAttempts === 10
        );
      }, 15_000);
      for (let seq = 0; seq < 5; seq++) {
        const r = await post(node, "/ps/publish", { topic: "declared", key: "d", value: { seq } });
        equal(r.status, 200, JSON.stringify(r.body));
      }
      const progress = await cluster.waitFor("declared group delivered", async () => {
        const p = (await post(node, "/ps/progress", { group: "decl", keys: ["d"] })).body;
        return (p.next as Record<string, number>).d === 5 ? p : null;
      }, 20_000);
      equal(progress.violations, 0);
    });

    await t.step("retention by size and by time", async () => {
      const node = cluster.running()[0];
      const bySize = await post(node, "/ps/create", { topic: "small", partitions: 2, retentionBytes: 1024 });
      equal(bySize.status, 200, JSON.stringify(bySize.body));
      const byTime = await post(node, "/ps/create", { topic: "brief", partitions: 1, retentionMs: 1_000 });
      equal(byTime.status, 200, JSON.stringify(byTime.body));
      let refused = 0;
      for (let i = 0; i < 30; i++) {
        for (;;) {
          const r = await post(node, "/ps/publish", { topic: "small", value: { i, pad: "p".repeat(60) } });
          if (r.status === 200) break;
          // Beyond twice its retention a topic refuses publishes until retention caught up (a named limit).
          equal(r.status, 503, JSON.stringify(r.body));
          match(String(r.body.detail), /twice its retention; retention is catching up/);
          refused++;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
      console.log(`pubsub: retention by size: ${refused} publishes refused while retention caught up`);
      equal((await post(node, "/ps/publish", { topic: "brief", value: 1 })).status, 200);
      const small = await cluster.waitFor("retention by size", async () => {
        const info = (await post(node, "/ps/info", { topic: "small" })).body;
        return (info.bytes as number) <= 1024 ? info : null;
      }, 10_000);
      ok((small.messages as number) > 0 && (small.messages as number) < 30, JSON.stringify(small));
      await cluster.waitFor("retention by time", async () => {
        const info = (await post(node, "/ps/info", { topic: "brief" })).body;
        return info.messages === 0;
      }, 10_000);
      const tooShort = await post(node, "/ps/create", { topic: "brief", partitions: 1, retentionMs: 5 });
      equal(tooShort.status, 400);
      match(String(tooShort.body.detail), /retentionMs must be an integer from 1000 to 2592000000, got 5/);
      const repartition = await post(node, "/ps/create", { topic: "small", partitions: 3 });
      equal(repartition.status, 409);
      match(String(repartition.body.detail), /exists with 2 partitions/);
    });

    await t.step("hostile: another group's slice reaches only its own topics", async () => {
      const node = cluster.running()[0];
      // The same topic name is the other group's own, empty topic.
      equal((await post(node, "/other/info", { topic: "orders" })).body.value, null);
      const pub = await post(node, "/other/publish", { topic: "orders", value: { seq: 0 } });
      equal(pub.status, 200, JSON.stringify(pub.body));
      const mine = await post(node, "/other/info", { topic: "orders" });
      equal(mine.body.group, "org.example.other");
      equal(mine.body.messages, 1);
      // The orders group's topic did not get the message.
      const theirs = await post(node, "/ps/info", { topic: "orders" });
      equal(theirs.body.messages, KEYS.length * PER_KEY);
      // It cannot subscribe the orders slice (another group) nor seek the orders group's consumer groups.
      const cross = await post(node, "/other/subscribe", {
        topic: "orders",
        group: "steal",
        method: "onMessage",
        slice: "org.example.orders:pubsub",
      });
      equal(cross.status, 400);
      match(String(cross.body.detail), /is not of the topic's group org\.example\.other/);
      const seek = await post(node, "/other/seek", { topic: "orders", group: "main", offset: 0 });
      equal(seek.status, 404);
      // Its own subscription gets only its own message.
      const own = await post(node, "/other/subscribe", {
        topic: "orders",
        group: "mine",
        method: "onMessage",
      });
      equal(own.status, 200, JSON.stringify(own.body));
      await cluster.waitFor("the other group's lag 0", async () => {
        const r = await post(node, "/other/info", { topic: "orders" });
        const groups = r.body.consumerGroups as Array<{ lag: number }>;
        return groups.length === 1 && groups[0].lag === 0;
      }, 20_000);
    });

    await t.step("the API and aether topics list, show, lag, seek", async () => {
      const node = cluster.running()[0];
      const { status, body } = await node.json<{ items: Array<Json> }>("/api/v1/topics");
      equal(status, 200);
      const names = body.items.map((t) => `${t.group}/${t.topic}`);
      for (
        const name of [
          "org.example.orders/orders",
          "org.example.orders/risky.dlq",
          "org.example.other/orders",
        ]
      ) {
        ok(names.includes(name), `${name} in ${names.join(", ")}`);
      }
      const cli = (...args: string[]) =>
        runCli(["--connect", `127.0.0.1:${node.ready!.apiPort}`, "--token", cluster.token, ...args]);
      const list = await cli("topics", "list", "--group", "org.example.orders");
      equal(list.code, 0, list.stderr);
      match(list.stdout, /TOPIC\s+PARTITIONS\s+MESSAGES/);
      match(
        list.stdout,
        /org\.example\.orders\/orders\s+4\s+180\s+\d+\s+7d, 16777216 B\s+(audit|main) \(0\)/,
      );
      ok(!list.stdout.includes("org.example.other"), list.stdout);
      const show = await cli("topics", "show", "org.example.orders/risky");
      equal(show.code, 0, show.stderr);
      match(show.stdout, /g\s+org\.example\.orders:pubsub\.onMessage\s+3\s+0/);
      const lag = await cli("topics", "lag", "org.example.orders/orders");
      equal(lag.code, 0, lag.stderr);
      match(lag.stdout, /GROUP\s+PARTITION\s+NEXT\s+HEAD\s+LAG/);
      equal(lag.stdout.trim().split("\n").length, 1 + 2 * 4, lag.stdout);
      console.log(`$ aether topics list --group org.example.orders\n${list.stdout}`);
      console.log(`$ aether topics show org.example.orders/risky\n${show.stdout}`);
      console.log(`$ aether topics lag org.example.orders/orders\n${lag.stdout}`);
      const seek = await cli("topics", "seek", "org.example.orders/orders", "main", "0", "--partition", "1");
      equal(seek.code, 0, seek.stderr);
      match(
        seek.stdout,
        /consumer group main of org\.example\.orders\/orders moved to offset 0 \(partition 1\)/,
      );
      const bad = await cli("topics", "show", "orders");
      equal(bad.code, 2, bad.stdout); // a usage error
      match(bad.stderr, /topic "orders" must be <group>\/<topic>/);
      // Lag per group in the metrics: the node samples, the cluster snapshot, Prometheus.
      await cluster.waitFor("lag in the cluster snapshot", async () => {
        const { body } = await node.json<{ topics?: Array<Json> }>("/api/v1/metrics");
        return body.topics?.some((t) =>
          t.topic === "org.example.orders/orders" && t.consumerGroup === "audit" && t.lag === 0
        );
      }, 15_000);
      const prom = await (await node.api("/metrics?scope=cluster")).text();
      match(prom, /# TYPE aether_pubsub_lag gauge/);
      match(prom, /aether_pubsub_lag\{node="n\d",topic="org\.example\.orders\/orders",group="main"\} \d+/);
      const missing = await cli("topics", "show", "org.example.orders/nope");
      ok(missing.code !== 0);
      match(missing.stderr, /no topic nope in group org\.example\.orders/);
    });
  } catch (e) {
    console.error(
      cluster.logs().split("\n").filter((l) => /pubsub|error|ERROR/.test(l)).slice(-80).join("\n"),
    );
    throw e;
  } finally {
    await cluster.close();
  }
});
