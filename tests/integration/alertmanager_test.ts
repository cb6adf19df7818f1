/**
 * Alerts end to end on real processes: a REAL Alertmanager (Debian's /usr/bin/prometheus-alertmanager, started
 * here with a temporary configuration and storage on a free loopback port), a 3-node cluster started with
 * --alertmanager and --alert-webhook (a real local HTTP receiver that fails its first request, so delivery
 * retries), and the CLI: `aether alert set` creates a rule, the leader's alert goes pending then firing (each
 * an event on another node's SSE stream), Alertmanager lists it active, `aether alerts` shows it on a third
 * node; the rule changed so it no longer holds resolves it, which Alertmanager and the webhook both learn.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { runCli } from "../_support/cli.ts";
import { freePort } from "../../runtime/forge/mod.ts";
import type { ClusterEvent } from "../../runtime/metrics/mod.ts";

const ALERTMANAGER = "/usr/bin/prometheus-alertmanager";

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

/** A real Alertmanager on a free port with its own configuration and storage; stopped by `stop()`. */
async function startAlertmanager(dir: string) {
  const config = `${dir}/alertmanager.yml`;
  await Deno.writeTextFile(
    config,
    [
      "route:",
      "  receiver: blackhole",
      "  group_wait: 1s",
      "  group_interval: 1s",
      "receivers:",
      "  - name: blackhole",
      "",
    ].join("\n"),
  );
  const port = freePort();
  const child = new Deno.Command(ALERTMANAGER, {
    args: [
      `--config.file=${config}`,
      `--storage.path=${dir}/data`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--cluster.listen-address=",
      "--log.level=warn",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  let log = "";
  const drained = (async () => {
    for await (const chunk of stderr) log += chunk;
  })();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  while (true) {
    const ready = await fetch(`${url}/-/ready`).then((r) => r.body?.cancel().then(() => r.ok)).catch(() =>
      false
    );
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      await child.status;
      throw new Error(`Alertmanager did not become ready: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    log: () => log,
    async alerts(name: string): Promise<AmAlert[]> {
      const response = await fetch(
        `${url}/api/v2/alerts?filter=${encodeURIComponent(`alertname="${name}"`)}`,
      );
      return await response.json();
    },
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drained.catch(() => {});
    },
  };
}

/** A webhook receiver that fails its first request (503) and records the rest. */
function startWebhook() {
  const received: Record<string, unknown>[] = [];
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    if (requests++ === 0) return new Response("not yet", { status: 503 });
    received.push(body);
    return new Response("ok");
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    received,
    requests: () => requests,
    close: () => server.shutdown(),
  };
}

/** Collects the events of an SSE stream. */
async function collect(response: Response, into: ClusterEvent[]): Promise<void> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1];
        buffer = buffer.slice(end + 2);
        if (data) into.push(JSON.parse(data));
      }
    }
  } catch {
    // Cancelled at the end of the test.
  }
}

Deno.test("alerts: a rule fires and resolves on a 3-node cluster, reaching a real Alertmanager and a webhook", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "aether-am-" });
  const am = await startAlertmanager(dir);
  const hook = startWebhook();
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    extraArgs: ["--alertmanager", am.url, "--alert-webhook", hook.url],
  }).catch(async (e) => {
    await am.stop();
    await hook.close();
    throw e;
  });
  const abort = new AbortController();
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    const cli = (...args: string[]) => runCli(["--connect", n1.apiUrl, "--token", cluster.token, ...args]);
    /** A write through the CLI, again while the cluster briefly has no quorum (a loaded machine drops links). */
    const write = (...args: string[]) =>
      cluster.waitFor(`aether ${args.join(" ")}`, async () => {
        const run = await cli(...args);
        if (run.code !== 0 && /no quorum|unavailable|timed out/.test(run.stderr)) throw new Error(run.stderr);
        return run;
      });
    const events: ClusterEvent[] = [];
    const stream = await n2.api("/api/v1/events?type=alert", { signal: abort.signal });
    equal(stream.status, 200);
    const collecting = collect(stream, events);
    const eventOf = (type: string) => events.find((e) => e.type === type && e.subject === "n1-memory");

    await t.step(
      "aether alert set: the rule fires after its `for`, as events on another node's stream",
      async () => {
        const set = await write(
          "alert",
          "set",
          "n1-memory",
          "memory of node n1 > 1MiB",
          "--for",
          "2s",
          "--severity",
          "critical",
          "--summary",
          "n1 uses memory",
        );
        equal(set.code, 0, set.stderr);
        match(set.stdout, /(created|replaced) n1-memory: memory of node n1 > 1048576 for 2\.0s \(critical\)/);
        const firing = await cluster.waitFor(
          "alert.firing on n2's stream",
          () => Promise.resolve(eventOf("alert.firing")),
          30_000,
        );
        const pending = eventOf("alert.pending")!;
        ok(pending, "pending came first");
        ok(pending.id < firing.id);
        ok(firing.time - pending.time >= 2_000 - 50, `fired ${firing.time - pending.time} ms after pending`);
        equal(firing.node, "n2", "recorded on n2's own bus");
        const alert = firing.details.alert as Record<string, unknown>;
        equal(alert.state, "firing");
        equal(alert.node, "n1");
        ok((alert.value as number) > 1024 * 1024);
        const listed = await runCli(["--connect", n3.apiUrl, "--token", cluster.token, "alerts"]);
        equal(listed.code, 0, listed.stderr);
        match(listed.stdout, /FIRING\s+n1-memory\s+critical/);
      },
    );

    await t.step(
      "the real Alertmanager lists it active, with the rule's labels and annotations",
      async () => {
        const [alert] = await cluster.waitFor("the alert in Alertmanager", async () => {
          const alerts = await am.alerts("n1-memory");
          return alerts.length > 0 ? alerts : null;
        }, 30_000);
        equal(alert.status.state, "active");
        equal(alert.labels.severity, "critical");
        equal(alert.labels.node, "n1");
        equal(alert.annotations.summary, "n1 uses memory");
        ok(Date.parse(alert.endsAt) > Date.now(), "endsAt ahead while it fires");
      },
    );

    await t.step(
      "n3 restarts: the leader hands it the firing alert; were n3 the leader, the next one does not fire it again",
      async () => {
        const leaderBefore = await cluster.waitForLeader();
        await n3.kill();
        await n3.start();
        await cluster.waitForLeader(60_000);
        const onN3 = await cluster.waitFor("n3 lists the firing alert", async () => {
          const { status, body } = await n3.json<{ alerts: { id: string; state: string }[] }>(
            "/api/v1/alerts",
          );
          return status === 200 && body.alerts.some((a) => a.id === "n1-memory" && a.state === "firing")
            ? body.alerts
            : null;
        }, 60_000);
        ok(onN3.length === 1, JSON.stringify(onN3));
        // Give a new leader a few evaluations: the alert still fires, and no second alert.firing was sent.
        await new Promise((r) => setTimeout(r, 3_000));
        const firings = events.filter((e) => e.type === "alert.firing" && e.subject === "n1-memory");
        equal(firings.length, 1, `leader was ${leaderBefore}; firings ${JSON.stringify(firings)}`);
        ok(!eventOf("alert.resolved"), "not resolved by the change of leader");
        const [stillActive] = await am.alerts("n1-memory");
        equal(stillActive.status.state, "active");
      },
    );

    await t.step(
      "the rule changed so it no longer holds: resolved in the events, Alertmanager and the webhook",
      async () => {
        const changed = await write(
          "alert",
          "set",
          "n1-memory",
          "memory of node n1 > 1000GiB",
          "--severity",
          "critical",
        );
        equal(changed.code, 0, changed.stderr);
        match(changed.stdout, /replaced n1-memory/);
        const resolved = await cluster.waitFor(
          "alert.resolved on n2's stream",
          () => Promise.resolve(eventOf("alert.resolved")),
          30_000,
        );
        ok(resolved.time > eventOf("alert.firing")!.time);
        await cluster.waitFor("Alertmanager learns it resolved", async () => {
          const alerts = await am.alerts("n1-memory");
          return alerts.every((a) => Date.parse(a.endsAt) <= Date.now() + 1_000);
        }, 30_000);
        await cluster.waitFor("the webhook got firing and resolved", () =>
          Promise.resolve(
            hook.received.some((b) => b.status === "firing") &&
              hook.received.some((b) => b.status === "resolved"),
          ), 30_000);
        ok(hook.requests() >= 3, "the first request failed and was retried");
        const none = await cli("alerts");
        match(none.stdout, /no alerts pending or firing/);
      },
    );

    await t.step(
      "aether alert rules lists it; aether alert delete removes it; bad input names the part",
      async () => {
        const rules = await cli("alert", "rules");
        match(rules.stdout, /n1-memory\s+memory of node n1 > 1073741824000/);
        const bad = await cli("alert", "set", "x", "p99 of orders > 200ms");
        equal(bad.code, 1);
        match(bad.stderr, /"orders" is not a slice \(group:artifact\)/);
        const badFor = await cli("alert", "set", "x", "cpu of nodes > 90%", "--for", "soon");
        match(badFor.stderr, /for: "soon" is not a duration/);
        const deleted = await write("alert", "delete", "n1-memory");
        equal(deleted.code, 0, deleted.stderr);
        const again = await cli("alert", "delete", "n1-memory");
        equal(again.code, 1);
        match(again.stderr, /there is no alert rule "n1-memory"/);
      },
    );
    abort.abort();
    await collecting;
  } catch (e) {
    console.error(cluster.logs().slice(-20_000), "\n----- alertmanager -----\n", am.log());
    throw e;
  } finally {
    abort.abort();
    await cluster.close();
    await am.stop();
    await hook.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
