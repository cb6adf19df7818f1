/**
 * The invoker on real meshes (loopback WebSockets) and real sandboxes (worker isolation), several nodes in one
 * process. Multi-process behaviour (kill -9, the node feature, HTTP through the node) is in
 * tests/integration/invoke_test.ts.
 */

import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { fixture, InProcessCluster } from "./_testing.ts";
import { INVOKE_CHANNEL } from "./_wire.ts";
import type { InvokeOutcome } from "../sandbox/mod.ts";

type Json = Record<string, unknown>;

const value = (outcome: { ok: boolean; value?: unknown; error?: unknown }) => {
  if (!outcome.ok) throw new Error(`expected a value, got ${JSON.stringify(outcome)}`);
  return outcome.value as Json;
};

Deno.test("a chain across three nodes: remote hops over the mesh, one request id and one trace throughout", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  try {
    await cluster.deploy("n1", await fixture("front"));
    await cluster.deploy("n2", await fixture("middle"));
    await cluster.deploy("n3", await fixture("back"));
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const outcome = await cluster.node("n1").invoker.invoke("org.example.invoke:front", "chain", { n: 1 }, {
      requestId: "rid-chain-1",
      traceparent,
    });
    const front = value(outcome);
    const middle = front.next as Json;
    const back = middle.next as Json;
    deepStrictEqual([front.hop, middle.hop, back.hop], ["front", "middle", "back"]);
    deepStrictEqual([front.requestId, middle.requestId, back.requestId], [
      "rid-chain-1",
      "rid-chain-1",
      "rid-chain-1",
    ]);
    deepStrictEqual(back.got, { n: 1 });
    equal((back.traceparent as string).split("-")[1], "0af7651916cd43dd8448eb211c80319c", "same trace id");
    // Each hop logged on its own node, with the request id.
    for (const [node, hop] of [["n1", "front hop"], ["n2", "middle hop"], ["n3", "back hop"]]) {
      const entry = cluster.node(node).sliceLogs.find((e) => e.message === hop);
      equal(entry?.requestId, "rid-chain-1", `${hop} on ${node}`);
    }
    // The node's own lines about remote calls it served carry the request id too.
    ok(
      cluster.node("n2").lines.some((l) =>
        l.includes("serving a remote call") && l.includes("requestId=rid-chain-1")
      ),
    );
    ok(
      cluster.node("n3").lines.some((l) =>
        l.includes("serving a remote call") && l.includes("requestId=rid-chain-1")
      ),
    );
    const stats = cluster.node("n1").invoker.stats();
    equal(stats.local, 1, "front ran on n1 itself");
    equal(stats.remoteCalls.sent, 1, "middle is reached over the mesh");
  } finally {
    await cluster.close();
  }
});

Deno.test("a local instance is preferred; without one, calls take turns across nodes", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  try {
    const back = await fixture("back");
    await cluster.deploy("n2", back);
    await cluster.deploy("n3", back);
    const instances = [];
    for (let i = 0; i < 4; i++) {
      instances.push(
        value(await cluster.node("n1").invoker.invoke("org.example.invoke:back", "echo", {})).instance,
      );
    }
    equal(new Set(instances).size, 1, "both instances have the same id on their nodes");
    deepStrictEqual(cluster.node("n1").invoker.stats().remoteCalls.sent, 4);
    // Which nodes served: two each.
    const n2 = value(await cluster.node("n2").invoker.invoke("org.example.invoke:back", "count", {}));
    const n3 = value(await cluster.node("n3").invoker.invoke("org.example.invoke:back", "count", {}));
    deepStrictEqual([n2.calls, n3.calls], [2, 2]);
    equal(cluster.node("n2").invoker.stats().local, 1, "n2 called its own instance");
  } finally {
    await cluster.close();
  }
});

