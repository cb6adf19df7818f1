/**
 * Cost of durable consensus storage: commits/s and commit latency (p50/p99) of a realistic engine step, a
 * PhaseRecord (its proposal is a batch) plus one decided batch of N puts with 100-byte values, with fsync
 * "always" (WAL + synchronous=FULL) against "never" (WAL + synchronous=NORMAL), measured in the same run.
 *
 *   deno run --allow-read --allow-write tests/bench/storage_bench.ts [--puts 1,32,256] [--seconds 2] [--dir DIR]
 *
 * The database goes to a fresh directory under --dir (default: the system temp dir); fsync costs depend on the
 * file system and disk under it, so the output names it.
 */

import { parseArgs } from "node:util";
import type { Batch, PhaseRecord } from "../../runtime/consensus/types.ts";
import type { KvCommand } from "../../runtime/kv/commands.ts";
import { ConsensusStorage, type FsyncPolicy } from "../../runtime/kv/storage.ts";

const { values: flags } = parseArgs({
  options: {
    puts: { type: "string", default: "1,32,256" },
    seconds: { type: "string", default: "2" },
    dir: { type: "string" },
  },
});
const putCounts = flags.puts.split(",").map(Number);
const seconds = Number(flags.seconds);
if (putCounts.some((n) => !Number.isInteger(n) || n < 1) || !(seconds > 0)) {
  console.error("usage: storage_bench.ts [--puts 1,32,256] [--seconds 2] [--dir DIR]");
  Deno.exit(2);
}

const VALUE_BYTES = 100;
const value = new Uint8Array(VALUE_BYTES).map((_, i) => i);

function batchOf(phase: number, puts: number): Batch<KvCommand> {
  const commands: KvCommand[] = [];
  for (let i = 0; i < puts; i++) {
    commands.push({ type: "put", key: `app/bench/${(phase * puts + i) % 10_000}`, value });
  }
  return { id: `n1:bench:${phase}`, submitter: "n1", createdAt: phase, commands };
}

function recordOf(phase: number, batch: Batch<KvCommand>): PhaseRecord<KvCommand> {
  return {
    phase,
    proposal: batch,
    rounds: [{ vote1: { value: 1, batchId: batch.id }, vote2: { value: 1, batchId: batch.id } }],
  };
}

interface Result {
  fsync: FsyncPolicy;
  puts: number;
  commits: number;
  commitsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function measure(root: string, fsync: FsyncPolicy, puts: number): Result {
  const dir = Deno.makeTempDirSync({ dir: root, prefix: `storage-bench-${fsync}-` });
  const storage = ConsensusStorage.openInDir(dir, { nodeId: "n1", members: ["n1", "n2", "n3"], fsync });
  // Batches are built ahead so that the timed part is the storage work only.
  const prepared = Array.from({ length: 512 }, (_, i) => batchOf(i + 1, puts));
  const latencies: number[] = [];
  let phase = 0;
  const step = () => {
    phase++;
    const batch = prepared[phase % prepared.length];
    const next = prepared[(phase + 1) % prepared.length];
    const started = performance.now();
    storage.commit({ decisions: [{ phase, batch }], record: recordOf(phase + 1, next) });
    return performance.now() - started;
  };
  try {
    for (let i = 0; i < 100; i++) step(); // warm up: statements, WAL file, page cache
    const until = performance.now() + seconds * 1000;
    const started = performance.now();
    while (performance.now() < until) latencies.push(step());
    const elapsedMs = performance.now() - started;
    const sorted = Float64Array.from(latencies).sort();
    return {
      fsync,
      puts,
      commits: latencies.length,
      commitsPerSecond: latencies.length / (elapsedMs / 1000),
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
      maxMs: sorted[sorted.length - 1],
    };
  } finally {
    storage.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

const root = flags.dir ?? Deno.makeTempDirSync({ prefix: "aether-bench-" });
console.log(`storage bench: ${seconds} s per case, 100-byte values, database under ${root}`);
console.log(
  "fsync   puts/batch   commits/s   puts/s       p50 ms   p99 ms   max ms   commits",
);
const results: Result[] = [];
try {
  for (const puts of putCounts) {
    for (const fsync of ["never", "always"] as const) {
      const r = measure(root, fsync, puts);
      results.push(r);
      console.log(
        `${fsync.padEnd(7)} ${String(puts).padStart(10)}   ${r.commitsPerSecond.toFixed(0).padStart(9)}   ` +
          `${(r.commitsPerSecond * puts).toFixed(0).padStart(9)}   ${r.p50Ms.toFixed(3).padStart(7)}  ` +
          `${r.p99Ms.toFixed(3).padStart(7)}  ${r.maxMs.toFixed(2).padStart(7)}   ${r.commits}`,
      );
    }
  }
} finally {
  if (!flags.dir) Deno.removeSync(root, { recursive: true });
}

console.log("\nratio always / never (baseline: never, same run):");
for (const puts of putCounts) {
  const never = results.find((r) => r.puts === puts && r.fsync === "never")!;
  const always = results.find((r) => r.puts === puts && r.fsync === "always")!;
  console.log(
    `  ${String(puts).padStart(4)} puts: commits/s x${
      (always.commitsPerSecond / never.commitsPerSecond).toFixed(2)
    }, ` +
      `p50 x${(always.p50Ms / never.p50Ms).toFixed(2)}, p99 x${(always.p99Ms / never.p99Ms).toFixed(2)}`,
  );
}
