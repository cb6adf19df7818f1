/**
 * URL shortener (examples/url-shortener): resolves per second on one node and on three, against a bare
 * Deno.serve redirect measured in the same run.
 *
 * - baseline: tests/bench/_redirect_server.ts (one process, the links in a Map) driven by the same client loop;
 * - 1 node: a one-member cluster, the links slice with 1 instance (process isolation), every request to it;
 * - 3 nodes: a three-member cluster, 3 instances (one per node), requests round-robin over the nodes.
 *
 * Each phase creates --links links, resolves each once through every node (warm: every instance knows every
 * link), then C clients resolve random codes back to back for --duration-ms (`GET /u/r/{code}`, 302 expected).
 * A resolve is the link from the instance's known links (exact: links never change) and a durable click: the
 * instance group-commits its concurrent resolves' clicks into one `kv.batch` call of `add`s, and each resolve
 * answers once the store acknowledged its click (on a write quorum of 2 of 3 owners with 3 nodes; on the one
 * node with 1). Prints resolves/s, p50/p99, errors and the CPU each resolve cost (ms of CPU time, from
 * /proc, split into this client, the node processes and their slice sandboxes) per phase, the 3-node/1-node
 * ratio and each against the baseline, and the machine's cores and load: the client loop, the nodes and the
 * store share them, so "scales with nodes up to the core limit" means here that 3 nodes on 2 cores can at
 * best use the cores one node leaves idle; the CPU per resolve shows what a third of the clicks' replication
 * costs where the cores are not shared.
 *
 * On a shared machine the phases of one run see different loads: `--rounds N` runs the 1-node and 3-node
 * phases N times, alternating, and prints each round and the medians (and the ratio of the medians).
 *
 * Flags: --concurrency 32 --duration-ms 8000 --links 100 --fsync always|never --rounds 1
 * Run: npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/url_shortener_bench.ts
 */

import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    concurrency: { type: "string", default: "32" },
    "duration-ms": { type: "string", default: "8000" },
    links: { type: "string", default: "100" },
    fsync: { type: "string", default: "always" },
    rounds: { type: "string", default: "1" },
  },
});
const CONCURRENCY = Number(flags.concurrency);
const DURATION_MS = Number(flags["duration-ms"]);
const LINKS = Number(flags.links);
const FSYNC = flags.fsync as "always" | "never";
const ROUNDS = Number(flags.rounds);
if (
  !(CONCURRENCY >= 1) || !(DURATION_MS >= 500) || !(LINKS >= 1) || !["always", "never"].includes(FSYNC) ||
  !(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 10)
) {
  throw new Error(
    "--concurrency >= 1, --duration-ms >= 500, --links >= 1, --fsync always|never, --rounds 1-10",
  );
}

const SLICE = new URL("../../examples/url-shortener/links/slice.ts", import.meta.url).pathname;
const BLUEPRINT = new URL("../../examples/url-shortener/blueprint.toml", import.meta.url).pathname;
const SERVER = new URL("./_redirect_server.ts", import.meta.url).pathname;

interface Phase {
  name: string;
  resolves: number;
  errors: number;
  perSecond: number;
  p50: number;
  p99: number;
  /** CPU ms per resolve of this process, of its children (nodes, the baseline server) and their children. */
  cpu?: { client: number; nodes: number; sandboxes: number };
}

/** CPU time (ms) of this process, its children and its grandchildren, from /proc (undefined elsewhere). */
function cpuOfTree(): { client: number; nodes: number; sandboxes: number } | undefined {
  const procs = new Map<number, { ppid: number; ms: number }>();
  try {
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name)) continue;
      try {
        const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
        // Fields after the command name: state ppid ... utime (14th field) stime (15th), in clock ticks (100/s).
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        procs.set(Number(entry.name), {
          ppid: Number(fields[1]),
          ms: (Number(fields[11]) + Number(fields[12])) * 10,
        });
      } catch {
        // The process ended meanwhile.
      }
    }
  } catch {
    return undefined;
  }
  const cpu = { client: procs.get(Deno.pid)?.ms ?? 0, nodes: 0, sandboxes: 0 };
  for (const [, p] of procs) {
    if (p.ppid === Deno.pid) cpu.nodes += p.ms;
    else if (procs.get(p.ppid)?.ppid === Deno.pid) cpu.sandboxes += p.ms;
  }
  return cpu;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** C clients resolve random codes through `bases` (round-robin per request) for DURATION_MS. */
