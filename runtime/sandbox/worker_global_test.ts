/**
 * A library the node loads may replace `globalThis.Worker`: onnxruntime-web (the controller's forecaster, on
 * the leader) sets it to `node:worker_threads`' Worker, which ignores `deno.permissions`. Slice Workers must
 * still start as Web Workers with the slice's permissions (they hung in LOADING on the leader before).
 */

import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { Worker as NodeWorker } from "node:worker_threads";
import { SliceHost } from "./host.ts";
import { fixture } from "./_testing.ts";

Deno.test("[worker] a library that replaces globalThis.Worker does not change how slice Workers start", async () => {
  const webWorker = globalThis.Worker;
  globalThis.Worker = NodeWorker as unknown as typeof Worker;
  const host = new SliceHost({
    instanceId: "pricing-1",
    ...(await fixture("pricing")),
    mode: "worker",
    policy: { mode: "worker", net: [], env: [], memoryLimitMb: 128 },
    timeouts: { loadMs: 10_000 },
    onLog: () => {},
  });
  try {
    await host.load();
    await host.start();
    const outcome = await host.invoke("calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 2 });
    assertEquals(outcome, { ok: true, value: { sku: "MOUSE-WIRELESS", net: 50, total: 60 } });
  } finally {
    globalThis.Worker = webWorker;
    await host.unload();
  }
});
