/**
 * A hostile slice, one method per attack, next to a healthy one. Every attack is denied (the method gets a
 * NotCapable or import error and the instance keeps serving) or contained (the instance fails with the
 * reason recorded, everything else keeps serving). These tests run with the test runner's -A, which is the
 * strongest form of the import proofs: the bundle's imports are checked against the sandbox's permissions,
 * not the process's.
 */

import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { AetherError } from "../core/mod.ts";
import { describeBundle } from "./describe.ts";
import { writeBuiltSlice } from "../authoring/mod.ts";
import { type InvokeOutcome, type SliceFailure, SliceHost } from "./host.ts";
import type { IsolationMode, SandboxPolicy } from "./policy.ts";
import { fixture, fixturePath, MODES, waitFor } from "./_testing.ts";
import { manifestFromDescription, sha256Hex } from "../../slices/host.ts";

const POLICY: SandboxPolicy = { mode: "worker", net: "*", env: ["HOME", "PATH"], memoryLimitMb: 128 };
const SECRET_URL = pathToFileURL(fixturePath("project_secret.js")).href;
const SECRET_WORKER_URL = pathToFileURL(fixturePath("project_secret_worker.js")).href;

interface Pair {
  hostile: SliceHost;
  neighbour: SliceHost;
  failures: SliceFailure[];
  close(): Promise<void>;
}

async function pair(mode: IsolationMode, probeMs = 500): Promise<Pair> {
  const failures: SliceFailure[] = [];
  const hostile = new SliceHost({
    instanceId: "hostile-1",
    ...(await fixture("hostile")),
    mode,
    policy: POLICY,
    timeouts: { probeMs },
    onLog: () => {},
    onFailure: (f) => failures.push(f),
  });
  const neighbour = new SliceHost({
    instanceId: "pricing-1",
    ...(await fixture("pricing")),
    mode,
    policy: POLICY,
    onLog: () => {},
  });
  for (const host of [hostile, neighbour]) {
    await host.load();
    await host.start();
  }
  return {
    hostile,
    neighbour,
    failures,
    close: async () => {
      await hostile.unload();
      await neighbour.unload();
    },
  };
}

async function neighbourAnswers(p: Pair): Promise<void> {
  const outcome = await p.neighbour.invoke("calculatePrice", { sku: "MOUSE-WIRELESS", quantity: 2 });
  assertEquals(outcome, { ok: true, value: { sku: "MOUSE-WIRELESS", net: 50, total: 60 } });
}

function denied(outcome: InvokeOutcome, name: string, fragment: string): void {
  assert(!outcome.ok, `the attack succeeded: ${JSON.stringify(outcome)}`);
  assertEquals(outcome.error.name, name, outcome.error.message);
  assert(
    outcome.error.message.includes(fragment),
    `"${outcome.error.message}" does not mention "${fragment}"`,
  );
}

