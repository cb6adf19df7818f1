/**
 * Dynamic configuration, secrets and the cluster-wide rate limiter on 3 real node processes (slices in process
 * isolation, tests/integration/fixtures/config_slice.ts and config_snoop.ts):
 *
 * - a config change reaches every instance (its onConfigChange listener) within a second of the PUT, bad
 *   values are refused naming the field, and the live node setting log.level follows flag < cluster;
 * - a secret is read by the slice that declares it, refused (403) to one that does not, audited both ways,
 *   and absent in clear from the KV and from every node's log;
 * - a rate limit of 200/s asked for by all three nodes grants within 5% of 200/s over 4 s (bound: at most
 *   rate × T + burst), and one node alone gets at least 85% of the rate (the leader moved the shares to it).
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { newMasterKeyText } from "../../runtime/infra-host/mod.ts";

type Json = Record<string, unknown>;
const SECRET_VALUE = `s3cret-${crypto.randomUUID()}`;
const RATE = 200;
const BURST = 20;
const WINDOW_MS = 4_000;

async function call(node: NodeProcess, method: string, path: string, body?: unknown) {
  const response = await fetch(node.httpUrl + path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Json };
}

async function api(node: NodeProcess, method: string, path: string, body?: unknown) {
  return await node.json<Json>(path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
}

async function deploy(node: NodeProcess, artifact: string, instances: number) {
  const { status, body } = await api(node, "POST", "/api/v1/deploy", { artifact, instances });
  if (status !== 200 && status !== 201) {
    throw new Error(`deploy ${artifact}: ${status} ${JSON.stringify(body)}`);
  }
}

Deno.test({
  name: "config, secrets and rate limits on 3 nodes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const cluster = await TestCluster.create(3, {
      argsFor: (_id, root) => ["--secrets-key-file", `${root}/secrets.key`],
    });
    try {
      await Deno.writeTextFile(`${cluster.root}/secrets.key`, newMasterKeyText(), { mode: 0o600 });
      await cluster.startAll();
      await cluster.waitForLeader();
      const [n1, n2, n3] = cluster.nodes;
      const dir = new URL("./fixtures/", import.meta.url).pathname;
      await pushArtifact(n1, await buildSlice(`${dir}config_slice.ts`));
      await pushArtifact(n1, await buildSlice(`${dir}config_snoop.ts`));
      await deploy(n1, "org.example.cfg:settings:1.0.0", 3);
      await deploy(n1, "org.example.snoop:snoop:1.0.0", 1);
      await cluster.waitFor("3 settings and 1 snoop ACTIVE on distinct nodes", async () => {
        const slices = await sliceStatuses(n1);
        const settings = slices.find((s) => s.slice === "org.example.cfg:settings")?.instances ?? [];
        const snoop = slices.find((s) => s.slice === "org.example.snoop:snoop")?.instances ?? [];
        return settings.filter((i) => i.state === "ACTIVE").length === 3 &&
          new Set(settings.map((i) => i.node)).size === 3 && snoop.some((i) => i.state === "ACTIVE");
      }, 90_000);
      for (const node of cluster.nodes) {
        await cluster.waitFor(
          `${node.id} routes /cfg`,
          async () => (await call(node, "GET", "/cfg/show")).status === 200,
        );
      }

      await t.step(
        "a config change reaches every instance within a second; bad values are refused",
        async () => {
          const before = Date.now();
          const put = await api(n2, "PUT", "/api/v1/config/org.example.cfg:settings", {
            values: { greeting: "bonjour" },
          });
          equal(put.status, 200, JSON.stringify(put.body));
          const seen = await Promise.all(
            cluster.nodes.map((node) =>
              cluster.waitFor(`${node.id} sees greeting=bonjour`, async () => {
                const { body } = await call(node, "GET", "/cfg/show");
                const change = (body.changes as Array<{ atMs: number; greeting: string }>)
                  .find((c) => c.greeting === "bonjour");
                return (body.config as Json).greeting === "bonjour" && change ? change.atMs - before : null;
              }, 10_000)
            ),
          );
          console.log(
            `config propagation (PUT to every instance's listener): ${
              seen.map((ms) => `${ms} ms`).join(", ")
            }`,
          );
          ok(Math.max(...seen) <= 1_000, `every instance within a second: ${seen}`);
          const bad = await api(n1, "PUT", "/api/v1/config/org.example.cfg:settings", {
            values: { limit: 500 },
          });
          equal(bad.status, 400);
          ok(
            String(bad.body.detail).includes("limit") && String(bad.body.detail).includes("at most 100"),
            String(bad.body.detail),
          );
          const unknown = await api(n1, "PUT", "/api/v1/config/org.example.cfg:settings", {
            values: { nope: 1 },
          });
          equal(unknown.status, 400);
          ok(String(unknown.body.detail).includes("nope"), String(unknown.body.detail));
          const view = await api(n3, "GET", "/api/v1/config/org.example.cfg:settings");
          equal((view.body.effective as Json).limit, 10);
          equal((view.body.values as Json).greeting, "bonjour");
          // node setting: flag < cluster
          const setting = await api(n1, "PUT", "/api/v1/settings/log.level", { value: "debug" });
          equal(setting.status, 200, JSON.stringify(setting.body));
          equal(setting.body.source, "cluster");
          const badSetting = await api(n1, "PUT", "/api/v1/settings/log.level", { value: "loud" });
          equal(badSetting.status, 400);
          const unset = await api(n1, "DELETE", "/api/v1/settings/log.level");
          equal(unset.body.source, "flag");
          equal(unset.body.value, "info");
        },
      );

      await t.step(
        "a secret: declared slice reads it, undeclared refused, audited, never in clear",
        async () => {
          const put = await api(n1, "PUT", "/api/v1/secrets/db-password", { value: SECRET_VALUE });
          equal(put.status, 201, JSON.stringify(put.body));
          for (const node of cluster.nodes) {
            const read = await call(node, "POST", "/cfg/secret", { name: "db-password" });
            equal(read.status, 200, JSON.stringify(read.body));
            equal(read.body.value, SECRET_VALUE);
          }
          const rotated = await api(n2, "POST", "/api/v1/secrets/db-password/rotate", {
            value: `${SECRET_VALUE}-2`,
          });
          equal(rotated.body.current, 2);
          equal(
            (await call(n3, "POST", "/cfg/secret", { name: "db-password" })).body.value,
            `${SECRET_VALUE}-2`,
          );
          let stolen = { status: 0, body: {} as Json };
          for (const node of cluster.nodes) {
            const attempt = await call(node, "POST", "/snoop/steal", { name: "db-password" });
            if (attempt.status !== 404) stolen = attempt;
          }
          equal(stolen.status, 403, JSON.stringify(stolen.body));
          ok(!JSON.stringify(stolen.body).includes(SECRET_VALUE));
          const raw = await n1.api("/api/v1/kv/secrets/db-password");
          const rawText = await raw.text();
          ok(rawText.length > 0 && !rawText.includes(SECRET_VALUE), "the KV holds ciphertext only");
          const list = await api(n1, "GET", "/api/v1/secrets");
          ok(!JSON.stringify(list.body).includes(SECRET_VALUE));
          const audit = await cluster.waitFor("secret reads audited", async () => {
            const { body } = await api(n1, "GET", "/api/v1/audit?limit=1000");
            const reads = (body.items as Array<Json>).filter((r) => r.method === "READ");
            return reads.some((r) => r.status === 403) && reads.filter((r) => r.status === 200).length >= 4
              ? reads
              : null;
          });
          ok(audit.every((r) => !JSON.stringify(r).includes(SECRET_VALUE)));
          const logs = await api(n1, "GET", "/api/v1/logs?limit=10000");
          ok(!JSON.stringify(logs.body).includes(SECRET_VALUE), "absent from the cluster's log ring");
          ok(!cluster.logs().includes(SECRET_VALUE), "absent from every node's output");
        },
      );

      await t.step(
        `rate limit ${RATE}/s: 3 nodes together within 5%, one node alone gets its shares`,
        async () => {
          const set = await api(n1, "PUT", "/api/v1/ratelimits/test", { ratePerSec: RATE, burst: BURST });
          equal(set.status, 200, JSON.stringify(set.body));
          await cluster.waitFor("every node knows the limit", async () => {
            const lists = await Promise.all(cluster.nodes.map((n) => api(n, "GET", "/api/v1/ratelimits")));
            return lists.every((l) => (l.body.ratelimits as Json[]).some((r) => r.name === "test"));
          });
          const all = await Promise.all(
            cluster.nodes.map((node) => call(node, "POST", "/cfg/acquire", { name: "test", ms: WINDOW_MS })),
          );
          const granted = all.reduce((sum, r) => sum + (r.body.granted as number), 0);
          const expected = (RATE * WINDOW_MS) / 1000;
          const error = (granted - expected) / expected;
          console.log(
            `rate limit accuracy, 3 nodes: ${granted} granted in ${WINDOW_MS} ms at ${RATE}/s (expected ${expected}, ` +
              `${(error * 100).toFixed(1)}%); asked ${all.map((r) => r.body.asked).join("+")}`,
          );
          ok(granted <= expected + BURST, `at most rate × T + burst: ${granted}`);
          ok(Math.abs(error) <= 0.05, `within 5%: ${granted} of ${expected}`);
          await new Promise((r) => setTimeout(r, 2_000)); // demand reports go stale
          const alone = await call(n2, "POST", "/cfg/acquire", { name: "test", ms: WINDOW_MS });
          const share = (alone.body.granted as number) / expected;
          console.log(
            `rate limit, one node alone: ${alone.body.granted} granted (${
              (share * 100).toFixed(1)
            }% of the rate)`,
          );
          ok(share >= 0.85 && (alone.body.granted as number) <= expected + BURST, `one node: ${share}`);
        },
      );
    } catch (e) {
      console.error(cluster.logs().slice(-20_000));
      throw e;
    } finally {
      await cluster.close();
    }
  },
});