Deno.test("a slice's own error is an answer: returned once with its mapped status, never retried", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  try {
    const back = await fixture("back");
    await cluster.deploy("n2", back);
    await cluster.deploy("n3", back, 1);
    const outcome = await cluster.node("n1").invoker.invoke("org.example.invoke:back", "fail", {
      kind: "missing",
    });
    deepStrictEqual(outcome, {
      ok: false,
      error: {
        name: "ThingNotFound",
        message: "thing missing does not exist",
        status: 404,
        details: { kind: "missing" },
      },
    });
    equal(cluster.node("n1").invoker.stats().retries, 0);
    const counts = await Promise.all(
      ["n2", "n3"].map(async (id) =>
        value(await cluster.node(id).invoker.invoke("org.example.invoke:back", "count", {})).calls
      ),
    );
    deepStrictEqual(counts.sort(), [0, 1], "the failing method ran exactly once");
  } finally {
    await cluster.close();
  }
});

Deno.test("a node that departs with a call in flight: the call is retried at once on another node", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  try {
    const back = await fixture("back");
    await cluster.deploy("n2", back);
    await cluster.deploy("n3", back, 1);
    const started = performance.now();
    const call = cluster.node("n1").invoker.invoke("org.example.invoke:back", "sleep", { ms: 400 }, {
      timeoutMs: 20_000,
    });
    // n2 (first in turn) has the call; it departs 100 ms in.
    await new Promise((r) => setTimeout(r, 100));
    equal(cluster.node("n1").invoker.stats().remoteCalls.inFlight.n2?.calls, 1);
    const departedAt = performance.now();
    await cluster.stopNode("n2");
    const result = value(await call);
    const elapsed = performance.now() - started;
    equal(result.instance, "org.example.invoke:back:1.0.0/1", "served by n3's instance");
    ok(performance.now() - departedAt < 2_000, `retried at once, not at the 20 s deadline (${elapsed} ms)`);
    const stats = cluster.node("n1").invoker.stats();
    equal(stats.remoteCalls.failedDeparted, 1);
    equal(stats.failed.node_departed, 1);
    ok(
      cluster.node("n1").lines.some((l) =>
        l.includes("call attempt failed; retrying") && l.includes("kind=node_departed")
      ),
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("an instance that crashes during a call it alone served: a 500 naming the crash, not spread to the next instance", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  try {
    const back = await fixture("back");
    const crashing = await cluster.deploy("n2", back, 0);
    const survivor = await cluster.deploy("n3", back, 1);
    const n1 = cluster.node("n1").invoker;
    let error: AetherError | undefined;
    for (let i = 0; i < 2 && !error; i++) {
      // Round-robin may pick n3 first (it survives that call); the call that lands on n2 is the one that fails.
      const outcome = await n1.invoke("org.example.invoke:back", "crashIf", { instance: crashing }, {
        requestId: `crash-${i}`,
      }).catch((e) => error = e);
      if (!error) deepStrictEqual(value(outcome as InvokeOutcome), { survived: survivor });
    }
    ok(error instanceof AetherError);
    equal(error.status, 500);
    match(error.message, /1 instance\(s\) crashed while serving this request/);
    match(error.message, /the slice called Deno.exit\(3\)/);
    equal(n1.stats().failed.crashed_by_call, 1);
    // Not retried: the other instance was never handed the crashing call, and serves on.
    const after = await n1.invoke("org.example.invoke:back", "crashIf", { instance: crashing });
    deepStrictEqual(value(after), { survived: survivor });
  } finally {
    await cluster.close();
  }
});

Deno.test("no live instance is a 503 after the retries; a deadline is a 504 and is not retried", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2"], {
    retry: { maxAttempts: 3, baseBackoffMs: 20 },
  });
  try {
    const n1 = cluster.node("n1").invoker;
    await rejects(n1.invoke("org.example.invoke:nothing", "run", {}), (e: AetherError) => {
      equal(e.status, 503);
      match(e.message, /no live instance \(looked 3 time\(s\)/);
      return true;
    });
    await cluster.deploy("n2", await fixture("back"));
    const started = performance.now();
    await rejects(
      n1.invoke("org.example.invoke:back", "sleep", { ms: 2_000 }, { timeoutMs: 200 }),
      (e: AetherError) => {
        equal(e.status, 504);
        match(e.message, /deadline/);
        return true;
      },
    );
    ok(performance.now() - started < 1_500, "answered at the deadline");
    equal(n1.stats().retries, 2, "only the no-instance call was retried");
    // A configured slice timeout applies to calls without a deadline and caps longer ones.
    cluster.setTimeout("org.example.invoke:back", 150);
    await rejects(
      n1.invoke("org.example.invoke:back", "sleep", { ms: 2_000 }, { timeoutMs: 10_000 }),
      (e: AetherError) => e.status === 504,
    );
    // An invalid target is the caller's mistake.
    await rejects(n1.invoke("not a target", "run", {}), (e: AetherError) => e.status === 400);
  } finally {
    await cluster.close();
  }
});