for (const mode of MODES) {
  Deno.test(`[${mode}] hostile: file system, environment, processes and undeclared hosts are denied`, async () => {
    const p = await pair(mode);
    let connections = 0;
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      connections++;
      return new Response("secret page");
    });
    const tmp = await Deno.makeTempDir();
    try {
      const url = `http://127.0.0.1:${server.addr.port}/`;
      denied(await p.hostile.invoke("readPasswd", {}), "NotCapable", 'Requires read access to "/etc/passwd"');
      await neighbourAnswers(p);
      denied(
        await p.hostile.invoke("readEnv", { name: "HOME" }),
        "NotCapable",
        'Requires env access to "HOME"',
      );
      denied(
        await p.hostile.invoke("writeFile", { path: `${tmp}/pwned` }),
        "NotCapable",
        "Requires write access",
      );
      await rejects(Deno.stat(`${tmp}/pwned`), Deno.errors.NotFound);
      denied(await p.hostile.invoke("runProcess", {}), "NotCapable", "Requires run access");
      denied(
        await p.hostile.invoke("connectTcp", { port: server.addr.port }),
        "NotCapable",
        "Requires net access",
      );
      denied(await p.hostile.invoke("fetchUrl", { url }), "NotCapable", "Requires net access");
      assertEquals(connections, 0);
      assertEquals(p.hostile.state, "running");
      assertEquals(p.failures, []);
      await neighbourAnswers(p);
    } finally {
      await server.shutdown();
      await Deno.remove(tmp, { recursive: true });
      await p.close();
    }
  });

  Deno.test(`[${mode}] hostile: the bundle can import nothing from disk or the network`, async () => {
    const p = await pair(mode);
    try {
      for (const specifier of [SECRET_URL, "file:///etc/passwd"]) {
        const outcome = await p.hostile.invoke("importModule", { specifier });
        denied(outcome, "TypeError", "Requires read access");
        assert(
          !JSON.stringify(outcome).includes("project-secret") && !JSON.stringify(outcome).includes("root:"),
        );
      }
      // A bare path does not even resolve from a blob: module.
      denied(
        await p.hostile.invoke("importModule", { specifier: fixturePath("project_secret.js") }),
        "TypeError",
        "",
      );
      denied(
        await p.hostile.invoke("importModule", { specifier: "https://example.com/x.js" }),
        "TypeError",
        "",
      );
      for (const specifier of ["npm:hono@4.13.19", "semver"]) {
        const outcome = await p.hostile.invoke("importModule", { specifier });
        if (mode === "process") denied(outcome, "TypeError", "");
        // Known limit of worker isolation: the node's own npm packages resolve (their code then runs with the
        // Worker's permissions, so this adds no capability). Process isolation refuses them.
        else assert(outcome.ok, JSON.stringify(outcome));
      }
      // A Worker started from a file on disk is checked against the sandbox's permissions too (in worker
      // isolation a slice cannot start Workers at all: resources_test.ts).
      const nested = await p.hostile.invoke("spawnWorker", { url: SECRET_WORKER_URL });
      const refusal = mode === "worker" ? "Worker is not available to slices" : "Requires read access";
      assert(!nested.ok && nested.error.message.includes(refusal), JSON.stringify(nested));
      assertEquals(p.hostile.state, "running");
      await neighbourAnswers(p);
    } finally {
      await p.close();
    }
  });

  Deno.test(`[${mode}] hostile: a bundle with static or literal imports of local files does not load`, async () => {
    const base = await fixture("hostile");
    const crafted = [
      `import { secret } from ${
        JSON.stringify(SECRET_URL)
      };\nexport default { kind: "aether.slice", secret };`,
      `const m = await import(${JSON.stringify(SECRET_URL)});\nexport default { kind: "aether.slice", m };`,
      `import "file:///etc/passwd";\nexport default {};`,
    ];
    for (const source of crafted) {
      const bundle = new TextEncoder().encode(source);
      await rejects(describeBundle(bundle, { mode }), /Requires read access/);
      const manifest = { ...base.manifest, sha256: await sha256Hex(bundle), sizeBytes: bundle.length };
      const host = new SliceHost({
        instanceId: "crafted",
        manifest,
        bundle,
        mode,
        policy: POLICY,
        onLog: () => {},
      });
      await rejects(host.load(), (e: AetherError) => {
        assert(e.message.includes("Requires read access"), e.message);
        assert(!e.message.includes("project-secret"), e.message);
        return true;
      });
      assertEquals(host.failure?.kind, "load");
      await host.unload();
    }
  });

  Deno.test(`[${mode}] hostile: Deno.exit fails the instance only`, async () => {
    const p = await pair(mode);
    try {
      const inFlight = p.hostile.invoke("slow", { ms: 10_000 });
      await rejects(p.hostile.invoke("exitProcess", { code: 3 }), { code: "unavailable" });
      await rejects(inFlight, /the slice called Deno.exit\(3\)/);
      assertEquals(p.hostile.state, "exited");
      assertEquals(p.failures.map((f) => [f.kind, f.message]), [["exit", "the slice called Deno.exit(3)"]]);
      await neighbourAnswers(p);
    } finally {
      await p.close();
    }
  });

  Deno.test(`[${mode}] hostile: forged or malformed protocol messages fail the instance, never the node`, async () => {
    // A bundle written by hand (no SDK): its method writes raw messages on the channel to the host (in process
    // isolation through node's process.stdout: the sandbox turns Deno.stdout writes into log lines).
    const source = `export default {
      kind: "aether.slice", format: 1, coordinates: "org.example:forger:1.0.0",
      methods: {
        forge(req) {
          if (${mode === "worker"}) globalThis.postMessage(req.raw ?? JSON.stringify(req.message));
          else globalThis.process.stdout.write(req.raw ?? JSON.stringify(req.message) + "\\n");
          return "sent";
        },
      },
      calls: {}, requires: [], permissions: { net: [], env: [] }, config: {},
    };`;
    const bundle = new TextEncoder().encode(source);
    const manifest = manifestFromDescription(await describeBundle(bundle, { mode }), {
      sha256: await sha256Hex(bundle),
      sizeBytes: bundle.length,
      builtAt: new Date().toISOString(),
    });
    const neighbour = new SliceHost({
      instanceId: "n",
      ...(await fixture("pricing")),
      mode,
      policy: POLICY,
      onLog: () => {},
    });
    await neighbour.load();
    await neighbour.start();
    const malformed: Array<Record<string, unknown>> = [
      { message: null },
      { message: { t: "done", id: 1, outcome: "yes" } },
      { message: { t: "bogus" } },
      { message: { t: "call-out", id: 1, name: 7 } },
      { raw: "not json at all\n" },
    ];
    try {
      for (const request of malformed) {
        const host = new SliceHost({
          instanceId: "forger",
          manifest,
          bundle,
          mode,
          policy: POLICY,
          onLog: () => {},
        });
        await host.load();
        await host.start();
        await host.invoke("forge", request).catch(() => {});
        await waitFor(() => host.state === "exited", `failure after ${JSON.stringify(request)}`);
        assertEquals(host.failure?.kind, "protocol", JSON.stringify(request));
        await host.unload();
        await neighbourAnswers({ neighbour } as Pair);
      }
      // A well-formed forged log line is just a (coerced) log line.
      const logs: string[] = [];
      const host = new SliceHost({
        instanceId: "forger",
        manifest,
        bundle,
        mode,
        policy: POLICY,
        onLog: (e) => logs.push(`${e.level}:${e.message}`),
      });
      await host.load();
      await host.start();
      await host.invoke("forge", { message: { t: "log", level: "loud", message: { a: 1 } } });
      await waitFor(() => logs.length > 0, "the forged log line");
      assertEquals([logs[0], host.state], ["info:[object Object]", "running"]);
      await host.unload();
    } finally {
      await neighbour.unload();
    }
  });

  if (mode === "process") {
    Deno.test(`[${mode}] hostile: an endless loop is killed and reported`, async () => {
      const p = await pair(mode, 300);
      try {
        await rejects(p.hostile.invoke("spin", {}, { timeoutMs: 200 }), { code: "timeout" });
        await rejects(p.hostile.invoke("ping", {}), { code: "unavailable" }); // fails at once, not after a deadline
        await new Promise((r) => setTimeout(r, 600));
        assertEquals(p.hostile.state, "exited");
        assertEquals(p.failures.length, 1);
        assertEquals(p.failures[0].kind, "deadline");
        assert(p.failures[0].message.includes("hostile:0.0.1 spin"), p.failures[0].message);
        await neighbourAnswers(p);
      } finally {
        await p.close();
      }
    });
  }
}

