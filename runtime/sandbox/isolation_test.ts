/**
 * Slices share nothing through the sandbox's platform: storage (localStorage, the Cache API), channels
 * (BroadcastChannel, also through node:worker_threads; Web Locks) are gone or dead ends in both isolations,
 * and a slice's log lines are bounded per instance (a token bucket), counted when dropped and reported.
 * Two instances of tests the attacks on each other with a healthy neighbour pinged throughout.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SliceHost, type SliceLogEntry } from "./host.ts";
import type { IsolationMode, SandboxPolicy } from "./policy.ts";
import { fixture, MODES, waitFor } from "./_testing.ts";

const POLICY: SandboxPolicy = { mode: "worker", net: [], env: [], memoryLimitMb: 128 };

async function host(mode: IsolationMode, instanceId: string, logs: SliceLogEntry[], limits = {}) {
  const h = new SliceHost({
    instanceId,
    ...(await fixture("isolation")),
    mode,
    policy: POLICY,
    limits: { log: limits },
    onLog: (entry) => logs.push(entry),
  });
  await h.load();
  await h.start();
  return h;
}

/** Pings `neighbour` every 20 ms until stopped; resolves with the failures seen. */
function pingThroughout(neighbour: SliceHost) {
  let running = true;
  let pings = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (running) {
      const outcome = await neighbour.invoke("ping", {}).catch((e) => ({ ok: false, error: e }));
      if (!outcome.ok) failures.push(JSON.stringify(outcome));
      pings++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return async () => {
    running = false;
    await loop;
    return { pings, failures };
  };
}

for (const mode of MODES) {
  Deno.test(`[${mode}] isolation: no storage or channel shared between slices, none left on disk`, async () => {
    const logs: SliceLogEntry[] = [];
    const a = await host(mode, "a", logs);
    const b = await host(mode, "b", logs);
    const stop = pingThroughout(b);
    try {
      const shared = await a.invoke("share", { value: "secret-of-a", worker: "node:worker_threads" });
      assert(shared.ok, JSON.stringify(shared));
      const got = shared.value as Record<string, unknown>;
      assertEquals(got.globals, []);
      assertEquals(got.openKv, "undefined");
      assert(String(got.localStorage).startsWith("denied"), `localStorage: ${got.localStorage}`);
      assert(String(got.caches).startsWith("denied"), `caches: ${got.caches}`);
      assert(String(got.broadcast).startsWith("denied"), `BroadcastChannel: ${got.broadcast}`);
      assertEquals(got.workerThreadsBroadcast, "denied NotSupportedError");
      assertEquals(got.locks, "denied NotSupportedError");
      const peeked = await b.invoke("peek", {});
      assert(peeked.ok);
      const seen = peeked.value as Record<string, string>;
      assert(!JSON.stringify(seen).includes("secret-of-a"), JSON.stringify(seen));
      const { pings, failures } = await stop();
      assertEquals(failures, []);
      assert(pings > 0);
    } finally {
      await stop();
      await a.unload();
      await b.unload();
    }
  });

  Deno.test(`[${mode}] isolation: a slice's log flood is cut at its limit, counted and reported`, async () => {
    const logs: SliceLogEntry[] = [];
    const a = await host(mode, "a", logs, { linesPerSecond: 50, burstLines: 100, maxMessageChars: 64 });
    const b = await host(mode, "b", [], {});
    const stop = pingThroughout(b);
    try {
      const started = Date.now();
      const flooded = await a.invoke("flood", { lines: 20_000 });
      assert(flooded.ok, JSON.stringify(flooded));
      await waitFor(
        () => logs.some((l) => l.message.includes("log lines of the slice dropped")),
        "the report",
      );
      const elapsedS = (Date.now() - started) / 1000;
      const lines = logs.filter((l) => l.message.startsWith("line "));
      // The burst plus what the rate refilled meanwhile (generous: a busy machine stretches the time).
      assert(
        lines.length >= 100 && lines.length <= 100 + Math.ceil(50 * elapsedS) + 1,
        `${lines.length} lines`,
      );
      assert(lines.every((l) => l.message.length <= 64 + 40), "messages are cut at maxMessageChars");
      assertEquals(a.stats.droppedLogLines, 20_000 - lines.length);
      const report = logs.find((l) => l.message.includes("log lines of the slice dropped"))!;
      assertEquals(report.level, "warn");
      assert(report.message.includes("limit of 50 lines/s (burst 100)"), report.message);
      const { failures } = await stop();
      assertEquals(failures, []);
      assertEquals((await a.invoke("ping", {})).ok, true);
    } finally {
      await stop();
      await a.unload();
      await b.unload();
    }
  });
}
