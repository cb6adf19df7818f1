import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import type { AetherError } from "../core/mod.ts";
import {
  type ExecutorCommand,
  type InstanceCrash,
  SliceExecutor,
  type SliceExecutorOptions,
  type StateChange,
} from "./executor.ts";
import { fixture, type FixtureName, MODES, processAlive, waitFor } from "./_testing.ts";
import type { IsolationMode } from "./policy.ts";

const FAST = {
  loadingMs: 10_000,
  activatingMs: 10_000,
  deactivatingMs: 10_000,
  unloadingMs: 10_000,
  hookMs: 300,
};

function executor(mode: IsolationMode, options: SliceExecutorOptions = {}) {
  const changes: StateChange[] = [];
  const ex = new SliceExecutor({
    policy: { mode, net: [], env: [], memoryLimitMb: 128 },
    deadlines: FAST,
    onLog: () => {},
    // These tests are about each isolation: worker isolation for every slice (cpu_limits_test: trusted only).
    trustAllSlices: true,
    ...options,
    onStateChange: (c) => changes.push(c),
  });
  const trail = (id?: string) =>
    changes.filter((c) => !id || c.instanceId === id).map((c) =>
      `${c.from}>${c.to}${c.reason ? ` (${c.reason})` : ""}`
    );
  return { ex, changes, trail };
}

async function load(name: FixtureName, instanceId: string, extra: Partial<ExecutorCommand> = {}) {
  return { type: "LOAD", instanceId, artifact: await fixture(name), ...extra } as ExecutorCommand;
}