Deno.test("[process] hostile: a permission the manifest asks for and the node allows is granted, nothing more", async () => {
  const fetcher = await fixture("fetcher");
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () => new Response("hello"),
  );
  try {
    const url = `http://127.0.0.1:${server.addr.port}/`;
    for (const mode of MODES) {
      const allowed = new SliceHost({
        instanceId: "f1",
        ...fetcher,
        mode,
        policy: { ...POLICY, net: ["127.0.0.1"], env: [] },
        onLog: () => {},
      });
      assertEquals(allowed.grant, { net: ["127.0.0.1"], env: [], denied: ["env:AETHER_FIXTURE_GREETING"] });
      await allowed.load();
      await allowed.start();
      assertEquals(await allowed.invoke("fetchUrl", { url }), {
        ok: true,
        value: { status: 200, body: "hello" },
      });
      denied(await allowed.invoke("readEnv", {}), "NotCapable", "AETHER_FIXTURE_GREETING");
      await allowed.unload();

      const refused = new SliceHost({
        instanceId: "f2",
        ...fetcher,
        mode,
        policy: { ...POLICY, net: ["10.0.0.1"] },
      });
      assertEquals(refused.grant.net, []);
      await refused.load();
      await refused.start();
      denied(await refused.invoke("fetchUrl", { url }), "NotCapable", "Requires net access");
      await refused.unload();
    }
  } finally {
    await server.shutdown();
  }
});

