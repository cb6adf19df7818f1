/**
 * The lock service: named leases through consensus with a time to live and a fencing token. A lease is the
 * record `locks/{group}/{name}` in the consensus KV (runtime/model/locks.ts):
 *
 * - acquire: a transaction that creates the record only if absent; the token is that write's KV revision (the
 *   record's createRevision), larger than every revision before it, so a later holder always has a larger
 *   token and a resource can refuse a write carrying a smaller one;
 * - renew and release: a put or delete compared on the record's modRevision, after checking its token;
 * - expiry: the leader alone removes a lease, in a transaction fenced on its own leader record and on the
 *   lease's modRevision, once `ttlMs` has passed on its clock since it applied the lease's last write, or
 *   since it became leader, whichever is later (README "Lock"). A failover therefore only lengthens leases,
 *   and a lease of a departed node's instance ends with its TTL like any other.
 *
 * Waiting acquirers watch their node's replica of the KV (no consensus round while the lock is held) and try
 * again when the record is gone, pausing 10 to 100 ms between looks; their last look (the only one with
 * `waitMs` 0) always asks consensus, so LockBusy is never the answer of a lagging replica.
 */

import { AetherError } from "../core/mod.ts";
import type { KvEntry } from "../kv/mod.ts";
import {
  decodeLockRecord,
  encodeLockRecord,
  LEADER_KEY,
  lockKey,
  LOCKS_PREFIX,
  MAX_LOCK_NAME_BYTES,
  MAX_LOCK_TTL_MS,
  MAX_LOCKS,
  parseLeaderRecord,
} from "../model/mod.ts";
import type { ConsensusServiceOptions } from "./consensus_service.ts";
import { type InfraService, optionalMs, remainingMs, type ServiceCall, stringField } from "./services.ts";

const DEFAULT_TTL_MS = 10_000;
/**
 * Leases one group (one application) may hold at once: a tenth of the cluster's MAX_LOCKS, so a slice that
 * hoards leases (acquiring and renewing) cannot leave other applications without a lock.
 */
export const MAX_LOCKS_PER_GROUP = MAX_LOCKS / 10;
const MAX_WAIT_MS = 600_000;
/** How often the leader looks for ended leases. */
const EXPIRY_TICK_MS = 50;
/** Expiry deletions one tick starts at most (each is one transaction). */
const MAX_EXPIRIES_PER_TICK = 256;

export type LockServiceOptions = ConsensusServiceOptions;

/** A lease as this node last applied it: what the leader needs to judge its expiry. */
interface TrackedLease {
  modRevision: number;
  ttlMs: number;
  /** performance.now() when this node applied that write. */
  appliedAtMs: number;
  /** An expiry deletion of this modRevision is in flight. */
  expiring?: boolean;
}

export interface LockService {
  /** Answers `acquire`, `renew`, `release`, `holder` for a slice. */
  serve(call: ServiceCall): Promise<unknown>;
  /** Leases this node knows of (the cluster's, as far as its replica has applied). */
  size(): number;
  stop(): void;
}

