/**
 * `deno task sim`: runs the cluster simulator for one seed or a range of seeds.
 *
 *   deno task sim --seed 1234 --members 5 --faults all      replay one run exactly
 *   deno task sim --seed 1 --seeds 200 --members 3          seeds 1..200
 *
 * Prints one line per run; a failing run prints what broke and the one command that replays it, and the
 * process exits with status 1.
 */

import { parseArgs } from "node:util";
import { DEFAULT_SIM_OPTIONS, parseFaults, runSimulation, type SimOptions } from "./simulator.ts";

function usage(message: string): never {
  console.error(`sim: ${message}`);
  console.error(
    "usage: deno task sim [--seed N] [--seeds COUNT] [--members 1|3|5] [--faults all|none|net,link,lag,...]",
  );
  console.error("                     [--duration MS] [--clients N] [--keys N] [--max-frame-bytes N]");
  console.error("                     [--value-bytes N] [--verbose]");
  Deno.exit(2);
}

function intFlag(values: Record<string, unknown>, name: string, fallback: number, min: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) usage(`--${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
      options: {
        seed: { type: "string" },
        seeds: { type: "string" },
        members: { type: "string" },
        faults: { type: "string" },
        duration: { type: "string" },
        clients: { type: "string" },
        keys: { type: "string" },
        "max-frame-bytes": { type: "string" },
        "value-bytes": { type: "string" },
        verbose: { type: "boolean", short: "v" },
      },
      strict: true,
    });
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  }
  const v = parsed.values;
  const firstSeed = intFlag(v, "seed", crypto.getRandomValues(new Uint32Array(1))[0], 0);
  const count = intFlag(v, "seeds", 1, 1);
  const faults = v.faults ?? DEFAULT_SIM_OPTIONS.faults;
  try {
    parseFaults(faults);
  } catch (e) {
    usage((e as Error).message);
  }
  const base: Omit<SimOptions, "seed"> = {
    members: intFlag(v, "members", DEFAULT_SIM_OPTIONS.members, 1),
    faults,
    durationMs: intFlag(v, "duration", DEFAULT_SIM_OPTIONS.durationMs, 100),
    clients: intFlag(v, "clients", DEFAULT_SIM_OPTIONS.clients, 1),
    keys: intFlag(v, "keys", DEFAULT_SIM_OPTIONS.keys, 1),
  };
  if (v["max-frame-bytes"] !== undefined) base.maxFrameBytes = intFlag(v, "max-frame-bytes", 0, 1024);
  if (v["value-bytes"] !== undefined) base.valueBytes = intFlag(v, "value-bytes", 0, 1);
  if (![1, 3, 5].includes(base.members)) usage(`--members must be 1, 3 or 5, got ${base.members}`);
  let failed = 0;
  const started = performance.now();
  for (let seed = firstSeed; seed < firstSeed + count; seed++) {
    const result = await runSimulation({ ...base, seed });
    const s = result.stats;
    if (!result.ok) {
      failed++;
      console.log(`seed ${seed}: FAILED\n${result.failure}\nreplay: ${result.replay}`);
    } else if (v.verbose || count === 1) {
      console.log(
        `seed ${seed}: ok  phases ${s.phases}, ops ${s.operations} (${s.unknown} unknown), crashes ${s.crashes} ` +
          `(${s.powerLosses} power, ${s.lostWrites} writes lost), partitions ${s.partitions}, link cuts ${s.linkCuts}, ` +
          `lags ${s.lags}, snapshot installs ${s.snapshotInstalls} (${s.snapshotInstallsWithTail} with decisions ` +
          `after), watch re-reads ${s.watchRereads}, leader changes ${s.leaderChanges} (link cuts checked ` +
          `${s.linkEpisodesChecked}, most per cut ${s.maxLeaderChangesPerLinkEpisode}; leader faults checked ` +
          `${s.leaderEpisodesChecked}, slowest new leader ${s.slowestNewLeaderMs} ms), messages ${s.messagesSent}, ` +
          `simulated ${s.simulatedMs} ms, events ${s.events}, decisions ${result.decisionHash}, history ${result.historyHash}`,
      );
    }
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`${count - failed}/${count} runs passed in ${seconds} s`);
  if (failed > 0) Deno.exit(1);
}

await main();
