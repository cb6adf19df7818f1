/**
 * Child process of the storage crash test: commits one consensus step per phase, as a node does, and prints
 * each phase on stdout only after its commit returned. Takes snapshots and truncates the log on the way, so a
 * kill can land in any kind of transaction. Exits when its standard input closes.
 *
 * Usage: deno run --allow-read=DIR --allow-write=DIR storage_crash_child.ts DB_PATH always|never
 */

import type { Batch, PhaseRecord } from "../../consensus/mod.ts";
import type { KvCommand } from "../commands.ts";
import { ConsensusStorage, type FsyncPolicy, restoreKvState } from "../storage.ts";

export const CRASH_NODE = { nodeId: "n1", members: ["n1", "n2", "n3"] };
export const CRASH_LIMITS = { retainDecisions: 40, snapshotEveryDecisions: 64 };

/** The batch decided in `phase`: deterministic, so the test can rebuild the expected state. Every 13th is null. */
export function batchForPhase(phase: number): Batch<KvCommand> | null {
  if (phase % 13 === 0) return null;
  const value = new TextEncoder().encode(`value of phase ${phase} `.repeat(1 + (phase % 5)));
  const commands: KvCommand[] = [
    { type: "put", key: `k/${phase % 17}`, value },
    { type: "put", key: `phase`, value: new TextEncoder().encode(String(phase)) },
  ];
  if (phase % 7 === 0) commands.push({ type: "delete", key: `k/${(phase * 3) % 17}` });
  return { id: `n1:crash:${phase}`, submitter: "n1", createdAt: phase, commands };
}

export function recordForPhase(phase: number): PhaseRecord<KvCommand> {
  const batch = batchForPhase(phase);
  return {
    phase,
    proposal: batch,
    rounds: [{ vote1: batch ? { value: 1, batchId: batch.id } : { value: 0 } }],
  };
}

async function main(): Promise<void> {
  const [path, fsync] = Deno.args;
  const storage = ConsensusStorage.open(path, {
    ...CRASH_NODE,
    ...CRASH_LIMITS,
    fsync: fsync as FsyncPolicy,
  });
  const loaded = storage.load();
  const state = restoreKvState(loaded);
  const out = Deno.stdout;
  const encoder = new TextEncoder();
  await out.write(
    encoder.encode(JSON.stringify({ event: "ready", lastDecided: storage.lastDecided }) + "\n"),
  );

  let stdinClosed = false;
  (async () => {
    for await (const _ of Deno.stdin.readable) { /* drain */ }
    stdinClosed = true;
  })();

  for (let phase = storage.lastDecided + 1; !stdinClosed; phase++) {
    const batch = batchForPhase(phase);
    storage.commit({ decisions: [{ phase, batch }], record: recordForPhase(phase + 1) });
    if (batch) state.applyBatch(batch);
    if (storage.snapshotDue()) storage.saveSnapshot(phase, state.snapshot());
    await out.write(encoder.encode(`${phase}\n`));
  }
  storage.close();
}

if (import.meta.main) await main();
