/**
 * Delivery against a real local HTTP receiver (Deno.serve on a loopback port): webhooks get every firing and
 * resolved transition, failed requests are retried with backoff until they succeed, a 4xx is not retried, and
 * Alertmanager targets get the v2 `postableAlert` array at /api/v2/alerts.
 */

import assert from "node:assert/strict";
import { createLogger } from "../core/mod.ts";
import type { AlertChange, AlertView } from "./alerts.ts";
import { AlertDelivery, MAX_ATTEMPTS, type PostableAlert } from "./alerts_delivery.ts";

interface Received {
  path: string;
  body: unknown;
}

/** A receiver that answers the statuses in `script` in turn (then 200). */
function receiver(script: number[] = []) {
  const received: Received[] = [];
  let answered = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const body = await request.json();
    const status = script[answered++] ?? 200;
    if (status === 200) received.push({ path: new URL(request.url).pathname, body });
    return new Response(status === 200 ? "ok" : "no", { status });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    received,
    attempts: () => answered,
    close: () => server.shutdown(),
  };
}

const alert: AlertView = {
  id: "cpu/n1",
  rule: "cpu",
  node: "n1",
  state: "firing",
  expr: "cpu of nodes > 90%",
  value: 0.95,
  threshold: 0.9,
  severity: "critical",
  activeSince: 1_000,
  firedAt: 2_000,
  forMs: 1_000,
};

const log = createLogger({ level: "error" });

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("alert delivery: a webhook gets firing and resolved, retried through two failures", async () => {
  const hook = receiver([503, 500]);
  const delivery = new AlertDelivery({ alertmanagers: [], webhooks: [hook.url], log, firstRetryMs: 20 });
  try {
    const changes: AlertChange[] = [
      { transition: "pending", alert: { ...alert, state: "pending" }, atMs: 1_000 },
      { transition: "firing", alert, atMs: 2_000 },
    ];
    delivery.deliver(changes, 2_000);
    delivery.deliver([{ transition: "resolved", alert, atMs: 9_000 }], 9_000);
    await until("both transitions sent", () => delivery.stats()[0].sent === 2);
    assert.equal(hook.attempts(), 4, "two failures, then each of the two succeeded");
    const [firing, resolved] = hook.received.map((r) =>
      r.body as { status: string; alert: { id: string; labels: unknown; endsAt: string } }
    );
    assert.equal(firing.status, "firing");
    assert.equal(firing.alert.id, "cpu/n1");
    assert.deepEqual(firing.alert.labels, {
      alertname: "cpu",
      severity: "critical",
      cluster: "aether",
      node: "n1",
    });
    assert.equal(resolved.status, "resolved");
    assert.equal(resolved.alert.endsAt, new Date(9_000).toISOString());
    const [stats] = delivery.stats();
    assert.equal(stats.sent, 2);
    assert.equal(stats.retried, 2);
    assert.equal(stats.failed, 0);
  } finally {
    delivery.stop();
    await hook.close();
  }
});

Deno.test("alert delivery: a 400 is not retried; a target that keeps failing gives up after MAX_ATTEMPTS", async () => {
  const refusing = receiver([400]);
  const failing = receiver(new Array(MAX_ATTEMPTS).fill(503));
  const delivery = new AlertDelivery({
    alertmanagers: [],
    webhooks: [refusing.url, failing.url],
    log,
    firstRetryMs: 5,
  });
  try {
    delivery.deliver([{ transition: "firing", alert, atMs: 2_000 }], 2_000);
    await until("both given up", () => delivery.stats().every((s) => s.failed === 1));
    assert.equal(refusing.attempts(), 1);
    assert.equal(failing.attempts(), MAX_ATTEMPTS);
    assert.match(delivery.stats()[0].lastError!, /HTTP 400/);
  } finally {
    delivery.stop();
    await refusing.close();
    await failing.close();
  }
});

Deno.test("alert delivery: Alertmanager gets postable alerts at /api/v2/alerts, firing ones again on resend", async () => {
  const am = receiver();
  const delivery = new AlertDelivery({ alertmanagers: [am.url + "/"], webhooks: [], log });
  try {
    delivery.deliver([{ transition: "firing", alert, atMs: 2_000 }], 2_000);
    delivery.resend([alert], 32_000);
    delivery.deliver([{ transition: "resolved", alert, atMs: 40_000 }], 40_000);
    await until("three posts", () => delivery.stats()[0].sent === 3);
    assert.ok(am.received.every((r) => r.path === "/api/v2/alerts"));
    const [first, again, resolved] = am.received.map((r) => (r.body as PostableAlert[])[0]);
    assert.equal(first.startsAt, new Date(2_000).toISOString());
    assert.ok(Date.parse(first.endsAt!) > 2_000, "firing: endsAt ahead");
    assert.ok(Date.parse(again.endsAt!) > 32_000);
    assert.equal(resolved.endsAt, new Date(40_000).toISOString());
    assert.equal(first.annotations.summary, "cpu of nodes > 90%");
    assert.equal(first.annotations.value, "0.95");
  } finally {
    delivery.stop();
    await am.close();
  }
});