async function drive(name: string, bases: string[], codes: string[]): Promise<Phase> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const cpuBefore = cpuOfTree();
  const start = performance.now();
  const end = start + DURATION_MS;
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < end) {
      const base = bases[next++ % bases.length];
      const code = codes[Math.floor(Math.random() * codes.length)];
      const t0 = performance.now();
      try {
        const response = await fetch(`${base}/u/r/${code}`, { redirect: "manual" });
        await response.body?.cancel();
        if (response.status === 302) latencies.push(performance.now() - t0);
        else errors++;
      } catch {
        errors++;
      }
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  const cpuAfter = cpuOfTree();
  latencies.sort((a, b) => a - b);
  const perResolve = (ms: number) => ms / Math.max(1, latencies.length);
  return {
    ...(cpuBefore && cpuAfter
      ? {
        cpu: {
          client: perResolve(cpuAfter.client - cpuBefore.client),
          nodes: perResolve(cpuAfter.nodes - cpuBefore.nodes),
          sandboxes: perResolve(cpuAfter.sandboxes - cpuBefore.sandboxes),
        },
      }
      : {}),
    name,
    resolves: latencies.length,
    errors,
    perSecond: latencies.length / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
  };
}

async function baseline(codes: Map<string, string>): Promise<Phase> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", SERVER, JSON.stringify(Object.fromEntries(codes))],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the baseline server ended before it listened");
      text += value;
    }
    const { port } = JSON.parse(text.split("\n")[0]) as { port: number };
    return await drive("bare Deno.serve redirect (baseline)", [`http://127.0.0.1:${port}`], [
      ...codes.keys(),
    ]);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
}

/**
 * A loaded machine can make a node miss its heartbeats for a moment (a push answered 503, a blueprint "no
 * quorum"): such a setup step is tried again, up to 5 times. The measured phase is never retried.
 */
async function setupStep<T>(what: string, step: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await step();
    } catch (e) {
      if (attempt >= 5 || !/\b503\b/.test(String(e))) throw e;
      console.log(`${what} failed (attempt ${attempt}), trying again: ${String(e).slice(0, 200)}`);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
    }
  }
}

async function shortener(nodes: number): Promise<{ phase: Phase; links: Map<string, string> }> {
  const cluster = await TestCluster.start(nodes, { fsync: FSYNC });
  try {
    await cluster.waitForLeader(60_000);
    const [n1] = cluster.nodes;
    const built = await buildSlice(SLICE);
    await setupStep("push", () => pushArtifact(n1, built));
    const blueprint = (await Deno.readTextFile(BLUEPRINT)).replace(/instances = \d+/, `instances = ${nodes}`);
    await setupStep("blueprint", async () => {
      const applied = await postBlueprint(n1, blueprint);
      if (applied.status !== 201) {
        throw new Error(`blueprint: ${applied.status} ${JSON.stringify(applied.body)}`);
      }
    });
    await cluster.waitFor(`${nodes} links instances ACTIVE`, async () => {
      const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.links:links");
      return (s?.instances.filter((i) => i.state === "ACTIVE" && i.connected).length ?? 0) >= nodes;
    }, 120_000);
    const bases = cluster.nodes.map((n) => n.httpUrl);
    const links = new Map<string, string>();
    for (let i = 0; links.size < LINKS; i++) {
      const response = await fetch(`${bases[i % bases.length]}/u/links`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ url: `https://example.org/page/${i}` }),
      });
      const body = await response.json() as { code?: string; url?: string };
      if (response.status === 201 && body.code && body.url) links.set(body.code, body.url);
      else if (i > LINKS * 10) throw new Error(`shorten: ${response.status} ${JSON.stringify(body)}`);
    }
    // Every node resolves every code once, so the measured phase starts from warm caches and routes.
    for (const base of bases) {
      for (const code of links.keys()) {
        const r = await fetch(`${base}/u/r/${code}`, { redirect: "manual" });
        await r.body?.cancel();
      }
    }
    const phase = await drive(
      `url-shortener, ${nodes} node${nodes === 1 ? "" : "s"}`,
      bases,
      [...links.keys()],
    );
    return { phase, links };
  } finally {
    await cluster.close();
  }
}

