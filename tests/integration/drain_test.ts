/**
 * Node drain on real node processes (3 members on loopback, labelled zone=a/b/c) under a steady load of about
 * 200 HTTP requests per second over the three nodes' app ports:
 *
 * - `aether node list` shows each node's labels (published from `--labels`);
 * - `aether node drain n3 --wait` moves every instance off n3, each replacement ACTIVE before the old one
 *   stops, with no failed request (through n3's app port too: it still routes to the other nodes);
 * - the drained node is stopped with no failed request (load through the other two nodes);
 * - `aether cluster rolling-restart` is refused while n3 is down (another restart could lose quorum);
 * - `aether node uncordon` makes it schedulable again.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";

const SLICE = "org.example.rollout:stock";
const ZONES: Record<string, string> = { n1: "a", n2: "b", n3: "c" };

const cli = (node: NodeProcess, ...args: string[]) =>
  runCli(["--connect", `127.0.0.1:${node.ready!.apiPort}`, "--token", node.options.token!, ...args]);

/** Steady load: one request every 5 ms, round-robin over `nodes`; counts failures. */
class Load {
  readonly failures: string[] = [];
  sent = 0;
  done = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(private readonly nodes: NodeProcess[]) {}

  start(): void {
    this.#timer = setInterval(() => {
      const node = this.nodes[this.sent++ % this.nodes.length];
      const p = this.#one(node).finally(() => this.#inFlight.delete(p));
      this.#inFlight.add(p);
    }, 5);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
  }

  async #one(node: NodeProcess): Promise<void> {
    try {
      const response = await fetch(`${node.httpUrl}/stock/which`);
      const body = await response.json();
      this.done++;
      if (response.status !== 200) this.failures.push(`${node.id}: ${response.status} ${body.detail ?? ""}`);
    } catch (e) {
      this.done++;
      this.failures.push(`${node.id}: fetch: ${(e as Error).message}`);
    }
  }
}

async function placement(node: NodeProcess): Promise<Record<string, string[]>> {
  const slice = (await sliceStatuses(node)).find((s) => s.slice === SLICE);
  const out: Record<string, string[]> = {};
  for (const i of slice?.instances ?? []) (out[i.node] ??= []).push(i.state);
  return out;
}

Deno.test("node drain under steady load: instances leave one at a time, no failed request", async () => {
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    argsFor: (id) => ["--labels", `zone=${ZONES[id]},disk=ssd`],
  });
  let load: Load | undefined;
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    await cluster.waitFor("every member reaches the others", async () => {
      const { body } = await n1.json<{ members: { connected: boolean }[] }>("/api/v1/status");
      return body.members.length === 3 && body.members.every((m) => m.connected);
    }, 30_000);
    const path = new URL("./fixtures/rollout_slice.ts", import.meta.url).pathname;
    await pushArtifact(n1, await buildSlice(path, { version: "1.0.0" }));
    const deploy = await cli(n1, "deploy", `${SLICE}:1.0.0`, "--instances", "4");
    equal(deploy.code, 0, deploy.stderr);
    await cluster.waitFor("4 ACTIVE instances, some on n3", async () => {
      const s = (await sliceStatuses(n1)).find((x) => x.slice === SLICE);
      return s?.settled === true && s.instances.filter((i) => i.state === "ACTIVE").length === 4 &&
        s.instances.some((i) => i.node === "n3");
    }, 60_000);

    await cluster.waitFor("labels published", async () => {
      const out = await cli(n2, "node", "list");
      return out.code === 0 && /n3 .*zone=c/.test(out.stdout) && /n1 .*zone=a/.test(out.stdout);
    }, 20_000);

    load = new Load(cluster.nodes);
    load.start();
    await new Promise((r) => setTimeout(r, 1_000));
    const before = { failures: load.failures.length, done: load.done };
    const started = Date.now();
    const drained = await cli(n2, "node", "drain", "n3", "--wait", "--timeout-ms", "60000");
    const tookMs = Date.now() - started;
    equal(drained.code, 0, `${drained.stderr}\n${cluster.logs().slice(-10_000)}`);
    match(drained.stdout, /n3: drained in \d+ ms/);
    const where = await placement(n1);
    equal(where.n3, undefined, JSON.stringify(where));
    await cluster.waitFor("4 ACTIVE on n1 and n2", async () => {
      const p = await placement(n1);
      return (p.n1 ?? []).concat(p.n2 ?? []).filter((s) => s === "ACTIVE").length === 4;
    }, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    await load.stop();
    deepStrictEqual(load.failures.slice(before.failures), [], "no failed request during the drain");
    console.log(
      `drain of n3 (${where.n1?.length ?? 0}+${where.n2?.length ?? 0} after): ${tookMs} ms, ` +
        `${load.done - before.done} requests, ${load.failures.length - before.failures} failed`,
    );

    const list = await cli(n1, "node", "list");
    match(list.stdout, /n3\s+yes\s+drained\s+zone=c,disk=ssd\s+none/);

    // The drained node stops; clients of the other two nodes see nothing.
    load = new Load([n1, n2]);
    load.start();
    await new Promise((r) => setTimeout(r, 500));
    await n3.stop("SIGTERM");
    await new Promise((r) => setTimeout(r, 3_000));
    await load.stop();
    deepStrictEqual(load.failures, [], "no failed request while the drained node stops");
    console.log(`stopping drained n3: ${load.done} requests through n1/n2, ${load.failures.length} failed`);
    // With n3 down, a rolling restart would put a second member down: refused before it touches anything.
    let refused = { code: 0, stdout: "", stderr: "" };
    await cluster.waitFor("rolling-restart refused while n3 is down", async () => {
      refused = await cli(n1, "cluster", "rolling-restart", "--exec", "true");
      return refused.code !== 0 &&
        /n3 down; restarting one more member could lose quorum/.test(refused.stderr);
    }, 20_000).catch((e) => {
      throw new Error(`${(e as Error).message}: ${JSON.stringify(refused)}`);
    });
    await n3.start();
    await cluster.waitFor("n3 back", async () => {
      const { body } = await n1.json<{ members: { connected: boolean }[] }>("/api/v1/status");
      return body.members.every((m) => m.connected);
    }, 30_000);
    const uncordon = await cli(n1, "node", "uncordon", "n3");
    equal(uncordon.code, 0, uncordon.stderr);
    match(uncordon.stdout, /n3: schedulable again/);
    await cluster.waitFor("rebalancing puts an instance back on n3", async () => {
      const p = await placement(n1);
      return (p.n3 ?? []).includes("ACTIVE");
    }, 60_000);
    ok(true);
  } finally {
    await load?.stop();
    await cluster.close();
  }
});
