/**
 * Shared resources a slice could take from its node: answers over `limits.maxResponseBytes` and nested
 * Workers in worker isolation. In every test a neighbour slice keeps answering.
 */

import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { type InvokeOutcome, type SliceFailure, SliceHost } from "./host.ts";
import type { IsolationMode, SandboxPolicy } from "./policy.ts";
import { fixture, MODES, processAlive, waitFor } from "./_testing.ts";
import { type ExecutorCommand, type InstanceCrash, SliceExecutor } from "./executor.ts";
import type { AetherError } from "../core/mod.ts";

const POLICY: SandboxPolicy = { mode: "worker", net: [], env: [], memoryLimitMb: 256 };
const MIB = 1024 * 1024;

async function loaded(
  name: "resources" | "pricing",
  mode: IsolationMode,
  failures: SliceFailure[],
  maxResponseBytes?: number,
): Promise<SliceHost> {
  const host = new SliceHost({
    instanceId: `${name}-1`,
    ...(await fixture(name)),
    mode,
    policy: POLICY,
    limits: maxResponseBytes === undefined ? undefined : { maxResponseBytes },
    onLog: () => {},
    onFailure: (f) => failures.push(f),
  });
  await host.load();
  await host.start();
  return host;
}

async function neighbourAnswers(neighbour: SliceHost): Promise<void> {
  const outcome = await neighbour.invoke("calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 2 });
  assertEquals(outcome, { ok: true, value: { sku: "MOUSE-WIRELESS", net: 50, total: 60 } });
}

function tooLarge(outcome: InvokeOutcome, method: string, limit: number): void {
  assert(!outcome.ok, `an oversized answer went through (${JSON.stringify(outcome).length} characters)`);
  assertEquals(outcome.error.name, "ResponseTooLarge", outcome.error.message);
  assertEquals(outcome.error.status, 500);
  for (
    const fragment of ["org.example:resources:0.0.1", `"${method}"`, `${limit} bytes`, "maxResponseBytes"]
  ) {
    assert(
      outcome.error.message.includes(fragment),
      `"${outcome.error.message}" does not mention ${fragment}`,
    );
  }
}

for (const mode of MODES) {
  Deno.test(`[${mode}] resources: an answer over maxResponseBytes is a 500 naming the slice, method and limit`, async () => {
    const failures: SliceFailure[] = [];
    const host = await loaded("resources", mode, failures, 1 * MIB);
    const neighbour = await loaded("pricing", mode, []);
    try {
      // Refused before it is copied into JSON.
      tooLarge(await host.invoke("bigString", { chars: 2 * MIB }), "bigString", MIB);
      // Measured on its JSON: many strings, each small.
      tooLarge(await host.invoke("bigObject", { chars: 1.5 * MIB, parts: 64 }), "bigObject", MIB);
      // Bytes of UTF-8, not characters: 400 Ki "é" are 800 KiB, 500 Ki are 1000 KiB + JSON, over 1 MiB.
      const under = await host.invoke("bigObject", { chars: 400 * 1024, parts: 4, char: "é" });
      assert(under.ok, JSON.stringify(under).slice(0, 300));
      tooLarge(await host.invoke("bigObject", { chars: 530 * 1024, parts: 4, char: "é" }), "bigObject", MIB);
      // Just under the limit goes through; the instance keeps serving.
      const fits = await host.invoke("bigString", { chars: MIB - 64 });
      assert(fits.ok && typeof fits.value === "string" && fits.value.length === MIB - 64);
      assertEquals(await host.invoke("small", {}), { ok: true, value: { ok: true } });
      assertEquals(host.state, "running");
      assertEquals(failures, []);
      await neighbourAnswers(neighbour);
    } finally {
      await host.unload();
      await neighbour.unload();
    }
  });

  Deno.test(`[${mode}] resources: a 200 MB answer under the default limit (16 MiB) is refused, the instance serves on`, async () => {
    const failures: SliceFailure[] = [];
    const host = await loaded("resources", mode, failures);
    const neighbour = await loaded("pricing", mode, []);
    try {
      assertEquals(host.limits.maxResponseBytes, 16 * MIB);
      tooLarge(await host.invoke("bigString", { chars: 200_000_000 }), "bigString", 16 * MIB);
      tooLarge(await host.invoke("bigObject", { chars: 20_000_000, parts: 20 }), "bigObject", 16 * MIB);
      assertEquals(await host.invoke("small", {}), { ok: true, value: { ok: true } });
      assertEquals(host.state, "running");
      assertEquals(failures, []);
      await neighbourAnswers(neighbour);
    } finally {
      await host.unload();
      await neighbour.unload();
    }
  });
}

Deno.test("resources: limits.maxResponseBytes must be a positive integer within one channel message", async () => {
  const built = await fixture("resources");
  for (const bad of [0, -1, 1.5, Number.NaN, 64 * MIB]) {
    throws(
      () => new SliceHost({ instanceId: "r", ...built, limits: { maxResponseBytes: bad } }),
      (e: AetherError) => e.code === "bad_request" && e.message.includes("limits.maxResponseBytes"),
    );
  }
});

Deno.test("[worker] resources: a slice Worker cannot start Workers of its own; in process isolation it can", async () => {
  for (const mode of MODES) {
    const failures: SliceFailure[] = [];
    const host = await loaded("resources", mode, failures);
    const neighbour = await loaded("pricing", mode, []);
    try {
      const nested = await host.invoke("nestedWorker", {});
      if (mode === "worker") {
        assert(!nested.ok, `a nested Worker ran in worker isolation: ${JSON.stringify(nested)}`);
        assertEquals(nested.error.name, "NotSupportedError", nested.error.message);
        assert(nested.error.message.includes("Worker is not available to slices in worker isolation"));
      } else {
        assertEquals(nested, { ok: true, value: { message: "nested worker ran" } });
      }
      assertEquals(host.state, "running");
      assertEquals(failures, []);
      await neighbourAnswers(neighbour);
    } finally {
      await host.unload();
      await neighbour.unload();
    }
  }
});

Deno.test("[process] resources: a sandbox over limits.maxCpuShare is killed and its instance fails (kind cpu)", async () => {
  const limits = { maxCpuShare: 0.3, cpuWindowMs: 2_000 };
  const failures: SliceFailure[] = [];
  const hog = new SliceHost({
    instanceId: "hog-1",
    ...(await fixture("resources")),
    mode: "process",
    policy: POLICY,
    limits,
    onLog: () => {},
    onFailure: (f) => failures.push(f),
  });
  const neighbourFailures: SliceFailure[] = [];
  const neighbour = new SliceHost({
    instanceId: "pricing-1",
    ...(await fixture("pricing")),
    mode: "process",
    policy: POLICY,
    limits,
    onLog: () => {},
    onFailure: (f) => neighbourFailures.push(f),
  });
  try {
    for (const host of [hog, neighbour]) {
      await host.load();
      await host.start();
    }
    const pid = hog.pid!;
    const startedMs = performance.now();
    // Busy in 50 ms slices, yielding between them: it answers every liveness ping.
    const burning = hog.invoke("burn", { ms: 30_000 }, { timeoutMs: 40_000 }).then(
      () => undefined,
      (e: AetherError) => e,
    );
    // The neighbour answers meanwhile.
    while (failures.length === 0 && performance.now() - startedMs < 25_000) {
      await neighbourAnswers(neighbour);
      await new Promise((r) => setTimeout(r, 200));
    }
    const tookMs = performance.now() - startedMs;
    assertEquals(failures.length, 1, "the CPU hog was not stopped within 25 s");
    assertEquals(failures[0].kind, "cpu");
    for (
      const fragment of ["of a CPU core over the last 2 s", "over its limit of 30%", "limits.maxCpuShare"]
    ) {
      assert(failures[0].message.includes(fragment), `"${failures[0].message}" does not mention ${fragment}`);
    }
    const outcome = await burning;
    assert(outcome?.message.includes("limits.maxCpuShare"), String(outcome?.message));
    assert(!processAlive(pid) || (await new Promise((r) => setTimeout(r, 500)), !processAlive(pid)));
    console.log(`CPU hog stopped after ${Math.round(tookMs)} ms: ${failures[0].message}`);
    // The neighbour, idle under the same limits, keeps serving.
    await neighbourAnswers(neighbour);
    assertEquals(neighbour.state, "running");
    assertEquals(neighbourFailures, []);
  } finally {
    await hog.unload().catch(() => {});
    await neighbour.unload();
  }
});

Deno.test("resources: limits.maxCpuShare and cpuWindowMs are checked", async () => {
  const built = await fixture("resources");
  for (const limits of [{ maxCpuShare: -0.1 }, { maxCpuShare: Number.NaN }, { maxCpuShare: 65 }]) {
    throws(
      () => new SliceHost({ instanceId: "r", ...built, limits }),
      (e: AetherError) => e.code === "bad_request" && e.message.includes("limits.maxCpuShare"),
    );
  }
  for (const cpuWindowMs of [0, 100, 1_000.5]) {
    throws(
      () => new SliceHost({ instanceId: "r", ...built, limits: { cpuWindowMs } }),
      (e: AetherError) => e.code === "bad_request" && e.message.includes("limits.cpuWindowMs"),
    );
  }
});

Deno.test("[process] resources: the executor reports a CPU hog FAILED with the CPU share as its reason", async () => {
  const crashes: InstanceCrash[] = [];
  const ex = new SliceExecutor({
    policy: { ...POLICY, mode: "process" },
    hostLimits: { maxCpuShare: 0.3, cpuWindowMs: 1_000 },
    onLog: () => {},
    onCrash: (c) => crashes.push(c),
  });
  const load = async (name: "resources" | "pricing", instanceId: string) => {
    const command = { type: "LOAD", instanceId, artifact: await fixture(name) } as ExecutorCommand;
    assertEquals(await ex.submit(command), "LOADED");
    assertEquals(await ex.submit({ type: "ACTIVATE", instanceId }), "ACTIVE");
  };
  try {
    await load("resources", "hog-1");
    await load("pricing", "p-1");
    const burning = ex.invoke("hog-1", "burn", { ms: 30_000 }, { requestId: "burn-1", timeoutMs: 40_000 })
      .then(() => undefined, (e: AetherError) => e);
    await waitFor(() => ex.get("hog-1")?.state === "FAILED", "the CPU hog FAILED", 25_000);
    const reason = ex.get("hog-1")?.reason ?? "";
    assert(/used [\d.]+% of a CPU core over the last 1 s, over its limit of 30%/.test(reason), reason);
    assertEquals((await burning)?.code, "unavailable");
    assertEquals(crashes.map((c) => [c.instanceId, c.requestIds]), [["hog-1", ["burn-1"]]]);
    const outcome = await ex.invoke("p-1", "calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 2 });
    assertEquals(outcome, { ok: true, value: { sku: "MOUSE-WIRELESS", net: 50, total: 60 } });
    assertEquals(ex.get("p-1")?.state, "ACTIVE");
  } finally {
    await ex.close();
  }
});
