/**
 * CPU limits of process isolation beyond the hard share (resources_test.ts): a call's CPU-time budget
 * (`limits.maxCallCpuMs`), the soft share (`limits.softCpuShare`: retired after its current calls), a slice's
 * own limits over the node's, and worker isolation only for trusted slices.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { type SliceFailure, SliceHost } from "./host.ts";
import type { SandboxPolicy } from "./policy.ts";
import { fixture, waitFor } from "./_testing.ts";
import { type ExecutorCommand, type InstanceCrash, SliceExecutor } from "./executor.ts";
import type { AetherError } from "../core/mod.ts";
import type { SliceLogEntry } from "./host.ts";

const POLICY: SandboxPolicy = { mode: "process", net: [], env: [], memoryLimitMb: 256 };
/** Only the limit under test: the others off. */
const OFF = { maxCpuShare: 0, softCpuShare: 0, maxCallCpuMs: 0 };

async function processHost(
  name: "resources" | "pricing",
  limits: Record<string, number>,
  failures: SliceFailure[],
  logs: SliceLogEntry[] = [],
): Promise<SliceHost> {
  const host = new SliceHost({
    instanceId: `${name}-1`,
    ...(await fixture(name)),
    mode: "process",
    policy: POLICY,
    limits,
    onLog: (entry) => logs.push(entry),
    onFailure: (f) => failures.push(f),
  });
  await host.load();
  await host.start();
  return host;
}