Deno.test("flow control: bounded calls in flight per peer, waiting calls get slots, the rest are refused", async () => {
  const cluster = await InProcessCluster.start(
    ["n1", "n2"],
    (id) =>
      id === "n1" ? { flow: { maxInFlightPerPeer: 2, maxWaitingPerPeer: 2 }, retry: { maxAttempts: 1 } } : {},
  );
  try {
    await cluster.deploy("n2", await fixture("back"));
    const n1 = cluster.node("n1").invoker;
    let peak = 0;
    const sampler = setInterval(
      () => peak = Math.max(peak, n1.stats().remoteCalls.inFlight.n2?.calls ?? 0),
      5,
    );
    const results = await Promise.allSettled(
      Array.from(
        { length: 6 },
        () => n1.invoke("org.example.invoke:back", "sleep", { ms: 200 }, { timeoutMs: 5_000 }),
      ),
    );
    clearInterval(sampler);
    const refused = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    equal(results.filter((r) => r.status === "fulfilled").length, 4);
    equal(refused.length, 2);
    for (const r of refused) {
      equal((r.reason as AetherError).status, 503);
      match((r.reason as AetherError).message, /calls in flight .* and 2 waiting/);
    }
    ok(peak <= 2, `at most 2 calls in flight (saw ${peak})`);
    deepStrictEqual(n1.stats().remoteCalls.inFlight.n2, { calls: 0, bytes: 0, waiting: 0 });
  } finally {
    await cluster.close();
  }
});

Deno.test("flow control: request bytes in flight are bounded; the callee refuses beyond its serving bound", async () => {
  const cluster = await InProcessCluster.start(
    ["n1", "n2"],
    (id) => id === "n1" ? { flow: { maxInFlightBytesPerPeer: 2_500 } } : { flow: { maxServing: 1 } },
  );
  try {
    await cluster.deploy("n2", await fixture("back"));
    const n1 = cluster.node("n1").invoker;
    let peakBytes = 0;
    const sampler = setInterval(
      () => peakBytes = Math.max(peakBytes, n1.stats().remoteCalls.inFlight.n2?.bytes ?? 0),
      2,
    );
    const big = "x".repeat(3_000);
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: 3 }, () => n1.invoke("org.example.invoke:back", "sleep", { ms: 150, pad: big })),
    );
    clearInterval(sampler);
    equal(results.every((r) => r.ok), true);
    ok(
      peakBytes >= 3_000 && peakBytes < 6_000,
      `one ~3 KB request in flight at a time (peak ${peakBytes} bytes)`,
    );
    ok(performance.now() - started >= 420, "the three calls ran one after another");
    // The callee serves one remote call at a time: a second concurrent caller is refused, then retried.
    const n2Stats = () => cluster.node("n2").invoker.stats().remoteCalls;
    const refusedBefore = n2Stats().refusedOverloaded;
    const both = await Promise.all([
      n1.invoke("org.example.invoke:back", "sleep", { ms: 150 }),
      n1.invoke("org.example.invoke:back", "sleep", { ms: 150 }),
    ]);
    equal(both.every((r) => r.ok), true, "the refused call succeeded on a retry");
    ok(n2Stats().refusedOverloaded > refusedBefore, "n2 refused a call beyond its serving bound");
  } finally {
    await cluster.close();
  }
});

