/**
 * Sandbox benchmark: what each isolation mode costs, against raw baselines measured in the same run.
 *
 *   deno run -A --unstable-worker-options tests/bench/sandbox_bench.ts [--quick]
 *
 * 1. Cold start: an artifact on disk (bundle + manifest) to ACTIVE through the lifecycle executor (read and
 *    verify the files, LOAD, ACTIVATE), p50/p99: worker isolation, process isolation starting a fresh Deno
 *    process, and process isolation taking a warm process from the executor's pool. Goal p50 < 50 ms.
 * 2. Call overhead: sequential round trips of a small request through SliceHost.invoke against the raw
 *    transport underneath: a Worker that echoes postMessage (worker mode), a child Deno process that echoes
 *    JSON lines on stdio (process mode). Overhead = host p50 - raw p50 (goal < 0.1 ms in worker mode).
 * 3. Throughput with 64 calls in flight, host vs raw.
 * 4. Memory per idle instance: the node's RSS growth per Worker; each child's own RSS in process mode.
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { buildSlice, readBuiltSlice, writeBuiltSlice } from "../../runtime/authoring/mod.ts";
import { SliceExecutor } from "../../runtime/sandbox/executor.ts";
import { SliceHost } from "../../runtime/sandbox/host.ts";
import type { IsolationMode, SandboxPolicy } from "../../runtime/sandbox/policy.ts";
import { spawnStdioEcho } from "./_stdio_echo.ts";

const { values: flags } = parseArgs({ options: { quick: { type: "boolean", default: false } } });
const QUICK = flags.quick;
const COLD_STARTS = QUICK ? 10 : 40;
const ROUND_TRIPS = QUICK ? 2_000 : 10_000;
const PIPELINED = QUICK ? 5_000 : 20_000;
const WINDOW = 64;
const IDLE_INSTANCES = QUICK ? 4 : 10;
const REQUEST = { sku: "LAPTOP-PRO", quantity: 2, note: "benchmark" };

const policy = (mode: IsolationMode): SandboxPolicy => ({ mode, net: [], env: [], memoryLimitMb: 256 });

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))];
}

function stats(samplesMs: number[]) {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), n: sorted.length };
}

const ms = (v: number) => v < 1 ? `${(v * 1000).toFixed(1)} µs` : `${v.toFixed(2)} ms`;

async function roundTrips(n: number, once: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < Math.min(500, n / 4); i++) await once(); // warm-up: JIT, caches
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await once();
    samples.push(performance.now() - t0);
  }
  return samples;
}

async function pipelined(n: number, once: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let started = 0;
  const lane = async () => {
    while (started < n) {
      started++;
      await once();
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
  return n / ((performance.now() - t0) / 1000);
}

// ---------------------------------------------------------------------------------------------- baselines

/** A Worker that echoes every message: the floor under worker-mode calls. */
function rawWorker() {
  const source = "onmessage = (e) => postMessage(e.data);";
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), {
    type: "module",
  });
  const waiting = new Map<number, () => void>();
  let next = 0;
  worker.onmessage = (e) => {
    waiting.get(e.data.id)?.();
    waiting.delete(e.data.id);
  };
  return {
    call: () =>
      new Promise<void>((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        worker.postMessage({ id, payload: REQUEST });
      }),
    close: () => worker.terminate(),
  };
}

/** A child Deno process that echoes JSON lines (_stdio_echo.ts): the floor under process-mode calls. */
function rawProcess() {
  const child = spawnStdioEcho();
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  const waiting = new Map<number, () => void>();
  let next = 0;
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = "";
    for await (const chunk of child.stdout) {
      buffer += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buffer.indexOf("\n")) >= 0) {
        const id = JSON.parse(buffer.slice(0, i)).id;
        buffer = buffer.slice(i + 1);
        waiting.get(id)?.();
        waiting.delete(id);
      }
    }
  })();
  return {
    call: () =>
      new Promise<void>((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        writer.write(encoder.encode(JSON.stringify({ id, payload: REQUEST }) + "\n"));
      }),
    close: async () => {
      await writer.close();
      await child.status;
      await reading;
    },
  };
}

// ---------------------------------------------------------------------------------------------- run

const dir = await Deno.makeTempDir();
const entry = fileURLToPath(new URL("../../runtime/sandbox/fixtures/echo.ts", import.meta.url));
const { manifestPath } = await writeBuiltSlice(dir, await buildSlice(entry));
console.log(`sandbox benchmark (Deno ${Deno.version.deno}, ${QUICK ? "quick" : "full"} run)\n`);

const results: Record<string, string> = {};