for (const mode of MODES) {
  Deno.test({
    name: `[${mode}] executor: LOAD → ACTIVATE → DEACTIVATE → UNLOAD, every change reported, nothing leaked`,
    sanitizeOps: true,
    sanitizeResources: true,
    async fn() {
      const { ex, changes, trail } = executor(mode);
      assertEquals(await ex.submit(await load("pricing", "p-1")), "LOADED");
      const pid = ex.get("p-1")?.host?.pid;
      assertEquals(pid !== undefined, mode === "process");
      assertEquals(ex.get("p-1")?.state, "LOADED");
      await rejects(ex.invoke("p-1", "calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 1 }), {
        code: "unavailable",
      });
      assertEquals(await ex.submit({ type: "ACTIVATE", instanceId: "p-1" }), "ACTIVE");
      const outcome = await ex.invoke("p-1", "calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 1 });
      assertEquals(outcome, { ok: true, value: { sku: "MOUSE-WIRELESS", net: 25, total: 30 } });
      assertEquals(await ex.submit({ type: "DEACTIVATE", instanceId: "p-1" }), "LOADED");
      assertEquals(await ex.submit({ type: "UNLOAD", instanceId: "p-1" }), "REMOVED");
      assertEquals(ex.get("p-1"), undefined);
      assertEquals(trail(), [
        "LOAD>LOADING",
        "LOADING>LOADED",
        "ACTIVATE>ACTIVATING",
        "ACTIVATING>ACTIVE",
        "DEACTIVATE>DEACTIVATING",
        "DEACTIVATING>LOADED",
        "UNLOAD>UNLOADING",
        "UNLOADING>REMOVED",
      ]);
      assert(changes.every((c) => c.coordinates === "org.example:pricing:1.0.0" && c.instanceId === "p-1"));
      if (pid !== undefined) assertEquals(processAlive(pid), false, "the sandbox process is gone");
      await ex.close();
    },
  });

  Deno.test(`[${mode}] executor: commands the table does not allow are refused with a 409 and change nothing`, async () => {
    const { ex, trail } = executor(mode);
    try {
      throws(() => ex.submit({ type: "ACTIVATE", instanceId: "x" }), {
        code: "conflict",
        message: "instance x does not exist",
      });
      await ex.submit(await load("pricing", "p-1"));
      throws(() => ex.submit({ type: "DEACTIVATE", instanceId: "p-1" }), (e: AetherError) => {
        assertEquals(e.code, "conflict");
        assertEquals(
          e.message,
          "cannot DEACTIVATE instance p-1: it is LOADED (DEACTIVATE needs ACTIVE; from LOADED the commands are ACTIVATE, UNLOAD)",
        );
        return true;
      });
      throws(
        () =>
          ex.submit({
            type: "LOAD",
            instanceId: "p-1",
            artifact: { manifest: {} as never, bundle: new Uint8Array() },
          }),
        /already exists \(LOADED\)/,
      );
      await ex.submit({ type: "ACTIVATE", instanceId: "p-1" });
      throws(() => ex.submit({ type: "UNLOAD", instanceId: "p-1" }), /it is ACTIVE/);
      throws(() => ex.submit({ type: "ACTIVATE", instanceId: "p-1" }), /it is ACTIVE/);
      assertEquals(ex.get("p-1")?.state, "ACTIVE");
      assertEquals(trail().length, 4);
    } finally {
      await ex.close();
    }
  });

  Deno.test(`[${mode}] executor: an ACTIVE instance that dies is reported FAILED and can be unloaded`, async () => {
    const crashes: InstanceCrash[] = [];
    const { ex, trail } = executor(mode, { onCrash: (c) => crashes.push(c) });
    try {
      await ex.submit(await load("hostile", "h-1"));
      await ex.submit({ type: "ACTIVATE", instanceId: "h-1" });
      await rejects(ex.invoke("h-1", "exitProcess", { code: 9 }, { requestId: "exit-9" }), {
        code: "unavailable",
      });
      await waitFor(() => ex.get("h-1")?.state === "FAILED", "FAILED");
      assertEquals(ex.get("h-1")?.reason, "the slice called Deno.exit(9)");
      assertEquals(ex.get("h-1")?.host, undefined);
      assertEquals(await ex.submit({ type: "UNLOAD", instanceId: "h-1" }), "REMOVED");
      assertEquals(trail(), [
        "LOAD>LOADING",
        "LOADING>LOADED",
        "ACTIVATE>ACTIVATING",
        "ACTIVATING>ACTIVE",
        "ACTIVE>FAILED (the slice called Deno.exit(9))",
        "UNLOAD>UNLOADING",
        "UNLOADING>REMOVED",
      ]);
      // The host reported the exit once; the executor alone decided it was a crash.
      assertEquals(crashes, [{
        instanceId: "h-1",
        coordinates: "org.example:hostile:0.0.1",
        reason: "the slice called Deno.exit(9)",
        requestIds: ["exit-9"], // the call during which it crashed
      }]);
    } finally {
      await ex.close();
    }
  });

  Deno.test(`[${mode}] executor: the one ACTIVE check: DEACTIVATING refuses new calls, the call in flight finishes`, async () => {
    const { ex } = executor(mode);
    try {
      await ex.submit(await load("hostile", "h-1"));
      await ex.submit({ type: "ACTIVATE", instanceId: "h-1" });
      const slow = ex.invoke("h-1", "slow", { ms: 300 });
      await new Promise((r) => setTimeout(r, 20));
      const deactivated = ex.submit({ type: "DEACTIVATE", instanceId: "h-1" });
      await rejects(ex.invoke("h-1", "ping", {}), (e: AetherError) => {
        assertEquals([e.code, e.extra.state, e.message], [
          "unavailable",
          "DEACTIVATING",
          "instance h-1 is DEACTIVATING, not ACTIVE",
        ]);
        return true;
      });
      assertEquals(await slow, { ok: true, value: { slept: 300 } });
      assertEquals(await deactivated, "LOADED");
      await rejects(ex.invoke("nope", "ping", {}), {
        code: "unavailable",
        message: "instance nope is unknown, not ACTIVE",
      });
    } finally {
      await ex.close();
    }
  });
}

Deno.test("executor: a start hook that throws or a load that fails is the operation's failure, not a crash", async () => {
  const crashes: InstanceCrash[] = [];
  const { ex, trail } = executor("worker", { onCrash: (c) => crashes.push(c) });
  try {
    await ex.submit({
      type: "LOAD",
      instanceId: "h",
      artifact: await fixture("hooks"),
      config: { start: "throw" },
    });
    assertEquals(await ex.submit({ type: "ACTIVATE", instanceId: "h" }), "FAILED");
    assertEquals(trail("h").at(-1), "ACTIVATING>FAILED (the start hook threw HookBroke: start refused)");
    assertEquals(
      await ex.submit(await load("order", "o", { config: { maxQuantity: 0 } } as never)),
      "FAILED",
    );
    assertEquals(crashes, []);
  } finally {
    await ex.close();
  }
});

Deno.test("executor: an instance refuses calls beyond hostLimits.maxPendingRequests; the refusals are counted", async () => {
  const { ex } = executor("worker", { hostLimits: { maxPendingRequests: 3 } });
  try {
    await ex.submit(await load("hostile", "h-1"));
    await ex.submit({ type: "ACTIVATE", instanceId: "h-1" });
    const calls = Array.from({ length: 5 }, () => ex.invoke("h-1", "slow", { ms: 200 }));
    const results = await Promise.allSettled(calls);
    assertEquals(results.filter((r) => r.status === "fulfilled").length, 3);
    const refused = results.filter((r) => r.status === "rejected").map((r) =>
      (r as PromiseRejectedResult).reason
    );
    assertEquals(refused.map((e: AetherError) => [e.code, e.status, e.extra.retryAfterSeconds]), [
      ["overloaded", 503, 1],
      ["overloaded", 503, 1],
    ]);
    assertEquals([ex.get("h-1")?.refusedRequests, ex.refusedRequests], [2, 2]);
    await ex.submit({ type: "DEACTIVATE", instanceId: "h-1" });
    await ex.submit({ type: "UNLOAD", instanceId: "h-1" });
    assertEquals(ex.refusedRequests, 2, "the count outlives the instance");
    throws(
      () => new SliceExecutor({ hostLimits: { maxPendingRequests: 0 } }),
      /maxPendingRequests must be a positive/,
    );
  } finally {
    await ex.close();
  }
});

Deno.test("executor: every in-progress deadline and both hook deadlines end in FAILED with the reason", async () => {
  const never = () => new Promise<void>((resolve) => setTimeout(resolve, 1_500));
  const cases: Array<{
    what: string;
    options: SliceExecutorOptions;
    config?: Record<string, unknown>;
    slowBundle?: boolean;
    until: "LOAD" | "ACTIVATE" | "DEACTIVATE" | "UNLOAD";
    expect: string;
  }> = [
    {
      what: "LOADING",
      options: { deadlines: { ...FAST, loadingMs: 200 } },
      slowBundle: true,
      until: "LOAD",
      expect: "LOADING>FAILED (LOADING did not finish within its deadline of 200 ms)",
    },
    {
      what: "ACTIVATING",
      options: { deadlines: { ...FAST, activatingMs: 200 }, afterStart: never },
      until: "ACTIVATE",
      expect: "ACTIVATING>FAILED (ACTIVATING did not finish within its deadline of 200 ms)",
    },
    {
      what: "start hook",
      options: {},
      config: { start: "hang" },
      until: "ACTIVATE",
      expect: "ACTIVATING>FAILED (the start hook did not finish within 300 ms)",
    },
    {
      what: "DEACTIVATING",
      options: { deadlines: { ...FAST, deactivatingMs: 200 }, beforeStop: never },
      until: "DEACTIVATE",
      expect: "DEACTIVATING>FAILED (DEACTIVATING did not finish within its deadline of 200 ms)",
    },
    {
      what: "stop hook",
      options: {},
      config: { stop: "spin" },
      until: "DEACTIVATE",
      expect: "DEACTIVATING>FAILED (the stop hook did not finish within 300 ms)",
    },
    {
      what: "UNLOADING",
      options: { deadlines: { ...FAST, unloadingMs: 200 }, afterUnload: never },
      until: "UNLOAD",
      expect: "UNLOADING>FAILED (UNLOADING did not finish within its deadline of 200 ms)",
    },
  ];
  for (const c of cases) {
    const { ex, trail } = executor("process", c.options);
    try {
      const built = await fixture("hooks");
      const artifact = c.slowBundle
        ? {
          manifest: built.manifest,
          bundle: () => new Promise<Uint8Array>((r) => setTimeout(() => r(built.bundle), 1_000)),
        }
        : built;
      const t0 = Date.now();
      const steps: ExecutorCommand[] = [
        { type: "LOAD", instanceId: "i", artifact, config: c.config },
        { type: "ACTIVATE", instanceId: "i" },
        { type: "DEACTIVATE", instanceId: "i" },
      ];
      if (c.until === "UNLOAD") steps.push({ type: "UNLOAD", instanceId: "i" });
      let reached: string = "";
      for (const command of steps) {
        reached = await ex.submit(command);
        if (command.type === c.until) break;
      }
      assertEquals(reached, "FAILED", `${c.what}: ${trail().join(", ")}`);
      assertEquals(trail().at(-1), c.expect, c.what);
      assert(Date.now() - t0 < 5_000, `${c.what} took ${Date.now() - t0} ms`);
      // A failed instance leaves through UNLOAD.
      assertEquals(
        await ex.submit({ type: "UNLOAD", instanceId: "i" }),
        c.until === "UNLOAD" ? "FAILED" : "REMOVED",
        c.what,
      );
    } finally {
      await ex.close();
    }
  }
});

Deno.test("executor: a LOAD with bad configuration fails with the reason", async () => {
  const { ex, trail } = executor("worker");
  try {
    await rejects(ex.run(await load("order", "o-0", { config: { currency: "GBP" } } as never)), {
      code: "unavailable",
      message:
        'LOAD o-0 failed: load failed: invalid configuration: config.currency expected one of "EUR", "USD", got "GBP"',
    });
    assertEquals(
      await ex.submit(await load("order", "o-1", { config: { maxQuantity: "ten" } } as never)),
      "FAILED",
    );
    assertEquals(trail("o-1"), [
      "LOAD>LOADING",
      'LOADING>FAILED (load failed: invalid configuration: config.maxQuantity expected an integer, got "ten")',
    ]);
  } finally {
    await ex.close();
  }
});

Deno.test({
  name: "executor: close() releases every sandbox of both kinds at once",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const { ex } = executor("worker");
    const ids = ["a", "b", "c", "d"];
    await Promise.all(ids.map(async (id, i) => {
      await ex.submit(await load("pricing", id, { mode: i % 2 ? "process" : "worker" } as never));
      await ex.submit({ type: "ACTIVATE", instanceId: id });
    }));
    assertEquals(ex.list().map((i) => i.state), ["ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE"]);
    const pids = ex.list().map((i) => i.host?.pid).filter((pid) => pid !== undefined);
    assertEquals(pids.length, 2);
    assert(pids.every(processAlive));
    await ex.close();
    assertEquals(ex.list(), []);
    assertEquals(pids.filter(processAlive), [], "every sandbox process is gone");
    throws(() => ex.submit({ type: "ACTIVATE", instanceId: "a" }), { code: "unavailable" });
  },
});
