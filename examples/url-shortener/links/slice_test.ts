/**
 * The links slice against testSlice's in-memory kv and cache (the cluster's semantics): shorten and resolve,
 * concurrent resolves sharing kv calls with every click counted exactly once, a refused batch failing only its
 * own resolves, and the instance's known links (never stale: links do not change). The cluster path (3 nodes,
 * kill -9 under resolves, every acknowledged click counted once) is tests/integration/infra_services_test.ts.
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { TestInfra, testSlice } from "@aether/slices/testing";
import type { KvBatchResult, KvClient, KvOperation } from "@aether/slices";
import links from "./slice.ts";
import {
  ClickCounter,
  ClickNotCounted,
  MAX_BATCHES_IN_FLIGHT,
  MAX_CODES_PER_BATCH,
  MAX_WAITING_CLICKS,
} from "./clicks.ts";
import { KnownLinks } from "./known_links.ts";

/** Service calls of one method (kv and cache alike). */
function kvCalls(outbound: Array<{ name: string; method: string }>, method: string) {
  return outbound.filter((c) => c.name === "@infra" && c.method === method).length;
}

Deno.test("links: concurrent resolves share kv calls; every click is counted once", async () => {
  const slice = await testSlice(links, { infra: new TestInfra() });
  try {
    const { code } = await slice.call("shorten", { url: "https://example.org/a" }) as { code: string };
    const { code: other } = await slice.call("shorten", { url: "https://example.org/b" }) as { code: string };
    const before = slice.outbound.length;
    const resolves = await Promise.all(
      Array.from({ length: 200 }, (_, i) => slice.invoke("resolve", { code: i % 4 === 0 ? other : code })),
    );
    ok(resolves.every((r) => r.ok && r.status === 302), JSON.stringify(resolves.find((r) => !r.ok)));
    const second = resolves[1];
    ok(second.ok);
    equal(second.headers?.location, "https://example.org/a");
    const sent = slice.outbound.slice(before);
    const batches = kvCalls(sent, "batch");
    ok(batches >= 1 && batches <= 20, `${batches} kv batch calls for 200 resolves`);
    equal(kvCalls(sent, "get") + kvCalls(sent, "add"), 0, "known links: no lookups, no single adds");
    const stats = await slice.call("stats", { code });
    equal(stats.clicks, 150);
    equal((await slice.call("stats", { code: other })).clicks, 50);
  } finally {
    await slice.stop();
  }
});

Deno.test("links: an unknown code is 404 and counts no click", async () => {
  const slice = await testSlice(links, { infra: new TestInfra() });
  try {
    const missing = await slice.invoke("resolve", { code: "nosuchcode" });
    ok(!missing.ok && missing.error.status === 404, JSON.stringify(missing));
    equal(kvCalls(slice.outbound, "batch"), 0);
    equal(kvCalls(slice.outbound, "get"), 2, "looked up in the cache, then in the kv");
  } finally {
    await slice.stop();
  }
});

/** A kv client whose batches the in-memory service answers after `delayMs`; records each call. */
function client(infra: TestInfra, options: { failing?: boolean; delayMs?: number } = {}) {
  const sent: KvOperation[][] = [];
  const kv = {
    batch: async (ops: readonly KvOperation[]) => {
      sent.push([...ops]);
      await new Promise((r) => setTimeout(r, options.delayMs ?? 5));
      if (options.failing) throw Object.assign(new Error("the kv service is unavailable"), { status: 503 });
      const outcome = infra.serve("kv", "batch", { map: "clicks", ops: ops.map((o) => ({ ...o })) });
      if (!outcome.ok) throw new Error(outcome.error.message);
      return outcome.value as unknown as KvBatchResult[];
    },
  } as unknown as KvClient;
  return { kv, sent };
}

function clicksOf(infra: TestInfra, code: string): number {
  const outcome = infra.serve("kv", "get", { map: "clicks", key: code });
  return outcome.ok ? ((outcome.value as { value: number } | null)?.value ?? 0) : NaN;
}

Deno.test("click counter: clicks of one code are one add of their number; at most 64 codes a call", async () => {
  const infra = new TestInfra();
  const { kv, sent } = client(infra);
  const counter = new ClickCounter();
  await Promise.all(Array.from({ length: 1000 }, (_, i) => counter.count(kv, `c${i % 100}`)));
  ok(sent.every((ops) => ops.length <= MAX_CODES_PER_BATCH));
  ok(sent.length < 100, `${sent.length} calls for 1000 clicks`);
  equal(counter.clicks, 1000);
  equal(counter.calls, sent.length);
  const total = Array.from({ length: 100 }, (_, i) => clicksOf(infra, `c${i}`)).reduce((a, b) => a + b, 0);
  equal(total, 1000);
  deepEqual(new Set(Array.from({ length: 100 }, (_, i) => clicksOf(infra, `c${i}`))), new Set([10]));
  // A code's clicks in one batch go as one add of their number.
  ok(sent.some((ops) => ops.some((op) => op.op === "add" && op.delta > 1)), JSON.stringify(sent.slice(0, 3)));
});