Deno.test("fire-and-forget returns at once and is delivered in the background", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2"]);
  try {
    await cluster.deploy("n1", await fixture("middle"));
    await cluster.deploy("n2", await fixture("back"));
    const outcome = await cluster.node("n1").invoker.invoke("org.example.invoke:middle", "notify", {
      ping: 1,
    }, {
      requestId: "rid-ff",
    });
    deepStrictEqual(value(outcome), { sent: true });
    const n2 = cluster.node("n2");
    const { waitFor } = await import("./_testing.ts");
    await waitFor(
      () => n2.sliceLogs.some((e) => e.message === "back hop" && e.requestId === "rid-ff"),
      "the echo",
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("version weights and version ranges decide which version serves each call", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  try {
    await cluster.deploy("n2", await fixture("back"));
    await cluster.deploy("n3", await fixture("back", "1.1.0"));
    cluster.setRouting("org.example.invoke:back", {
      oldVersion: "1.0.0",
      newVersion: "1.1.0",
      oldWeight: 3,
      newWeight: 1,
    });
    const n1 = cluster.node("n1").invoker;
    const versions: string[] = [];
    for (let i = 0; i < 40; i++) {
      versions.push(value(await n1.invoke("org.example.invoke:back", "echo", {})).coordinates as string);
    }
    equal(versions.filter((v) => v.endsWith(":1.1.0")).length, 10, "1:3 (new:old) gives exactly a quarter");
    // A caller's range excludes a version whatever the weights say.
    for (let i = 0; i < 5; i++) {
      const v = value(await n1.invoke({ artifact: "org.example.invoke:back", range: "~1.1.0" }, "echo", {}));
      equal(v.coordinates, "org.example.invoke:back:1.1.0");
    }
    // Weights 1:0 send everything to the new version.
    cluster.setRouting("org.example.invoke:back", {
      oldVersion: "1.0.0",
      newVersion: "1.1.0",
      oldWeight: 0,
      newWeight: 1,
    });
    const all = await Promise.all(
      Array.from({ length: 6 }, () => n1.invoke("org.example.invoke:back", "echo", {})),
    );
    deepStrictEqual(
      new Set(all.map((o) => value(o).coordinates)),
      new Set(["org.example.invoke:back:1.1.0"]),
    );
  } finally {
    await cluster.close();
  }
});

Deno.test("malformed invocation messages from a peer are counted and answered, never crash the node", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2"]);
  try {
    const n1 = cluster.node("n1");
    n1.mesh.send("n2", INVOKE_CHANNEL, { t: "q", c: 77 });
    n1.mesh.send("n2", INVOKE_CHANNEL, "junk");
    n1.mesh.send("n2", INVOKE_CHANNEL, { t: "zz", c: 1 });
    const { waitFor } = await import("./_testing.ts");
    await waitFor(
      () => cluster.node("n2").invoker.stats().remoteCalls.malformed === 3,
      "three malformed messages",
    );
    // An unknown instance on the callee is a safe retry elsewhere (not_active), reported with its reason.
    await cluster.deploy("n2", await fixture("back"));
    const outcome = await n1.invoker.invoke("org.example.invoke:back", "echo", { ok: 1 });
    equal(outcome.ok, true);
  } finally {
    await cluster.close();
  }
});

Deno.test("an unknown method (a typo, __proto__) is a 404 naming the slice's methods at once, never retried", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2"]);
  try {
    await cluster.deploy("n2", await fixture("back"));
    const invoker = cluster.node("n1").invoker;
    for (const method of ["nope", "__proto__", "constructor", "toString"]) {
      const startedAt = performance.now();
      await rejects(invoker.invoke("org.example.invoke:back", method, {}), (e: unknown) => {
        ok(e instanceof AetherError, String(e));
        equal(e.code, "not_found", e.message);
        match(e.message, new RegExp(`has no method "${method}"; its methods are .*echo.*fail`));
        return true;
      });
      ok(performance.now() - startedAt < 500, `${method}: refused at once, not after the retries`);
    }
    // Also with a version, and from a slice's own call (the outbound handler is the same entry).
    await rejects(invoker.invoke("org.example.invoke:back:1.0.0", "nope", {}), /has no method "nope"/);
    equal(invoker.stats().retries, 0);
    // A known method still works, and a slice with no endpoints at all is still "no live instance".
    equal(value(await invoker.invoke("org.example.invoke:back", "echo", { x: 1 })).hop, "back");
  } finally {
    await cluster.close();
  }
});