/** Starts tracking the lock records and, while this node leads, expiring them. */
export function startLockService(options: LockServiceOptions): LockService {
  const log = options.log.with({ component: "lock" });
  const leases = new Map<string, TrackedLease>();
  let leaderSinceMs: number | undefined;

  const track = (entry: { key: string; value?: Uint8Array; revision: number }) => {
    try {
      const record = decodeLockRecord(entry.value!, entry.key);
      leases.set(entry.key, {
        modRevision: entry.revision,
        ttlMs: record.ttlMs,
        appliedAtMs: performance.now(),
      });
    } catch (e) {
      log.warn("lock record unreadable; removed only by release", { key: entry.key, error: String(e) });
    }
  };
  const rebuild = () => {
    leases.clear();
    for (const entry of options.state().range(LOCKS_PREFIX)) {
      track({ key: entry.key, value: entry.value, revision: entry.modRevision });
    }
  };
  rebuild();
  const offEvents = options.onEvents((events) => {
    for (const event of events) {
      if (!event.key.startsWith(LOCKS_PREFIX)) continue;
      if (event.type === "put") track(event);
      else leases.delete(event.key);
    }
  });
  const offReset = options.onReset(rebuild);

  const expireEnded = () => {
    if (!options.isLeader()) {
      leaderSinceMs = undefined;
      return;
    }
    const nowMs = performance.now();
    leaderSinceMs ??= nowMs;
    // The fence is the leader record naming this node: once a newer one is applied here, deletions stop.
    const leader = options.state().get(LEADER_KEY);
    if (leader === undefined || parseLeaderRecord(leader.value)?.nodeId !== options.self) return;
    let started = 0;
    for (const [key, lease] of leases) {
      if (started >= MAX_EXPIRIES_PER_TICK) break;
      if (lease.expiring || Math.max(lease.appliedAtMs, leaderSinceMs) + lease.ttlMs > nowMs) continue;
      lease.expiring = true;
      started++;
      // Fenced: a deposed leader's deletion fails on LEADER_KEY, a renewed lease's on its modRevision.
      options.kv.write({
        type: "txn",
        compare: [{ key: LEADER_KEY, modRevision: leader.modRevision }, {
          key,
          modRevision: lease.modRevision,
        }],
        success: [{ op: "delete", key }],
        failure: [],
      }, { timeoutMs: 5_000 }).catch((e) => log.debug("lease expiry not written", { key, error: String(e) }))
        .finally(() => {
          const now = leases.get(key);
          if (now?.modRevision === lease.modRevision) now.expiring = false;
        });
    }
  };
  const timer = setInterval(expireEnded, EXPIRY_TICK_MS);

  return {
    serve: (call) => serve(options, leases, call),
    size: () => leases.size,
    stop() {
      clearInterval(timer);
      offEvents();
      offReset();
    },
  };
}

function tokenField(call: ServiceCall): number {
  const value = call.payload.token;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new AetherError("bad_request", `lock.${call.method}: token must be the token acquire returned`, {
      field: "token",
    });
  }
  return value;
}

function ttlField(call: ServiceCall): number {
  return optionalMs(call, "lock", "ttlMs", MAX_LOCK_TTL_MS) ?? DEFAULT_TTL_MS;
}

/** A write whose outcome is unknown or that found no quorum in time: worth another look. */
function retryable(e: unknown): boolean {
  return e instanceof AetherError &&
    (e.code === "no_quorum" || e.code === "timeout" || e.code === "unavailable");
}