Deno.test("click counter: a failed call fails its own clicks only; a refused add fails its code's clicks", async () => {
  const infra = new TestInfra();
  const down = client(infra, { failing: true });
  const counter = new ClickCounter();
  await rejects(counter.count(down.kv, "x"), /the kv service is unavailable/);
  const up = client(infra);
  await counter.count(up.kv, "x");
  equal(clicksOf(infra, "x"), 1, "the failed click was not counted, the next one was");
  // A key holding something else than a number: the add is refused, only that code's resolves fail.
  infra.serve("kv", "put", { map: "clicks", key: "text", value: "not a number" });
  const [bad, good] = await Promise.allSettled([counter.count(up.kv, "text"), counter.count(up.kv, "y")]);
  ok(
    bad.status === "rejected" && bad.reason instanceof ClickNotCounted,
    String((bad as PromiseRejectedResult).reason),
  );
  equal(good.status, "fulfilled");
  equal(clicksOf(infra, "y"), 1);
});

Deno.test("click counter: at most MAX_WAITING_CLICKS wait; beyond, a click is refused at once (503)", async () => {
  const infra = new TestInfra();
  let release = () => {};
  const held = new Promise<void>((r) => release = r);
  const kv = {
    batch: async (ops: readonly KvOperation[]) => {
      await held;
      const outcome = infra.serve("kv", "batch", { map: "clicks", ops: ops.map((o) => ({ ...o })) });
      return (outcome as { value: unknown }).value as KvBatchResult[];
    },
  } as unknown as KvClient;
  const counter = new ClickCounter();
  // The batches in flight (64 codes each) hang; the rest wait for them.
  const sent = Array.from(
    { length: MAX_BATCHES_IN_FLIGHT * MAX_CODES_PER_BATCH },
    (_, i) => counter.count(kv, `sent${i}`),
  );
  await new Promise((r) => setTimeout(r, 0));
  const waiting = Array.from({ length: MAX_WAITING_CLICKS }, (_, i) => counter.count(kv, `w${i % 500}`));
  await rejects(counter.count(kv, "one-too-many"), (e: Error & { status?: number }) => {
    ok(/10000 clicks already waiting/.test(e.message), e.message);
    equal(e.status, 503);
    return true;
  });
  release();
  await Promise.all([...sent, ...waiting]);
  equal(counter.clicks, MAX_BATCHES_IN_FLIGHT * MAX_CODES_PER_BATCH + MAX_WAITING_CLICKS);
});

Deno.test("click counter: at most 2 batches in flight, even when they wait for a failover", async () => {
  const infra = new TestInfra();
  let release = () => {};
  const held = new Promise<void>((r) => release = r);
  let inFlight = 0;
  let most = 0;
  const kv = {
    batch: async (ops: readonly KvOperation[]) => {
      most = Math.max(most, ++inFlight);
      await held; // as behind a dead primary
      inFlight--;
      const outcome = infra.serve("kv", "batch", { map: "clicks", ops: ops.map((o) => ({ ...o })) });
      return (outcome as { value: unknown }).value as KvBatchResult[];
    },
  } as unknown as KvClient;
  const counter = new ClickCounter();
  const clicks: Promise<void>[] = [];
  // Clicks on one hot code, one turn of the event loop apart, for longer than the shop's 300 ms slow rule.
  for (const started = Date.now(); Date.now() - started < 500;) {
    clicks.push(counter.count(kv, "hot"));
    await new Promise((r) => setTimeout(r, 5));
  }
  equal(most, MAX_BATCHES_IN_FLIGHT, "adds of the hot code outstanding from this instance");
  equal(counter.calls, MAX_BATCHES_IN_FLIGHT);
  release();
  await Promise.all(clicks);
  equal(clicksOf(infra, "hot"), clicks.length, "the waiting clicks went as few merged adds, all counted");
  ok(counter.calls <= MAX_BATCHES_IN_FLIGHT + 2, `${counter.calls} calls for ${clicks.length} clicks`);
});

Deno.test("known links: least recently used leave first", () => {
  const known = new KnownLinks(3);
  known.remember("a", "A");
  known.remember("b", "B");
  known.remember("c", "C");
  equal(known.get("a"), "A");
  known.remember("d", "D");
  equal(known.get("b"), undefined, "b was the least recently used");
  deepEqual(["a", "c", "d"].map((c) => known.get(c)), ["A", "C", "D"]);
  equal(known.size, 3);
});