Deno.test("[process] cpu: a call over limits.maxCallCpuMs kills its sandbox and is answered naming the budget", async () => {
  const failures: SliceFailure[] = [];
  const hog = await processHost("resources", { ...OFF, maxCallCpuMs: 300 }, failures);
  const neighbourFailures: SliceFailure[] = [];
  const neighbour = await processHost("pricing", { ...OFF, maxCallCpuMs: 300 }, neighbourFailures);
  try {
    // Under its budget: answered, the instance keeps serving.
    assertEquals(await hog.invoke("burn", { ms: 50 }), { ok: true, value: { burnedMs: 50 } });
    const startedMs = performance.now();
    // Busy in 50 ms slices, yielding between them: it answers every liveness ping; only its CPU time tells.
    const error = await hog.invoke("burn", { ms: 20_000 }, { requestId: "hog-call", timeoutMs: 30_000 }).then(
      () => undefined,
      (e: AetherError) => e,
    );
    const tookMs = performance.now() - startedMs;
    assertEquals(error?.code, "unavailable");
    for (
      const fragment of ["burn (request hog-call)", "ms of CPU", "budget of 300 ms", "limits.maxCallCpuMs"]
    ) {
      assert(error?.message.includes(fragment), `"${error?.message}" does not mention ${fragment}`);
    }
    assert(tookMs < 10_000, `the call was stopped only after ${Math.round(tookMs)} ms`);
    assertEquals(failures.map((f) => [f.kind, f.requestIds]), [["cpu", ["hog-call"]]]);
    assertEquals(hog.state, "exited");
    console.log(`call over its CPU budget stopped after ${Math.round(tookMs)} ms: ${failures[0].message}`);
    const outcome = await neighbour.invoke("calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 2 });
    assertEquals(outcome, { ok: true, value: { sku: "MOUSE-WIRELESS", net: 50, total: 60 } });
    assertEquals(neighbourFailures, []);
  } finally {
    await hog.unload();
    await neighbour.unload();
  }
});

Deno.test("[process] cpu: over limits.softCpuShare the instance takes no new calls, finishes its own, then retires", async () => {
  const failures: SliceFailure[] = [];
  const logs: SliceLogEntry[] = [];
  const hog = await processHost(
    "resources",
    { ...OFF, softCpuShare: 0.05, cpuWindowMs: 1_000 },
    failures,
    logs,
  );
  try {
    const burning = hog.invoke("burn", { ms: 8_000 }, { requestId: "busy", timeoutMs: 30_000 });
    await waitFor(() => hog.stats.retiring !== undefined, "the instance to start retiring", 20_000);
    assert(
      /used [\d.]+% of a CPU core over the last 1 s, over its soft limit of 5%/.test(hog.stats.retiring!),
    );
    assert(hog.stats.cpuShare! > 0.05, `cpuShare ${hog.stats.cpuShare}`);
    // A new call is refused before anything ran (the invoker goes to another instance at once).
    const refused = await hog.invoke("small", {}).then(() => undefined, (e: AetherError) => e);
    assertEquals(refused?.code, "unavailable");
    assertEquals(refused?.extra.sandbox, "retiring");
    // The call in flight is answered, not cut off; then the sandbox ends as retired.
    assertEquals(await burning, { ok: true, value: { burnedMs: 8_000 } });
    await waitFor(() => failures.length === 1, "the retired instance to end", 5_000);
    assertEquals(failures[0].kind, "retired");
    assert(failures[0].message.includes("retired after its current calls"), failures[0].message);
    assertEquals(failures[0].requestIds, undefined);
    const warned = logs.find((l) => l.level === "warn" && l.message.startsWith("instance retiring"));
    assert(warned, `no retiring log line: ${JSON.stringify(logs.map((l) => l.message))}`);
  } finally {
    await hog.unload();
  }
});

Deno.test("cpu: limits.softCpuShare and maxCallCpuMs are checked", async () => {
  const built = await fixture("resources");
  for (const softCpuShare of [-1, Number.NaN, 100]) {
    throws(
      () => new SliceHost({ instanceId: "r", ...built, limits: { softCpuShare } }),
      (e: AetherError) => e.code === "bad_request" && e.message.includes("limits.softCpuShare"),
    );
  }
  for (const maxCallCpuMs of [-1, 50, 10.5, 4_000_000]) {
    throws(
      () => new SliceHost({ instanceId: "r", ...built, limits: { maxCallCpuMs } }),
      (e: AetherError) => e.code === "bad_request" && e.message.includes("limits.maxCallCpuMs"),
    );
  }
});

Deno.test("[process] cpu: a slice's own limits override the node's, and its retirement is the instance's FAILED reason", async () => {
  const crashes: InstanceCrash[] = [];
  const ex = new SliceExecutor({
    policy: POLICY,
    hostLimits: { ...OFF, maxCallCpuMs: 60_000 },
    onLog: () => {},
    onCrash: (c) => crashes.push(c),
  });
  try {
    const command: ExecutorCommand = {
      type: "LOAD",
      instanceId: "hog-1",
      artifact: await fixture("resources"),
      settings: { limits: { softCpuShare: 0.05, cpuWindowMs: 1_000 } },
    };
    assertEquals(await ex.submit(command), "LOADED");
    assertEquals(await ex.submit({ type: "ACTIVATE", instanceId: "hog-1" }), "ACTIVE");
    const limits = ex.get("hog-1")!.host!.limits;
    assertEquals([limits.softCpuShare, limits.cpuWindowMs, limits.maxCallCpuMs], [0.05, 1_000, 60_000]);
    const burning = ex.invoke("hog-1", "burn", { ms: 8_000 }, { timeoutMs: 30_000 });
    await waitFor(() => ex.get("hog-1")?.state === "FAILED", "the hog to be retired", 20_000);
    assertEquals(await burning, { ok: true, value: { burnedMs: 8_000 } });
    const reason = ex.get("hog-1")?.reason ?? "";
    assert(/over its soft limit of 5%.*retired after its current calls/.test(reason), reason);
    assertEquals(crashes.map((c) => c.instanceId), ["hog-1"]);
  } finally {
    await ex.close();
  }
});

Deno.test("[worker] cpu: worker isolation only for slices marked trusted; the others run in a process", async () => {
  const logs: SliceLogEntry[] = [];
  const worker: SandboxPolicy = { ...POLICY, mode: "worker" };
  const load = async (ex: SliceExecutor, instanceId: string, trusted?: boolean) => {
    const command: ExecutorCommand = {
      type: "LOAD",
      instanceId,
      artifact: await fixture("pricing"),
      ...(trusted === undefined ? {} : { settings: { trusted } }),
    };
    assertEquals(await ex.submit(command), "LOADED");
    return ex.get(instanceId)!.host!;
  };
  const ex = new SliceExecutor({ policy: worker, warmProcesses: false, onLog: (l) => logs.push(l) });
  const all = new SliceExecutor({
    policy: worker,
    warmProcesses: false,
    trustAllSlices: true,
    onLog: () => {},
  });
  try {
    const untrusted = await load(ex, "u-1");
    assertEquals(untrusted.mode, "process");
    assert(untrusted.pid !== undefined, "an untrusted slice runs in a process of its own");
    assertEquals((await load(ex, "f-1", false)).mode, "process");
    assertEquals((await load(ex, "t-1", true)).mode, "worker");
    assertEquals((await load(all, "a-1")).mode, "worker");
    const said = logs.filter((l) => l.message.includes("worker isolation is for slices marked trusted"));
    assertEquals(said.map((l) => l.instanceId), ["u-1", "f-1"]);
  } finally {
    await ex.close();
    await all.close();
  }
});
