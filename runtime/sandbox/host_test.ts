import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { type OutboundCall, SliceHost, type SliceLogEntry } from "./host.ts";
import { fixture, MODES, processAlive, waitFor } from "./_testing.ts";
import { sha256Hex } from "../../slices/host.ts";
import type { IsolationMode } from "./policy.ts";

const PERMISSIVE = { mode: "worker" as const, net: "*" as const, env: [], memoryLimitMb: 256 };

async function started(
  name: "pricing" | "order" | "hostile" | "hooks",
  mode: IsolationMode,
  extra: Partial<ConstructorParameters<typeof SliceHost>[0]> = {},
): Promise<SliceHost> {
  const built = await fixture(name);
  const host = new SliceHost({
    instanceId: `${name}-1`,
    ...built,
    mode,
    policy: PERMISSIVE,
    onLog: () => {},
    ...extra,
  });
  await host.load();
  await host.start();
  return host;
}

/** A pricing instance behind `onOutboundCall`, as the invoker will wire it. */
function invokerTo(target: SliceHost, seen: OutboundCall[] = []) {
  return (call: OutboundCall) => {
    seen.push(call);
    return target.invoke(call.method, call.payload, {
      requestId: call.requestId,
      traceparent: call.traceparent,
      deadlineMs: call.deadlineMs,
    });
  };
}