function compareFailed(e: unknown): boolean {
  return e instanceof AetherError && e.code === "compare_failed";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function recordOf(options: LockServiceOptions, ttlMs: number, acquisition: string): Uint8Array {
  return encodeLockRecord({ acquisition, node: options.self, ttlMs, writtenAt: Date.now() });
}

/**
 * The lease with this token: from the local replica when it has it, otherwise from a linearizable read (a
 * lagging replica must not end a live lease).
 */
async function leaseWithToken(
  options: LockServiceOptions,
  key: string,
  token: number,
  call: ServiceCall,
): Promise<KvEntry | undefined> {
  const local = options.state().get(key);
  if (local?.createRevision === token) return local;
  const entry = await options.kv.get(key, { consistent: true, timeoutMs: remainingMs(call) });
  return entry?.createRevision === token ? entry : undefined;
}

/** Leases of one group this node has applied (at most MAX_LOCKS keys to look at). */
function heldByGroup(leases: Map<string, TrackedLease>, group: string): number {
  const prefix = `${LOCKS_PREFIX}${group}/`;
  let held = 0;
  for (const key of leases.keys()) if (key.startsWith(prefix)) held++;
  return held;
}

async function acquire(
  options: LockServiceOptions,
  leases: Map<string, TrackedLease>,
  call: ServiceCall,
  name: string,
  key: string,
) {
  const ttlMs = ttlField(call);
  const waitMs = call.payload.waitMs === 0 ? 0 : optionalMs(call, "lock", "waitMs", MAX_WAIT_MS) ?? 0;
  const startMs = Date.now();
  const giveUpAtMs = Math.min(startMs + waitMs, call.deadlineMs - 50);
  const acquisition = crypto.randomUUID();
  for (let pauseMs = 10;; pauseMs = Math.min(100, pauseMs * 2)) {
    const local = options.state().get(key);
    if (local !== undefined && decodeLockRecord(local.value, key).acquisition === acquisition) {
      // An earlier attempt's write landed after its answer was lost: this acquisition holds the lease.
      return { name, token: local.createRevision, expiresAtMs: startMs + ttlMs };
    }
    // The last look asks consensus even when the local replica still shows a lease: it may lag behind a
    // release made through another node, and a LockBusy answer must be true when given.
    const lastLook = Date.now() + pauseMs > giveUpAtMs;
    if (local === undefined || lastLook) {
      if (leases.size >= MAX_LOCKS) {
        throw new AetherError(
          "overloaded",
          `lock ${name}: the cluster holds ${MAX_LOCKS} locks, the most it may`,
        );
      }
      if (heldByGroup(leases, call.group) >= MAX_LOCKS_PER_GROUP) {
        throw new AetherError(
          "overloaded",
          `lock ${name}: group ${call.group} holds ${MAX_LOCKS_PER_GROUP} locks, the most one application ` +
            `may (release or let some end)`,
        );
      }
      const attemptMs = Date.now();
      try {
        const outcome = await options.kv.write({
          type: "txn",
          compare: [{ key, modRevision: 0 }],
          success: [{ op: "put", key, value: recordOf(options, ttlMs, acquisition) }],
          failure: [],
        }, { timeoutMs: remainingMs(call) });
        // The holder counts its lease from before it asked; the leader counts from after it applied.
        if (outcome.succeeded) return { name, token: outcome.revision, expiresAtMs: attemptMs + ttlMs };
      } catch (e) {
        if (!retryable(e) || lastLook) throw e;
      }
    }
    if (lastLook) break;
    await sleep(pauseMs);
  }
  throw new AetherError("conflict", `lock ${name} is held by another holder (waited ${waitMs} ms)`, {
    errorName: "LockBusy",
  });
}

function lost(name: string, token: number): AetherError {
  return new AetherError("conflict", `lock ${name}: the lease with token ${token} has ended`, {
    errorName: "LockLost",
  });
}

async function renew(options: LockServiceOptions, call: ServiceCall, name: string, key: string) {
  const token = tokenField(call);
  const ttlMs = ttlField(call);
  const startMs = Date.now();
  // Two tries: a first compare may fail on a stale local modRevision while the lease is still this token's.
  for (let attempt = 0; attempt < 2; attempt++) {
    const entry = await leaseWithToken(options, key, token, call);
    if (entry === undefined) throw lost(name, token);
    const acquisition = decodeLockRecord(entry.value, key).acquisition;
    try {
      await options.kv.write(
        { type: "put", key, value: recordOf(options, ttlMs, acquisition), ifRevision: entry.modRevision },
        { timeoutMs: remainingMs(call) },
      );
      return { name, token, expiresAtMs: startMs + ttlMs };
    } catch (e) {
      if (!compareFailed(e)) throw e;
    }
  }
  throw lost(name, token);
}

async function release(options: LockServiceOptions, call: ServiceCall, key: string): Promise<boolean> {
  const token = tokenField(call);
  for (let attempt = 0; attempt < 2; attempt++) {
    const entry = await leaseWithToken(options, key, token, call);
    if (entry === undefined) return false;
    try {
      await options.kv.write({ type: "delete", key, ifRevision: entry.modRevision }, {
        timeoutMs: remainingMs(call),
      });
      return true;
    } catch (e) {
      if (!compareFailed(e)) throw e;
    }
  }
  return false;
}

async function serve(
  options: LockServiceOptions,
  leases: Map<string, TrackedLease>,
  call: ServiceCall,
): Promise<unknown> {
  const name = stringField(call, "lock", "lock", MAX_LOCK_NAME_BYTES);
  const key = lockKey(call.group, name);
  switch (call.method) {
    case "acquire":
      return await acquire(options, leases, call, name, key);
    case "renew":
      return await renew(options, call, name, key);
    case "release":
      return await release(options, call, key);
    case "holder": {
      const entry = await options.kv.get(key, { consistent: true, timeoutMs: remainingMs(call) });
      if (entry === undefined) return null;
      const record = decodeLockRecord(entry.value, key);
      // By the last writer's wall clock: an estimate; the leader's expiry may come later, never earlier.
      return { token: entry.createRevision, expiresAtMs: record.writtenAt + record.ttlMs, node: record.node };
    }
  }
  throw new AetherError("not_found", `lock has no method "${call.method}"`);
}

/** The catalog row; calls are answered by the LockService the node started (services.ts `kvServed`). */
export const LOCK_SERVICE: InfraService = {
  name: "lock",
  version: "1.0.0",
  description: "named leases through consensus with a time to live and a monotonic fencing token",
  methods: ["acquire", "renew", "release", "holder"],
};