for (const attack of ["allocateHeap", "allocateBuffers"]) {
  Deno.test(`[process] hostile: ${attack} is stopped at the memory limit; the node and the neighbour live on`, async () => {
    const p = await pair("process");
    try {
      const t0 = Date.now();
      await rejects(p.hostile.invoke(attack, {}, { timeoutMs: 60_000 }), { code: "unavailable" });
      const elapsed = Date.now() - t0;
      assertEquals(p.hostile.state, "exited");
      assertEquals(p.failures.length, 1);
      assertEquals(p.failures[0].kind, "memory");
      assert(p.failures[0].message.includes("128 MiB"), p.failures[0].message);
      assert(elapsed < 30_000, `took ${elapsed} ms`);
      await neighbourAnswers(p);
      const rss = Deno.memoryUsage().rss / 2 ** 20;
      assert(rss < 1024, `the test process grew to ${rss} MiB`);
    } finally {
      await p.close();
    }
  });
}

Deno.test("[process] hostile: a bundle that allocates without bound while it loads is stopped at the memory limit", async () => {
  // The watchdog of a (warm) sandbox process samples only from the load on: this proves it is armed before
  // any of the bundle's code runs. The description comes from a harmless twin (describing the bomb would run
  // it); the manifest carries the bomb's hash, so the host loads the bomb.
  const definition = `export default {
    kind: "aether.slice", format: 1, coordinates: "org.example:bomb:1.0.0", methods: { ping() { return 1; } },
    calls: {}, requires: [], permissions: { net: [], env: [] }, config: {},
  };`;
  const harmless = new TextEncoder().encode(definition);
  const bomb = new TextEncoder().encode(
    `const keep = []; while (true) keep.push(new Uint8Array(8 * 1024 * 1024).fill(1));\n${definition}`,
  );
  const manifest = manifestFromDescription(await describeBundle(harmless, { mode: "process" }), {
    sha256: await sha256Hex(bomb),
    sizeBytes: bomb.length,
    builtAt: new Date().toISOString(),
  });
  const failures: SliceFailure[] = [];
  const host = new SliceHost({
    instanceId: "bomb",
    manifest,
    bundle: bomb,
    mode: "process",
    policy: POLICY,
    onLog: () => {},
    onFailure: (f) => failures.push(f),
  });
  try {
    await rejects(host.load(), /memory limit of 128 MiB/);
    assertEquals(host.state, "exited");
    assertEquals(failures.map((f) => f.kind), ["memory"]);
  } finally {
    await host.unload();
  }
});

Deno.test("[worker] hostile: an endless loop fails the instance, but Deno cannot stop the Worker's thread", async () => {
  // In a child process, so the thread that cannot be stopped dies with it.
  const dir = await Deno.makeTempDir();
  try {
    await writeBuiltSlice(dir, await fixture("hostile"));
    await writeBuiltSlice(dir, await fixture("pricing"));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--unstable-worker-options", fixturePath("worker_loop_host.ts"), dir],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    assert(out.success, new TextDecoder().decode(out.stderr));
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!);
    assertEquals([report.spin, report.inFlight, report.state, report.neighbour], [
      "timeout",
      "unavailable",
      "exited",
      "ok",
    ]);
    assert(report.inFlightMs < 5_000, `in-flight calls failed after ${report.inFlightMs} ms`);
    assert(String(report.failure).includes("keeps its thread busy until the node restarts"), report.failure);
    // The platform limit this documents (denoland/deno#35657): the terminated Worker keeps spinning. If this
    // ever fails, Deno has fixed it and worker isolation contains endless loops too.
    assert(report.workerCpuTicksPerSecondAfterTerminate > 20, JSON.stringify(report));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("[worker] hostile: unbounded allocation in a Worker kills the whole process (why process mode exists)", async () => {
  // Run in a child process: this is exactly what would happen to a node using worker isolation.
  const dir = await Deno.makeTempDir();
  try {
    const hostile = await writeBuiltSlice(dir, await fixture("hostile"));
    const pricing = await writeBuiltSlice(dir, await fixture("pricing"));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--unstable-worker-options",
        "--v8-flags=--max-old-space-size=96",
        fileURLToPath(new URL("./fixtures/worker_oom_host.ts", import.meta.url)),
        hostile.manifestPath,
        pricing.manifestPath,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    const [status, stdout, stderr] = await Promise.all([
      child.status,
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]);
    assert(stdout.includes("ready"), stdout + stderr);
    assert(
      !stdout.includes("survived"),
      "the process survived a runaway Worker: revisit the isolation default",
    );
    assertEquals(status.success, false);
    assert(/out of memory/i.test(stderr), stderr.slice(-500));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