for (const mode of MODES) {
  Deno.test({
    name: `[${mode}] load, start, invoke, stop and unload; nothing is left behind`,
    sanitizeOps: true,
    sanitizeResources: true,
    async fn() {
      const logs: SliceLogEntry[] = [];
      const host = await started("pricing", mode, { onLog: (e) => logs.push(e) });
      assertEquals(host.state, "running");
      assertEquals(host.mode, mode);
      const pid = host.pid;
      if (mode === "process") assert(pid !== undefined && processAlive(pid), "a sandbox process runs");
      else assertEquals(pid, undefined);

      const outcome = await host.invoke("calculatePrice", { sku: "LAPTOP-PRO", quantity: 2 }, {
        requestId: "req-42",
      });
      assertEquals(outcome, { ok: true, value: { sku: "LAPTOP-PRO", net: 3998, total: 4797.6 } });
      await waitFor(() => logs.some((l) => l.message === "priced"), "the slice's log line");
      const line = logs.find((l) => l.message === "priced")!;
      assertEquals([line.requestId, line.fields, line.instanceId], [
        "req-42",
        { sku: "LAPTOP-PRO" },
        "pricing-1",
      ]);

      await host.stop();
      assertEquals(host.state, "running", "the stop hook ran; the sandbox runs until it is unloaded");
      await host.unload();
      assertEquals(host.state, "exited");
      await rejects(host.invoke("calculatePrice", { sku: "X", quantity: 1 }), (e: AetherError) => {
        assertEquals([e.code, e.extra.sandbox], ["unavailable", "exited"]);
        assert(e.message.includes("pricing-1: its sandbox is exited, not running"), e.message);
        return true;
      });
      await host.unload(); // twice is fine
      if (pid !== undefined) assertEquals(processAlive(pid), false, "the sandbox process is gone and reaped");
      // Worker threads are counted in tests/integration/sandbox_leak_test.ts, which runs alone.
    },
  });

  Deno.test(`[${mode}] a method that throws returns its error with the mapped status; the instance stays healthy`, async () => {
    const pricing = await started("pricing", mode);
    const order = await started("order", mode, { onOutboundCall: invokerTo(pricing) });
    try {
      assertEquals(await order.invoke("getOrder", { id: "o-404" }), {
        ok: false,
        error: { name: "OrderNotFound", message: "order o-404 does not exist", status: 404 },
      });
      assertEquals(await order.invoke("placeOrder", { sku: "LAPTOP-PRO", quantity: 0 }), {
        ok: false,
        error: {
          name: "InvalidOrder",
          message: "quantity must be 1..10",
          status: 400,
          details: { field: "quantity" },
        },
      });
      // Not a SliceError and not mapped: 500 with its own name.
      const bad = await order.invoke("placeOrder", null);
      assert(!bad.ok && bad.error.name === "TypeError" && bad.error.status === 500, JSON.stringify(bad));
      assertEquals(order.state, "running");
      const placed = await order.invoke("placeOrder", { sku: "MOUSE-WIRELESS", quantity: 1 });
      assert(placed.ok, JSON.stringify(placed));
    } finally {
      await order.unload();
      await pricing.unload();
    }
  });

  Deno.test(`[${mode}] respond() chooses status and headers`, async () => {
    const pricing = await started("pricing", mode);
    const order = await started("order", mode, { onOutboundCall: invokerTo(pricing) });
    try {
      const outcome = await order.invoke("placeOrder", { sku: "LAPTOP-PRO", quantity: 2 });
      assertEquals(outcome, {
        ok: true,
        value: { id: "o-1", total: 4797.6, currency: "EUR" },
        status: 201,
        headers: { location: "/api/v1/orders/o-1" },
      });
    } finally {
      await order.unload();
      await pricing.unload();
    }
  });

  Deno.test(`[${mode}] a slice's calls reach onOutboundCall with request id, trace, target and deadline`, async () => {
    const pricing = await started("pricing", mode);
    const seen: OutboundCall[] = [];
    const logs: SliceLogEntry[] = [];
    const order = await started("order", mode, {
      onOutboundCall: invokerTo(pricing, seen),
      onLog: (e) => logs.push(e),
    });
    try {
      const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      const before = Date.now();
      const outcome = await order.invoke("placeOrder", { sku: "LAPTOP-PRO", quantity: 1 }, {
        requestId: "req-7",
        traceparent,
        timeoutMs: 5_000,
      });
      assert(outcome.ok);
      assertEquals(seen.length, 1);
      const call = seen[0];
      assertEquals(
        [call.name, call.target, call.method, call.payload, call.requestId, call.fireAndForget, call.from],
        [
          "pricing",
          { artifact: "org.example:pricing", range: "^1.0.0" },
          "calculatePrice",
          { sku: "LAPTOP-PRO", quantity: 1 },
          "req-7",
          false,
          "org.example:order:1.2.0",
        ],
      );
      assert(call.traceparent.startsWith("00-0af7651916cd43dd8448eb211c80319c-"), "same trace");
      assert(!call.traceparent.includes("b7ad6b7169203331"), "a new span");
      assert(
        call.deadlineMs <= before + 5_000 + 50 && call.deadlineMs > before,
        `deadline ${call.deadlineMs - before}`,
      );
      // console.log inside the method carries the request id too.
      await waitFor(() => logs.some((l) => l.message === "placed order o-1"), "console output");
      assertEquals(logs.find((l) => l.message === "placed order o-1")!.requestId, "req-7");

      // The callee's error keeps its name across the hop and is mapped by the caller's table.
      assertEquals(await order.invoke("placeOrder", { sku: "NOPE", quantity: 1 }), {
        ok: false,
        error: { name: "UnknownSkuNotFound", message: "no price for NOPE", status: 404 },
      });

      // Fire and forget: the caller does not wait; the call still reaches the invoker.
      assertEquals(await order.invoke("notify", { sku: "MOUSE-WIRELESS" }), {
        ok: true,
        value: { sent: true },
      });
      await waitFor(() => seen.length === 3, "the fire-and-forget call");
      assertEquals(seen[2].fireAndForget, true);
    } finally {
      await order.unload();
      await pricing.unload();
    }
  });

  Deno.test(`[${mode}] a call that cannot be delivered reaches the slice as SliceCallFailed`, async () => {
    const order = await started("order", mode, {
      onOutboundCall: () =>
        Promise.reject(new AetherError("unavailable", "no live instance of org.example:pricing")),
    });
    try {
      assertEquals(await order.invoke("placeOrder", { sku: "LAPTOP-PRO", quantity: 1 }), {
        ok: false,
        error: { name: "SliceCallFailed", message: "no live instance of org.example:pricing", status: 503 },
      });
    } finally {
      await order.unload();
    }
  });

  Deno.test(`[${mode}] configuration: defaults apply, values are checked, bad ones fail the load`, async () => {
    const order = await started("order", mode, { config: { greeting: "hej", currency: "USD" } });
    try {
      const who = await order.invoke("whoAmI", {}, { requestId: "r-1" });
      assert(who.ok);
      const value = who.value as Record<string, unknown>;
      assertEquals([value.greeting, value.requestId, value.instance], [
        "hej",
        "r-1",
        { coordinates: "org.example:order:1.2.0", instanceId: "order-1" },
      ]);
    } finally {
      await order.unload();
    }
    const failures: string[] = [];
    const bad = new SliceHost({
      instanceId: "order-2",
      ...(await fixture("order")),
      mode,
      config: { maxQuantity: 0, colour: "red" },
      onLog: () => {},
      onFailure: (f) => failures.push(f.kind),
    });
    await rejects(bad.load(), (e: AetherError) => {
      assertEquals(e.code, "bad_request");
      assert(e.message.includes("config.colour is not a configuration field"), e.message);
      assert(e.message.includes("config.maxQuantity must be at least 1, got 0"), e.message);
      return true;
    });
    assertEquals([bad.state, bad.failure?.kind, failures], ["exited", "load", ["load"]]);
    await bad.unload();
  });

  Deno.test(`[${mode}] a bundle that does not match its manifest is refused`, async () => {
    const built = await fixture("pricing");
    const tampered = new TextEncoder().encode(new TextDecoder().decode(built.bundle) + "\n// changed");
    const shaMismatch = new SliceHost({
      instanceId: "p-2",
      manifest: built.manifest,
      bundle: tampered,
      mode,
      onLog: () => {},
    });
    await rejects(shaMismatch.load(), /does not match the manifest's/);
    await shaMismatch.unload();

    // A manifest that grants more than the code declares (same hash, edited permissions) is caught too.
    const order = await fixture("order");
    const manifest = {
      ...built.manifest,
      sha256: order.manifest.sha256,
      sizeBytes: order.manifest.sizeBytes,
    };
    const lying = new SliceHost({ instanceId: "p-3", manifest, bundle: order.bundle, mode, onLog: () => {} });
    await rejects(lying.load(), /bundle and manifest disagree: the bundle defines org.example:order:1.2.0/);
    assertEquals(lying.state, "exited");
    await lying.unload();
    assertEquals(await sha256Hex(order.bundle), order.manifest.sha256);
  });

  Deno.test(`[${mode}] a call past its deadline gets 504 at once; a sandbox that still answers keeps serving`, async () => {
    const hostile = await started("hostile", mode, { timeouts: { probeMs: 2_000 } });
    try {
      const t0 = Date.now();
      await rejects(hostile.invoke("slow", { ms: 1_500 }, { timeoutMs: 100 }), (e: AetherError) => {
        assertEquals(e.code, "timeout");
        assert(e.message.includes("did not answer within its deadline of 100 ms"), e.message);
        return true;
      });
      assert(Date.now() - t0 < 1_000, "the caller did not wait for the slow method");
      await new Promise((r) => setTimeout(r, 2_200)); // longer than the probe window
      assertEquals(hostile.state, "running");
      assertEquals(await hostile.invoke("ping", {}), { ok: true, value: { pong: true } });
    } finally {
      await hostile.unload();
    }
  });

  // Worker mode runs this in a child process (hostile_test.ts): Deno cannot stop a Worker stuck in a loop,
  // and the spinning thread would burn a CPU for the rest of this test process.
  if (mode === "process") {
    Deno.test(`[${mode}] an endless loop: killed, instance failed, every call in flight fails at once`, async () => {
      const failures: string[] = [];
      const hostile = await started("hostile", mode, {
        timeouts: { probeMs: 300 },
        onFailure: (f) => failures.push(`${f.kind}: ${f.message}`),
      });
      const neighbour = await started("pricing", mode);
      try {
        const slow = [1, 2, 3].map(() => hostile.invoke("slow", { ms: 20_000 }, { timeoutMs: 30_000 }));
        const t0 = Date.now();
        await rejects(hostile.invoke("spin", {}, { timeoutMs: 200 }), { code: "timeout" });
        const results = await Promise.allSettled(slow);
        const elapsed = Date.now() - t0;
        assert(elapsed < 5_000, `in-flight calls failed after ${elapsed} ms`);
        for (const r of results) {
          assert(r.status === "rejected" && (r.reason as AetherError).code === "unavailable", String(r));
          assert((r.reason as AetherError).message.includes("stuck in a loop?"), (r.reason as Error).message);
        }
        assertEquals(hostile.state, "exited");
        assertEquals(hostile.failure?.kind, "deadline");
        assertEquals(failures.length, 1);
        await rejects(
          hostile.invoke("ping", {}),
          /hostile-1: its sandbox is exited, not running: .*stuck in a loop/,
        );
        assertEquals(
          (await neighbour.invoke("calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 1 })).ok,
          true,
        );
      } finally {
        await hostile.unload();
        await neighbour.unload();
      }
    });
  }

  Deno.test(`[${mode}] hooks: a throwing or overrunning start/stop hook fails the instance`, async () => {
    const hooks = await fixture("hooks");
    const cases: Array<[Record<string, string>, "start" | "stop", string, string]> = [
      [{ start: "throw" }, "start", "hook", "the start hook threw HookBroke: start refused"],
      [{ start: "hang" }, "start", "deadline", "the start hook did not finish within 300 ms"],
      // A spinning hook only in process mode: a Worker stuck in a loop cannot be stopped (see hostile_test.ts).
      ...(mode === "process"
        ? [[{ start: "spin" }, "start", "deadline", "the start hook did not finish within 300 ms"] as [
          Record<string, string>,
          "start",
          string,
          string,
        ]]
        : []),
      [{ stop: "throw" }, "stop", "hook", "the stop hook threw HookBroke: stop refused"],
      [{ stop: "hang" }, "stop", "deadline", "the stop hook did not finish within 300 ms"],
    ];
    for (const [config, hook, kind, message] of cases) {
      const host = new SliceHost({
        instanceId: "h",
        ...hooks,
        mode,
        config,
        timeouts: { hookMs: 300 },
        onLog: () => {},
      });
      try {
        await host.load();
        if (hook === "stop") await host.start();
        await rejects(hook === "start" ? host.start() : host.stop());
        assertEquals(host.state, "exited", JSON.stringify(config));
        assertEquals([host.failure?.kind, host.failure?.message], [kind, message]);
      } finally {
        await host.unload();
      }
    }
  });

  // Refusing new calls meanwhile is the executor's part (the instance is DEACTIVATING): executor_test.ts.
  Deno.test(`[${mode}] stop() lets the calls in flight finish before the stop hook runs`, async () => {
    const hostile = await started("hostile", mode);
    try {
      const slow = hostile.invoke("slow", { ms: 300 });
      await new Promise((r) => setTimeout(r, 20));
      let stopped = false;
      const stopping = hostile.stop().then(() => stopped = true);
      assertEquals(await slow, { ok: true, value: { slept: 300 } });
      assertEquals(stopped, false, "the stop hook waited for the call in flight");
      await stopping;
      assertEquals(hostile.state, "running");
    } finally {
      await hostile.unload();
    }
  });

  Deno.test(`[${mode}] invoke refuses unknown methods and unserializable requests without touching the sandbox`, async () => {
    const pricing = await started("pricing", mode);
    try {
      await rejects(pricing.invoke("nope", {}), { code: "not_found" });
      // Both isolations carry messages as JSON: a BigInt cannot travel (a function would be dropped).
      await rejects(pricing.invoke("calculatePrice", { n: 1n }), { code: "bad_request" });
      assertEquals(pricing.inFlight, 0);
      assertEquals(pricing.state, "running");
    } finally {
      await pricing.unload();
    }
  });
}

Deno.test("a host refuses calls beyond limits.maxPendingRequests with 503 overloaded; the admitted ones complete", async () => {
  const hostile = await started("hostile", "worker", { limits: { maxPendingRequests: 2 } });
  try {
    const calls = Array.from({ length: 6 }, () => hostile.invoke("slow", { ms: 300 }));
    assertEquals(hostile.stats, {
      pendingRequests: 2,
      maxPendingRequests: 2,
      refusedRequests: 4,
      droppedLogLines: 0,
    });
    const results = await Promise.allSettled(calls);
    const answered = results.filter((r) => r.status === "fulfilled").map((r) => r.value);
    assertEquals(answered, [{ ok: true, value: { slept: 300 } }, { ok: true, value: { slept: 300 } }]);
    const refused = results.flatMap((r) => r.status === "rejected" ? [r.reason as AetherError] : []);
    assertEquals(refused.length, 4);
    for (const e of refused) {
      assertEquals([e.code, e.status, e.extra.retryAfterSeconds, e.extra.maxPendingRequests], [
        "overloaded",
        503,
        1,
        2,
      ]);
      assert(
        e.message.includes(
          "hostile-1 slow: refused, 2 calls are waiting for the slice already (limit maxPendingRequests 2)",
        ),
        e.message,
      );
    }
    // Room again once the admitted calls are answered; the refusals stay counted.
    assertEquals(await hostile.invoke("ping", {}), { ok: true, value: { pong: true } });
    assertEquals(hostile.stats, {
      pendingRequests: 0,
      maxPendingRequests: 2,
      refusedRequests: 4,
      droppedLogLines: 0,
    });
  } finally {
    await hostile.unload();
  }
  const built = await fixture("pricing");
  for (const maxPendingRequests of [0, 1.5, -1]) {
    throws(
      () => new SliceHost({ instanceId: "x", ...built, limits: { maxPendingRequests } }),
      /maxPendingRequests must be a positive integer/,
    );
  }
});

Deno.test("the sandbox's state moves along its edges only: idle → booting → running → exited", async () => {
  const pricing = await started("pricing", "worker");
  assertEquals(pricing.state, "running");
  await rejects(pricing.load(), {
    code: "conflict",
    message: /cannot load .*pricing-1: its sandbox is running/,
  });
  await pricing.unload();
  await rejects(pricing.start(), /cannot run the start hook of .*: its sandbox is exited/);
  const idle = new SliceHost({ instanceId: "never", ...(await fixture("pricing")), mode: "worker" });
  assertEquals(idle.state, "idle");
  await idle.unload(); // released before it ever booted
  assertEquals(idle.state, "exited");
  await rejects(idle.load(), /its sandbox is exited/);
});
