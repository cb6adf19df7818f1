/**
 * A sandbox that stops answering is found out by the host's periodic liveness ping, not by each call's
 * deadline: it fails (and its instance is replaced by the deployment), with the requests in flight named.
 * Process isolation only: a Worker stuck in a loop cannot be stopped (see host.ts).
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { buildSlice } from "../authoring/mod.ts";
import { type SliceFailure, SliceHost } from "./host.ts";
import { fixturePath } from "./_testing.ts";

async function host(failures: SliceFailure[]): Promise<SliceHost> {
  const built = await buildSlice(fixturePath("wedge.ts"));
  const h = new SliceHost({
    instanceId: "wedge-1",
    ...built,
    mode: "process",
    timeouts: { livenessIntervalMs: 200, livenessTimeoutMs: 600 },
    onLog: () => {},
    onFailure: (f) => failures.push(f),
  });
  await h.load();
  await h.start();
  return h;
}

Deno.test("[process] a sandbox that stops answering fails its liveness ping long before the call's deadline", async () => {
  const failures: SliceFailure[] = [];
  const h = await host(failures);
  try {
    assertEquals(await h.invoke("ping", {}), { ok: true, value: "pong" });
    const startedAt = Date.now();
    await rejects(h.invoke("wedge", {}, { timeoutMs: 60_000, requestId: "wedge-req" }), {
      code: "unavailable",
    });
    const elapsedMs = Date.now() - startedAt;
    assert(elapsedMs < 10_000, `found out after ${elapsedMs} ms`);
    assertEquals(h.state, "exited");
    assertEquals(failures.length, 1);
    assertEquals(failures[0].kind, "deadline");
    assert(failures[0].message.includes("periodic liveness ping"), failures[0].message);
    assertEquals(failures[0].requestIds, ["wedge-req"]);
  } finally {
    await h.unload();
  }
});

Deno.test("[process] a crash during a call names the request, and the calls in flight are told how many there were", async () => {
  const failures: SliceFailure[] = [];
  const h = await host(failures);
  try {
    await rejects(
      h.invoke("exit", {}, { requestId: "exit-req" }),
      (e: { extra: Record<string, unknown> }) => {
        assertEquals(e.extra.failure, "exit");
        assertEquals(e.extra.callsInFlight, 1);
        return true;
      },
    );
    assertEquals(failures.map((f) => [f.kind, f.requestIds]), [["exit", ["exit-req"]]]);
  } finally {
    await h.unload();
  }
});

Deno.test("[process] an idle healthy sandbox answers its pings and stays up", async () => {
  const failures: SliceFailure[] = [];
  const h = await host(failures);
  try {
    await new Promise((r) => setTimeout(r, 1_500));
    assertEquals(h.state, "running");
    assertEquals(failures, []);
    assertEquals(await h.invoke("ping", {}), { ok: true, value: "pong" });
  } finally {
    await h.unload();
  }
});