function row(p: Phase): string {
  const cpu = p.cpu
    ? `${p.cpu.client.toFixed(2)} / ${p.cpu.nodes.toFixed(2)} / ${p.cpu.sandboxes.toFixed(2)}`
    : "n/a";
  return `| ${p.name.padEnd(38)} | ${p.perSecond.toFixed(0).padStart(10)} | ${
    p.p50.toFixed(1).padStart(6)
  } | ` +
    `${p.p99.toFixed(1).padStart(6)} | ${String(p.errors).padStart(6)} | ${cpu.padStart(26)} |`;
}

const load = Deno.loadavg();
console.log(
  `url shortener resolves: ${CONCURRENCY} clients, ${DURATION_MS} ms per phase, ${LINKS} links, ` +
    `--fsync ${FSYNC}, ${cpus().length} cores, load average ${load.map((l) => l.toFixed(1)).join(" ")}`,
);
const ones: Phase[] = [];
const threes: Phase[] = [];
let links = new Map<string, string>();
for (let round = 1; round <= ROUNDS; round++) {
  const one = await shortener(1);
  links = one.links;
  const three = await shortener(3);
  if (ROUNDS > 1) {
    one.phase.name += ` (round ${round})`;
    three.phase.name += ` (round ${round})`;
  }
  ones.push(one.phase);
  threes.push(three.phase);
}
const bare = await baseline(links);

/** The phase of median resolves/s (the lower middle one of an even count). */
function median(phases: Phase[]): Phase {
  return [...phases].sort((a, b) => a.perSecond - b.perSecond)[Math.floor((phases.length - 1) / 2)];
}
const one = { phase: median(ones) };
const three = { phase: median(threes) };
console.log(
  "| phase                                  | resolves/s | p50 ms | p99 ms | errors | CPU ms/resolve: client / " +
    "nodes / sandboxes |",
);
console.log(
  "| -------------------------------------- | ---------: | -----: | -----: | -----: | -------------------------: |",
);
for (const p of [bare, ...ones.flatMap((o, i) => [o, threes[i]])]) console.log(row(p));
if (ROUNDS > 1) {
  console.log(`medians of ${ROUNDS} rounds: 1 node ${one.phase.name}, 3 nodes ${three.phase.name}`);
}
console.log(
  `ratios: 3 nodes / 1 node ${(three.phase.perSecond / one.phase.perSecond).toFixed(2)}x; ` +
    `1 node / baseline ${(one.phase.perSecond / bare.perSecond).toFixed(3)}x; ` +
    `3 nodes / baseline ${(three.phase.perSecond / bare.perSecond).toFixed(3)}x`,
);
const cpuTotal = (p: Phase) => p.cpu ? p.cpu.client + p.cpu.nodes + p.cpu.sandboxes : NaN;
console.log(
  `CPU per resolve, all processes: 1 node ${cpuTotal(one.phase).toFixed(2)} ms, 3 nodes ` +
    `${cpuTotal(three.phase).toFixed(2)} ms, baseline ${cpuTotal(bare).toFixed(2)} ms`,
);
console.log(
  `core limit: ${cpus().length} cores shared by the client loop and every node process; 3 nodes can add ` +
    `throughput only while one node leaves a core idle. Load average after the run: ` +
    Deno.loadavg().map((l) => l.toFixed(1)).join(" "),
);
