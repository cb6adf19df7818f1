import { deepStrictEqual as assertEquals, equal, match, ok, rejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { IsolationMode, OutboundCallHandler } from "../sandbox/mod.ts";
import { buildSlice, type BuiltSlice } from "../authoring/mod.ts";
import { waitFor } from "../sandbox/testing.ts";
import type { ExecutorCrash } from "./executor.ts";
import { perform } from "./executor.ts";
import { SandboxExecutor } from "./sandbox_executor.ts";

const built = new Map<string, Promise<BuiltSlice>>();
function fixture(name: string): Promise<BuiltSlice> {
  let result = built.get(name);
  if (!result) {
    const path = fileURLToPath(new URL(`../../tests/fixtures/deployment/${name}.ts`, import.meta.url));
    built.set(name, result = buildSlice(path));
  }
  return result;
}

const FIXTURES = ["inventory", "pricing", "orders", "broken"];

/** An adapter whose artifacts are the built fixtures, by coordinates; crashes are collected. */
async function adapter(mode: IsolationMode, onOutboundCall?: OutboundCallHandler) {
  const artifacts = new Map<string, BuiltSlice>();
  for (const name of FIXTURES) {
    const slice = await fixture(name);
    artifacts.set(slice.manifest.coordinates, slice);
  }
  const crashes: ExecutorCrash[] = [];
  const executor = new SandboxExecutor({
    resolveArtifact: (coordinates) => {
      const slice = artifacts.get(coordinates);
      if (!slice) throw new Error(`${coordinates} is not published`);
      return { manifest: slice.manifest, bundle: () => Promise.resolve(slice.bundle) };
    },
    onCrash: (crash) => crashes.push(crash),
    onLog: () => {},
    onOutboundCall,
    sandbox: {
      policy: { mode, net: [], env: [], memoryLimitMb: 128 },
      deadlines: { hookMs: 2_000 },
      warmProcesses: false,
      trustAllSlices: true,
    },
  });
  return { executor, crashes };
}

const INVENTORY = "org.example.deploy:inventory:1.0.0";
const PRICING = "org.example.deploy:pricing:1.0.0";
const ORDERS = "org.example.deploy:orders:1.0.0";
const BROKEN = "org.example.deploy:broken:1.0.0";

Deno.test("sandbox executor: the lifecycle resolves step by step; failures reject with the reason", async () => {
  const { executor, crashes } = await adapter("worker");
  try {
    const id = `${INVENTORY}/0`;
    await executor.load(id, INVENTORY);
    equal(executor.slices.get(id)?.state, "LOADED");
    await executor.activate(id);
    assertEquals(await executor.slices.invoke(id, "available", { sku: "LAPTOP" }), {
      ok: true,
      value: { sku: "LAPTOP", available: 5 },
    });
    await executor.deactivate(id);
    await executor.unload(id);
    equal(executor.slices.get(id), undefined);

    // A start hook that throws: activate rejects with why, and that is the operation's outcome, not a crash.
    const broken = `${BROKEN}/0`;
    await executor.load(broken, BROKEN);
    const outcome = await perform(executor, { op: "activate", instanceId: broken, artifact: BROKEN });
    equal(outcome.ok, false);
    match((outcome as { reason: string }).reason, /broken on purpose/);
    equal(executor.slices.get(broken)?.state, "FAILED");
    await executor.unload(broken); // a failed instance can be released
    equal(executor.slices.get(broken), undefined);

    await rejects(executor.load(`${ORDERS}/9`, "org.example.deploy:nothing:1.0.0"), /not published/);
    await executor.unload(`${ORDERS}/9`); // nothing was started: releasing it is a no-op
    await rejects(executor.activate(`${PRICING}/7`), /does not exist/); // never loaded
    assertEquals(crashes, []);
  } finally {
    await executor.close();
  }
});

Deno.test("sandbox executor: a sandbox that dies on its own is reported as a crash", async () => {
  const { executor, crashes } = await adapter("process");
  try {
    const id = `${PRICING}/0`;
    await executor.load(id, PRICING);
    await executor.activate(id);
    const pid = executor.slices.get(id)?.host?.pid;
    ok(pid !== undefined, "process isolation runs the instance in a child process");
    Deno.kill(pid, "SIGKILL");
    await waitFor(() => crashes.length > 0, "the crash report");
    equal(crashes[0].instanceId, id);
    equal(executor.slices.get(id)?.state, "FAILED");
    await executor.unload(id);
  } finally {
    await executor.close();
  }
});

const CALLERS: Record<string, string> = {
  [INVENTORY]: `${INVENTORY}/0`,
  [PRICING]: `${PRICING}/0`,
  [ORDERS]: `${ORDERS}/0`,
};

async function activateCallers(executor: SandboxExecutor): Promise<void> {
  for (const [coordinates, id] of Object.entries(CALLERS)) {
    await executor.load(id, coordinates);
    await executor.activate(id);
  }
}

Deno.test("sandbox executor: without an outbound call handler, calls between slices fail with 503", async () => {
  const { executor } = await adapter("worker");
  try {
    await activateCallers(executor);
    const outcome = await executor.slices.invoke(CALLERS[ORDERS], "place", { sku: "MOUSE", quantity: 2 });
    equal(outcome.ok, false, "no invoker: the call fails");
    match(JSON.stringify(outcome), /no invoker is connected/);
  } finally {
    await executor.close();
  }
});

Deno.test("sandbox executor: calls between slices go to the handler given at construction", async () => {
  const seen: string[] = [];
  // The handler calls back into the executor it is given to, as the node's invoker does: looked up per call.
  const { executor } = await adapter("worker", (call) => {
    seen.push(`${call.target.artifact}.${call.method}`);
    return executor.slices.invoke(CALLERS[`${call.target.artifact}:1.0.0`], call.method, call.payload, {
      requestId: call.requestId,
    });
  });
  try {
    await activateCallers(executor);
    const outcome = await executor.slices.invoke(CALLERS[ORDERS], "place", { sku: "MOUSE", quantity: 2 });
    assertEquals(outcome, { ok: true, value: { placed: true, total: 50 } });
    assertEquals(seen, ["org.example.deploy:inventory.reserve", "org.example.deploy:pricing.quote"]);
  } finally {
    await executor.close();
  }
});
