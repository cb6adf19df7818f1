/**
 * Issue 20 checked from outside, the way an operator and a slice author meet it: the `aether` CLI as its own
 * process against 3 real nodes running the URL shortener and a slice with config, a secret and a rate limit.
 * Each step is a defect found that way (a message, an exit code, a figure or a guarantee that did not hold),
 * or a bar of the issue checked as a user would (the hot link through a kill -9).
 */

import { doesNotMatch, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { newMasterKeyText } from "../../runtime/infra-host/mod.ts";
import { runCli } from "../_support/cli.ts";
import { runLoad } from "../../runtime/loadgen/mod.ts";

type Json = Record<string, unknown>;

const LINKS = new URL("../../examples/url-shortener/links/slice.ts", import.meta.url).pathname;
const BLUEPRINT = new URL("../../examples/url-shortener/blueprint.toml", import.meta.url).pathname;
const SETTINGS = new URL("./fixtures/config_slice.ts", import.meta.url).pathname;
const CACHER = new URL("../fixtures/infra/cacher.ts", import.meta.url).pathname;
const PROBE = new URL("../fixtures/infra/probe.ts", import.meta.url).pathname;
const SECRET_VALUE = `outside-${crypto.randomUUID()}`;
/** A stack trace line, as a CLI error that escaped its handling prints it. */
const STACK = /\n\s+at /;

async function call(node: NodeProcess, method: string, path: string, body?: unknown) {
  const response = await fetch(node.httpUrl + path, {
    method,
    redirect: "manual",
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Json };
}

async function waitActive(cluster: TestCluster, node: NodeProcess, slice: string, count: number) {
  await cluster.waitFor(`${slice} ${count} ACTIVE`, async () => {
    const s = (await sliceStatuses(node)).find((x) => x.slice === slice);
    return s !== undefined && s.instances.filter((i) => i.state === "ACTIVE" && i.connected).length >= count;
  }, 90_000);
}

async function waitRoute(cluster: TestCluster, node: NodeProcess, path: string) {
  await cluster.waitFor(`${node.id} routes ${path}`, async () => {
    const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
    return body.routes.some((r) => r.path === path);
  }, 30_000);
}

/**
 * Publishes a slice; a 503 "nothing was published" (seen once: a member's mesh connection closed during the
 * transfer right after the cluster formed) is tried again, as an operator would.
 */
async function push(node: NodeProcess, entry: string): Promise<void> {
  const slice = await buildSlice(entry);
  for (let attempt = 1;; attempt++) {
    try {
      return await pushArtifact(node, slice);
    } catch (e) {
      if (attempt >= 3 || !/answered 503.*nothing was published/.test(String(e))) throw e;
      console.log(`push of ${entry} again after: ${e}`);
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

/** A port nothing listens on: a redirect there, if followed, fails. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Every file under `dir` that holds `needle` (bytes), for "the secret is nowhere on disk in clear". */
async function filesHolding(dir: string, needle: string): Promise<string[]> {
  const bytes = new TextEncoder().encode(needle);
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...await filesHolding(path, needle));
    else if (entry.isFile && contains(await Deno.readFile(path), bytes)) found.push(path);
  }
  return found;
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test({
  name: "issue 20 from outside: the CLI, the URL shortener and secrets as an operator meets them",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const cluster = await TestCluster.create(3, {
      fsync: "never",
      argsFor: (_id, root) => ["--secrets-key-file", `${root}/secrets.key`],
    });
    try {
      await Deno.writeTextFile(`${cluster.root}/secrets.key`, newMasterKeyText(), { mode: 0o600 });
      await cluster.startAll();
      await cluster.waitForLeader();
      const [n1, , n3] = cluster.nodes;
      const cli = (args: string[], stdin?: string) =>
        runCli(
          [
            "--connect",
            cluster.running().map((n) => `127.0.0.1:${n.ready!.apiPort}`).join(","),
            "--token",
            cluster.token,
            ...args,
          ],
          stdin === undefined ? {} : { stdin },
        );
      for (const entry of [LINKS, SETTINGS, CACHER]) await push(n1, entry);
      const applied = await postBlueprint(n1, await Deno.readTextFile(BLUEPRINT));
      equal(applied.status, 201, JSON.stringify(applied.body));
      for (const artifact of ["org.example.cfg:settings:1.0.0", "org.example.cacher:cacher:1.0.0"]) {
        const { status, body } = await n1.json<Json>("/api/v1/deploy", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ artifact, instances: artifact.includes("settings") ? 3 : 1 }),
        });
        ok(status === 200 || status === 201, `deploy ${artifact}: ${status} ${JSON.stringify(body)}`);
      }
      await waitActive(cluster, n1, "org.example.links:links", 3);
      await waitActive(cluster, n1, "org.example.cfg:settings", 3);
      await waitActive(cluster, n1, "org.example.cacher:cacher", 1);
      for (const node of cluster.nodes) {
        await waitRoute(cluster, node, "/u/links");
        await waitRoute(cluster, node, "/cfg/show");
      }

      await t.step("a blueprint requiring a missing service: exit 1 and the seed's message", async () => {
        const file = `${cluster.root}/bad.toml`;
        await Deno.writeTextFile(
          file,
          `id = "org.example.links:bad:1.0.0"\n[[slices]]\nartifact = "org.example.links:links:1.0.0"\n` +
            `instances = 1\nrequires = ["caching"]\n`,
        );
        const r = await cli(["blueprint", "apply", file]);
        equal(r.code, 1, r.stderr);
        match(r.stderr, /Required infrastructure service 'caching' not found\./);
        match(r.stderr, /Available services in infrastructure repository:\n {2}- cache \(v1\.0\.0\)/);
        match(r.stderr, /To add caching service:\n {2}aether infra install caching/);
        doesNotMatch(r.stderr, STACK);
        const long = await n1.json<Json>(`/api/v1/infra/${"a".repeat(200)}`);
        equal(long.status, 400);
        match(String(long.body.detail), /must be 1-64 characters/, "a name too long says so (was 'not a-z')");
      });

      await t.step("aether deploy of a slice whose manifest requires lock starts lock first", async () => {
        // Issue 20 item 1: "A slice's manifest `requires` is honoured the same way" (tested elsewhere only
        // through blueprints that name the services themselves).
        const before = await cli(["infra", "status", "lock"]);
        match(before.stdout, /running {2}no/, before.stdout);
        await push(n1, PROBE);
        const deployed = await cli(["deploy", "org.example.probe:probe:1.0.0", "--instances", "1", "--wait"]);
        equal(deployed.code, 0, `${deployed.stdout}\n${deployed.stderr}`);
        const after = await cli(["infra", "status", "lock"]);
        match(after.stdout, /running {2}yes/, after.stdout);
        await waitActive(cluster, n1, "org.example.probe:probe", 1);
      });

      await t.step(
        "aether load against the shortener's resolve: a 302 is a success, never followed",
        async () => {
          // The redirect points at a closed port: following it (what `aether load` did) fails every request.
          const created = await call(n1, "POST", "/u/links", {
            url: `http://127.0.0.1:${closedPort()}/page`,
          });
          equal(created.status, 201, JSON.stringify(created.body));
          const code = String(created.body.code);
          const urls = cluster.nodes.map((n) => n.httpUrl).join(",");
          const r = await cli([
            "load",
            "--url",
            urls,
            "--rate",
            "40/s",
            "--duration",
            "2s",
            "--target",
            `GET /u/r/${code}`,
            "--timeout",
            "10s",
            "--min-success",
            "100",
          ]);
          equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
          match(r.stdout, /success\s+80\/80 = 100\.0+%/);
          match(r.stdout, /status\s+302: 80/);
          const stats = await call(n3, "GET", `/u/links/${code}`);
          equal(stats.body.clicks, 80, "each resolve counted once");
        },
      );

      await t.step(
        "refused CLI arguments and settings: one line naming what is wrong, no stack",
        async () => {
          const assignment = await cli(["config", "set", "org.example.cfg:settings", "greeting"]);
          equal(assignment.code, 2, assignment.stderr);
          match(assignment.stderr, /"greeting" is not key=value/);
          doesNotMatch(assignment.stderr, STACK);
          const rate = await cli(["ratelimit", "set", "api", "--rate", "fast"]);
          equal(rate.code, 2, rate.stderr);
          doesNotMatch(rate.stderr, STACK);
          const unknown = await cli(["config", "setting", "nope"]);
          equal(unknown.code, 1, unknown.stderr);
          match(unknown.stderr, /no setting nope \(settings: outbound\.allow, log\.level/);
          doesNotMatch(unknown.stderr, STACK);
          const allow = await cli(["config", "setting", "outbound.allow", '["example.org"]']);
          equal(allow.code, 1, allow.stderr);
          match(
            allow.stderr,
            /setting outbound\.allow: expected a string, got \["example\.org"\] \(text: hosts/,
          );
          doesNotMatch(allow.stderr, /undefined/);
          const schema = await cli(["config", "set", "org.example.cfg:settings", "limit=500"]);
          equal(schema.code, 1, schema.stderr);
          match(schema.stderr, /limit must be at most 100, got 500/);
          const text = await cli(["config", "set", "org.example.cfg:settings", "greeting=42"]);
          equal(text.code, 1, text.stderr);
          match(
            text.stderr,
            /greeting expected a string, got 42\n\(to set the text 42, quote it: greeting='"42"'\)/,
          );
          const typo = await cli(["config", "get", "org.example.cfg:setting"]);
          equal(typo.code, 1, `${typo.stdout}\n${typo.stderr}`);
          match(
            typo.stderr,
            /no published artifact of org\.example\.cfg:setting/,
            "not 'no configuration fields'",
          );
          const quoted = await cli(["config", "set", "org.example.cfg:settings", `greeting="42"`]);
          equal(quoted.code, 0, quoted.stderr);
          match(quoted.stdout, /greeting\s+"42"\s+"42"/);
        },
      );

      await t.step(
        "a secret: read by the declaring slice, audited with its name, nowhere in clear",
        async () => {
          const set = await cli(["secret", "set", "db-password"], SECRET_VALUE);
          equal(set.code, 0, set.stderr);
          doesNotMatch(set.stdout + set.stderr, new RegExp(SECRET_VALUE));
          const read = await call(n3, "POST", "/cfg/secret", { name: "db-password" });
          equal(read.status, 200, JSON.stringify(read.body));
          equal(read.body.value, SECRET_VALUE);
          const audit = await cli(["audit", "--limit", "50"]);
          equal(audit.code, 0, audit.stderr);
          const row = audit.stdout.split("\n").find((l) => l.includes("READ /secrets/db-password"));
          ok(row, audit.stdout);
          match(row!, /slice org\.example\.cfg:settings:1\.0\.0/, "the audit names the slice that read it");
          doesNotMatch(audit.stdout, new RegExp(SECRET_VALUE));
          const kv = await cli(["kv", "get", "secrets/db-password"]);
          equal(kv.code, 0, kv.stderr);
          doesNotMatch(kv.stdout, new RegExp(SECRET_VALUE));
          const list = await cli(["secret", "list"]);
          doesNotMatch(list.stdout, new RegExp(SECRET_VALUE));
          // Data directories (consensus log and snapshots, the store's SQLite and WAL) and the nodes' logs.
          const inClear = await filesHolding(cluster.root, SECRET_VALUE);
          equal(inClear.length, 0, `the value is in clear in ${inClear.join(", ")}`);
        },
      );

      await t.step(
        "a member killed: the two others share the whole rate; config set meanwhile reaches it on restart",
        async () => {
          // Issue 20: each service's failure behaviour. Nothing else kills a node while permits are taken or
          // configuration changes.
          const leaderId = await cluster.waitForLeader();
          const victim = cluster.nodes.find((n) => n.id !== leaderId)!;
          const survivors = cluster.nodes.filter((n) => n !== victim);
          const set = await cli(["ratelimit", "set", "outside", "--rate", "100/s", "--burst", "10"]);
          equal(set.code, 0, set.stderr);
          await victim.stop("SIGKILL");
          // The leader splits the rate among the members it reaches, by their demand: wait for a survivor's
          // share to pass a third, then ask from both as fast as they can for 4 s.
          await cluster.waitFor("a survivor's share passes a third", async () => {
            await Promise.all(
              survivors.map((n) => call(n, "POST", "/cfg/acquire", { name: "outside", ms: 300 })),
            );
            const { body } = await survivors[0].json<{ ratelimits: Array<{ name: string; share: number }> }>(
              "/api/v1/ratelimits",
            );
            return (body.ratelimits.find((r) => r.name === "outside")?.share ?? 0) > 0.4;
          }, 20_000);
          const windowMs = 4_000;
          const asked = await Promise.all(
            survivors.map((n) => call(n, "POST", "/cfg/acquire", { name: "outside", ms: windowMs })),
          );
          const granted = asked.reduce((sum, r) => sum + (r.body.granted as number), 0);
          console.log(`two survivors granted ${granted} in ${windowMs} ms at 100/s (expected about 400)`);
          ok(granted <= 400 + 10 + 20, `never above rate x T + burst (+ a share move): ${granted}`);
          const shares = await Promise.all(survivors.map(async (n) => {
            const { body } = await n.json<{ ratelimits: Array<{ name: string; share: number }> }>(
              "/api/v1/ratelimits",
            );
            return body.ratelimits.find((r) => r.name === "outside")?.share ?? 0;
          }));
          ok(shares[0] + shares[1] >= 0.9, `the survivors hold the dead member's share too: ${shares}`);
          // At 1/3 each they would get ~267; a CPU-starved machine under-grants (322 seen at load 28).
          ok(granted >= 280, `the survivors get the dead member's share too: ${granted}`);

          const changed = await cli(["config", "set", "org.example.cfg:settings", "greeting=while-down"]);
          equal(changed.code, 0, changed.stderr);
          await victim.start();
          await cluster.waitFor(`${victim.id} answers with greeting=while-down`, async () => {
            const shown = await call(victim, "GET", "/cfg/show").catch(() => undefined);
            return shown?.status === 200 && (shown.body.config as Json).greeting === "while-down";
          }, 60_000);
        },
      );

      await t.step({
        // Was a defect in runtime/infra-host/cache_service.ts (fixed in 5d89ce3): entries and bytes were
        // tracked only for caches given maxEntries/maxBytes, so a cache without bounds (the default, the
        // shortener's "links") always reported entries 0, bytes 0 however many it held. Issue 20 item 3 asks
        // for each cache's size in the metrics (stats is what the metrics read).
        name: "an unbounded cache reports its entries and bytes in /metrics",
        fn: async () => {
          for (let i = 0; i < 5; i++) {
            const put = await call(n1, "POST", "/cacher/run", {
              op: "put",
              name: "sizes",
              key: `k${i}`,
              value: i,
            });
            equal(put.status, 200, JSON.stringify(put.body));
          }
          const stats = await call(n1, "POST", "/cacher/run", { op: "stats", name: "sizes" });
          ok((stats.body.entries as number) >= 5, `stats: ${JSON.stringify(stats.body)}`);
          ok((stats.body.bytes as number) > 0, `stats: ${JSON.stringify(stats.body)}`);
        },
      });
      await t.step({
        // The bar for the URL shortener: 200 resolves/s open loop (with a client timeout) through a kill
        // -9 of a node, >= 99.9% answered on the survivors, no link and no acknowledged click lost. Clicks are
        // at least once around the loss (a resolve retried on another instance after its click landed, or an
        // add retried behind more than 16 others of its key, counts again): 3-5% over was seen by hand before
        // the clicks were batched, up to 1.5% after; the bound asserted is 5%.
        name: "a hot link at 200 resolves/s through a kill -9: >= 99.9% answered, no click lost",
        fn: async () => {
          const created = await call(n1, "POST", "/u/links", { url: "https://example.org/hot" });
          equal(created.status, 201, JSON.stringify(created.body));
          const code = String(created.body.code);
          // As Forge does it: requests spread over every node (a refused one goes to the next), the victim
          // restarted 0.5 s after its SIGKILL. At 545f6eb (clicks group-committed) this step failed with
          // "3045 clicks for 3000 resolves sent" (2998 answered) at load 22; another run at load 40 answered
          // 962 of 3000 (1002 timeouts, 970 dropped, 47 503s); earlier runs also counted exactly.
          const load = runLoad({
            target: `GET /u/r/${code}`,
            urls: cluster.nodes.map((n) => n.httpUrl),
            failover: true,
            ratePerSecond: 200,
            durationMs: 15_000,
            timeoutMs: 10_000,
          });
          await new Promise((r) => setTimeout(r, 3_000));
          // Its URL now: the restarted node binds a new port, so n3.httpUrl names another URL afterwards.
          const victimUrl = n3.httpUrl;
          await n3.stop("SIGKILL");
          await new Promise((r) => setTimeout(r, 500));
          await n3.start();
          const report = await load;
          const stats = await call(n1, "GET", `/u/links/${code}`);
          console.log(
            `hot link through a kill -9: ${report.succeeded}/${report.requests} answered, ` +
              `${stats.body.clicks} clicks counted`,
            report.statuses,
            report.perUrl.map((u) =>
              `${u.url === victimUrl ? "victim" : "survivor"} ${u.succeeded}/${u.requests}`
            ),
          );
          // Requests in flight on the victim when it died are reset: no client can know their outcome. The
          // bar is on the requests the survivors took.
          const survivors = report.perUrl.filter((u) => u.url !== victimUrl);
          equal(survivors.length, 2, JSON.stringify(report.perUrl));
          const taken = survivors.reduce((sum, u) => sum + u.requests, 0);
          const answered = survivors.reduce((sum, u) => sum + u.succeeded, 0);
          ok(
            answered / taken >= 0.999,
            `survivors: ${answered}/${taken}, ${JSON.stringify(report.statuses)}`,
          );
          ok(
            (stats.body.clicks as number) <= report.requests * 1.05,
            `${stats.body.clicks} clicks for ${report.requests} resolves sent`,
          );
          ok((stats.body.clicks as number) >= report.succeeded, "every answered resolve counted");
        },
      });
    } finally {
      await cluster.close();
    }
  },
});
