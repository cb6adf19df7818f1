/**
 * The access to replicated state that features and the management API receive: writes through consensus,
 * local or linearizable reads, prefix ranges and watches. The node builds one over the replica (the runtime's
 * own writes) and one over the write forwarder (clients' writes join the leader's batches).
 */

import type { KvCommand, KvEntry, KvEvent, WatchHub } from "../kv/mod.ts";
import { type Replica, writeOutcome } from "./replica.ts";
import type { Writer } from "./forward.ts";

/** API writes a node sent into the leader's batches (forward.ts). */
export interface ForwardStats {
  /** Writes this member sent to the leader. */
  forwarded: number;
  /** Writes other members sent here. */
  served: number;
  /** Forwarded writes that failed because the leader disconnected before answering. */
  lostLeader: number;
  /** Forwarded writes the leader never read before it disconnected: they went into this member's batch. */
  keptLocal: number;
  /** Writes kept in this member's batch because `inFlight` was at its limit. */
  keptLocalFull: number;
  /** Forwarded writes waiting for an answer now. */
  inFlight: number;
}

/** A successful write: the store revision after it (and txn/delete details). */
export interface WriteOutcome {
  revision: number;
  succeeded?: boolean;
  deleted?: number;
}

export interface WatchStream extends AsyncIterable<KvEvent> {
  /** Ends the stream and releases its resources. */
  cancel(): void;
}

export interface KvAccess {
  readonly maxValueBytes: number;
  /** Replicates a command; resolves once it is applied on this node. Throws AetherError (no_quorum, timeout,
   * compare_failed, too_large, overloaded) otherwise. */
  write(command: KvCommand, options?: { timeoutMs?: number }): Promise<WriteOutcome>;
  /** Local read, or linearizable when `consistent` (a consensus barrier first). */
  get(key: string, options?: { consistent?: boolean; timeoutMs?: number }): Promise<KvEntry | undefined>;
  range(
    prefix: string,
    options?: { limit?: number; startAfter?: string },
  ): { revision: number; items: KvEntry[] };
  /** Events with revision >= fromRevision under the prefix; throws AetherError "gone" if compacted. */
  watch(prefix: string, fromRevision?: number): WatchStream;
}

/** Writes go through `writer`: the replica itself, or the forwarder into the leader's batches (API writes). */
export function kvAccess(
  replica: Replica,
  hub: WatchHub,
  defaultWriteTimeoutMs: number,
  writer: Writer = replica,
): KvAccess {
  const write = async (command: KvCommand, timeoutMs = defaultWriteTimeoutMs) =>
    writeOutcome(await writer.write(command, timeoutMs));
  return {
    get maxValueBytes() {
      return replica.state.maxValueBytes;
    },
    write: (command, options) => write(command, options?.timeoutMs),
    get: async (key, options) => {
      // A barrier through consensus, then the local state: linearizable.
      if (options?.consistent) await write({ type: "barrier" }, options.timeoutMs);
      return replica.state.get(key);
    },
    range: (prefix, options) => ({
      revision: replica.state.revision,
      items: replica.state.range(prefix, options?.limit ?? Infinity, options?.startAfter),
    }),
    watch: (prefix, fromRevision) => flattenWatch(hub, prefix, fromRevision),
  };
}

/** The hub yields one batch per revision; the API streams single events. */
function flattenWatch(hub: WatchHub, prefix: string, fromRevision?: number): WatchStream {
  const watch = hub.watch(prefix, fromRevision);
  return {
    cancel: () => watch.cancel(),
    async *[Symbol.asyncIterator]() {
      for await (const batch of watch) yield* batch.events;
    },
  };
}
