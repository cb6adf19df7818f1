/**
 * Consensus engine throughput: three RabiaEngines wired directly through an in-memory FIFO (no IO, no codec,
 * no network), each member keeping one batch in flight, as the node does. Prints decisions/s and commands/s
 * for a few batch sizes, and a baseline measured in the same run: the same number of message hops through a
 * plain array queue with a trivial handler. The ratio is the engine's protocol cost per hop.
 *
 *   deno run tests/bench/consensus_bench.ts [--decisions N]
 */

import { parseArgs } from "node:util";
import {
  type Batch,
  type ConsensusMsg,
  DEFAULT_ENGINE_TIMINGS,
  type Effect,
  RabiaEngine,
} from "../../runtime/consensus/mod.ts";

const MEMBERS = ["n1", "n2", "n3"];

interface Hop {
  from: string;
  to: string;
  msg: ConsensusMsg<string>;
}

interface RunResult {
  decisions: number;
  commands: number;
  hops: number;
  ms: number;
}

/** Runs until `target` phases are decided on every member; each member always has one batch in flight. */
function runEngines(target: number, batchSize: number): RunResult {
  const engines = new Map(MEMBERS.map((id) => [
    id,
    new RabiaEngine<string>({ self: id, members: MEMBERS, ...DEFAULT_ENGINE_TIMINGS }, { lastDecided: 0 }),
  ]));
  const queue: Hop[] = [];
  let head = 0;
  let hops = 0;
  let commands = 0;
  const seq = new Map(MEMBERS.map((id) => [id, 0]));
  const inFlight = new Map<string, string | undefined>();
  const commandList = Array.from({ length: batchSize }, (_, i) => `put k${i} v${i}`);
  let now = 0;

  const carryOut = (self: string, effects: Effect<string>[]) => {
    for (const e of effects) {
      if (e.type === "broadcast") {
        for (const to of MEMBERS) if (to !== self) queue.push({ from: self, to, msg: e.msg });
      } else if (e.type === "send") queue.push({ from: self, to: e.to, msg: e.msg });
      else if (e.type === "decide" && e.batch) {
        if (self === "n1") commands += e.batch.commands.length;
        if (inFlight.get(self) === e.batch.id) inFlight.set(self, undefined);
      }
    }
  };
  const submitIfIdle = (id: string) => {
    if (inFlight.get(id) !== undefined) return;
    const n = seq.get(id)! + 1;
    seq.set(id, n);
    const batch: Batch<string> = { id: `${id}:1:${n}`, submitter: id, createdAt: now, commands: commandList };
    inFlight.set(id, batch.id);
    carryOut(id, engines.get(id)!.submit(batch, now));
  };

  // Start everyone and let the sync exchange finish.
  for (const [id, engine] of engines) carryOut(id, engine.start(now));
  const drain = () => {
    while (head < queue.length) {
      const hop = queue[head++];
      hops++;
      carryOut(hop.to, engines.get(hop.to)!.receive(hop.from, hop.msg, now));
    }
  };
  drain();
  hops = 0;
  const started = performance.now();
  const n1 = engines.get("n1")!;
  while (n1.lastDecided < target) {
    now++;
    for (const id of MEMBERS) submitIfIdle(id);
    drain();
    if (head > 65536) {
      queue.splice(0, head);
      head = 0;
    }
  }
  return { decisions: n1.lastDecided, commands, hops, ms: performance.now() - started };
}

/** The same number of hops through a plain array queue: the floor any in-process message passing costs. */
function runBaseline(hops: number): number {
  const queue: { from: number; to: number; msg: { t: string; phase: number } }[] = [];
  let head = 0;
  let sink = 0;
  const started = performance.now();
  queue.push({ from: 0, to: 1, msg: { t: "vote1", phase: 1 } });
  for (let i = 0; i < hops; i++) {
    const hop = queue[head++];
    sink += hop.msg.phase + hop.to;
    queue.push({ from: hop.to, to: (hop.to + 1) % 3, msg: { t: hop.msg.t, phase: hop.msg.phase + 1 } });
    if (head > 65536) {
      queue.splice(0, head);
      head = 0;
    }
  }
  const ms = performance.now() - started;
  if (sink === -1) console.log("unreachable");
  return ms;
}

function main(): void {
  const { values } = parseArgs({ args: Deno.args, options: { decisions: { type: "string" } } });
  const target = Number(values.decisions ?? 20_000);
  if (!Number.isSafeInteger(target) || target < 100) throw new Error("--decisions must be an integer >= 100");
  runEngines(2000, 10); // warm-up
  runBaseline(100_000);
  console.log(`3 in-memory RabiaEngines, one batch in flight per member, ${target} decisions per row\n`);
  console.log(
    "commands/batch  decisions/s  commands/s   hops/decision  engine us/hop  baseline us/hop  ratio",
  );
  for (const batchSize of [1, 10, 100]) {
    const r = runEngines(target, batchSize);
    const baseMs = runBaseline(r.hops);
    const perHop = (r.ms * 1000) / r.hops;
    const basePerHop = (baseMs * 1000) / r.hops;
    console.log(
      [
        String(batchSize).padStart(14),
        Math.round((r.decisions / r.ms) * 1000).toLocaleString("en").padStart(12),
        Math.round((r.commands / r.ms) * 1000).toLocaleString("en").padStart(11),
        (r.hops / r.decisions).toFixed(1).padStart(15),
        perHop.toFixed(3).padStart(14),
        basePerHop.toFixed(3).padStart(16),
        `${(perHop / basePerHop).toFixed(1)}x`.padStart(6),
      ].join(" "),
    );
  }
}

main();