// 1. Cold start
console.log("1. cold start: artifact on disk -> ACTIVE (read + verify + LOAD + ACTIVATE), one at a time");
const coldModes = [
  { label: "worker", mode: "worker" as const, warm: false },
  { label: "process (fresh process)", mode: "process" as const, warm: false },
  { label: "process (warm pool)", mode: "process" as const, warm: true },
];
for (const { label, mode, warm } of coldModes) {
  const executor = new SliceExecutor({
    policy: policy(mode),
    onLog: () => {},
    warmProcesses: warm,
    trustAllSlices: true,
  });
  const samples: number[] = [];
  for (let i = 0; i < COLD_STARTS + 2; i++) {
    const instanceId = `cold-${i}`;
    const t0 = performance.now();
    const artifact = await readBuiltSlice(manifestPath);
    await executor.submit({ type: "LOAD", instanceId, artifact });
    const state = await executor.submit({ type: "ACTIVATE", instanceId });
    const elapsed = performance.now() - t0;
    if (state !== "ACTIVE") throw new Error(`cold start ${i} ended ${state}`);
    if (i >= 2) samples.push(elapsed); // the first two pay for module compilation caches
    await executor.submit({ type: "DEACTIVATE", instanceId });
    await executor.submit({ type: "UNLOAD", instanceId });
    // A quiet node between loads: the previous sandbox's teardown (and the pool's refill) is not measured.
    await new Promise((r) => setTimeout(r, 150));
  }
  await executor.close();
  const s = stats(samples);
  results[`cold.${label}`] = `p50 ${ms(s.p50)}, p99 ${ms(s.p99)}`;
  console.log(
    `   ${label.padEnd(24)} p50 ${ms(s.p50).padStart(9)}   p99 ${ms(s.p99).padStart(9)}   (n=${s.n})`,
  );
}

// 2 + 3. Calls
console.log(`\n2. call round trip, ${ROUND_TRIPS} sequential calls; 3. throughput with ${WINDOW} in flight`);
for (const mode of ["worker", "process"] as const) {
  const raw = mode === "worker" ? rawWorker() : rawProcess();
  const rawSamples = stats(await roundTrips(ROUND_TRIPS, raw.call));
  const rawRate = await pipelined(PIPELINED, raw.call);
  await raw.close();

  const host = new SliceHost({
    instanceId: "bench",
    ...(await readBuiltSlice(manifestPath)),
    policy: policy(mode),
  });
  await host.load();
  await host.start();
  const call = () => host.invoke("echo", REQUEST, { requestId: "bench-request" });
  const check = await call();
  if (!check.ok || JSON.stringify(check.value) !== JSON.stringify(REQUEST)) throw new Error("echo is broken");
  const hostSamples = stats(await roundTrips(ROUND_TRIPS, call));
  const hostRate = await pipelined(PIPELINED, call);
  await host.unload();

  const overhead = hostSamples.p50 - rawSamples.p50;
  const baseline = mode === "worker" ? "raw postMessage" : "raw stdio JSON";
  console.log(
    `   ${mode}: ${baseline.padEnd(15)} p50 ${ms(rawSamples.p50).padStart(9)}  p99 ${
      ms(rawSamples.p99).padStart(9)
    }  ${Math.round(rawRate)} calls/s`,
  );
  console.log(
    `   ${mode}: SliceHost.invoke  p50 ${ms(hostSamples.p50).padStart(9)}  p99 ${
      ms(hostSamples.p99).padStart(9)
    }  ${Math.round(hostRate)} calls/s`,
  );
  console.log(
    `   ${mode}: overhead p50 ${ms(overhead)}; ratio host/raw p50 ${
      (hostSamples.p50 / rawSamples.p50).toFixed(2)
    }, ` +
      `throughput ${(hostRate / rawRate).toFixed(2)}`,
  );
  results[`call.${mode}`] = `p50 ${ms(hostSamples.p50)} vs raw ${ms(rawSamples.p50)} (+${ms(overhead)})`;
}

// 4. Memory
console.log(`\n4. memory per idle instance (${IDLE_INSTANCES} instances)`);
for (const mode of ["worker", "process"] as const) {
  const hosts: SliceHost[] = [];
  const rssBefore = Deno.memoryUsage().rss;
  for (let i = 0; i < IDLE_INSTANCES; i++) {
    const host = new SliceHost({
      instanceId: `idle-${i}`,
      ...(await readBuiltSlice(manifestPath)),
      policy: policy(mode),
    });
    await host.load();
    await host.start();
    await host.invoke("echo", REQUEST);
    hosts.push(host);
  }
  await new Promise((r) => setTimeout(r, 300));
  const nodeGrowthMiB = (Deno.memoryUsage().rss - rssBefore) / 2 ** 20 / IDLE_INSTANCES;
  const growth = nodeGrowthMiB < 0.5 ? "≈0" : `+${nodeGrowthMiB.toFixed(1)}`;
  let line = `   ${mode.padEnd(8)} node RSS ${growth} MiB per instance`;
  if (mode === "process") {
    const children = Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/children`).trim().split(/\s+/).filter(
      Boolean,
    );
    const rss = children.map((pid) => {
      const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
      return m ? Number(m[1]) / 1024 : 0;
    });
    const mean = rss.reduce((a, b) => a + b, 0) / Math.max(1, rss.length);
    line += `; each child process ${mean.toFixed(1)} MiB RSS (${rss.length} children)`;
    results[`rss.${mode}`] = `${mean.toFixed(1)} MiB per child`;
  } else {
    results[`rss.${mode}`] = `${nodeGrowthMiB.toFixed(1)} MiB per worker`;
  }
  console.log(line);
  await Promise.all(hosts.map((h) => h.unload()));
}

await Deno.remove(dir, { recursive: true });
console.log(`\nsummary: ${JSON.stringify(results)}`);
