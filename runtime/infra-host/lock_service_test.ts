/**
 * The lock service's rules on one replica of the real KV state machine (writes applied in order, events
 * delivered as the replica does): exclusion, tokens from revisions, renew/release by token, and expiry only by
 * the node whose leader record is current, only after the TTL. Replication and failovers: the 3-process test
 * tests/integration/infra_lock_test.ts.
 */

import { equal, ok, rejects } from "node:assert/strict";
import { AetherError, createLogger } from "../core/mod.ts";
import { type KvAccess, writeOutcome } from "../cluster/mod.ts";
import { type KvCommand, type KvEvent, KvState } from "../kv/mod.ts";
import { LEADER_KEY } from "../model/mod.ts";
import { type LockService, startLockService } from "./mod.ts"; // mod.ts first: services.ts and the services import each other
import type { ServiceCall } from "./services.ts";
import { MAX_LOCKS_PER_GROUP } from "./lock_service.ts";

function oneReplica(self = "n1") {
  const state = new KvState();
  const listeners = new Set<(events: readonly KvEvent[]) => void>();
  const apply = (command: KvCommand) => {
    const events: KvEvent[] = [];
    const result = state.apply(command, events);
    if (events.length > 0) { for (const listener of listeners) listener(events); }
    return writeOutcome(result);
  };
  const kv: KvAccess = {
    maxValueBytes: state.maxValueBytes,
    write: (command) => Promise.resolve().then(() => apply(command)),
    get: (key) => Promise.resolve(state.get(key)),
    range: (prefix) => ({ revision: state.revision, items: state.range(prefix) }),
    watch: () => {
      throw new Error("not used");
    },
  };
  let leader = true;
  const elect = (nodeId: string) =>
    apply({
      type: "put",
      key: LEADER_KEY,
      value: new TextEncoder().encode(JSON.stringify({ nodeId, view: 1, electedAt: Date.now() })),
    });
  elect(self);
  const locks = startLockService({
    self,
    log: createLogger({ level: "error" }),
    kv,
    state: () => state,
    onEvents: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onReset: () => () => {},
    isLeader: () => leader,
  });
  return {
    state,
    locks,
    elect,
    setLeader: (value: boolean) => leader = value,
  };
}

function call(method: string, payload: Record<string, unknown>): ServiceCall {
  return { group: "org.example", method, payload, deadlineMs: Date.now() + 5_000, requestId: "r" };
}

async function acquire(locks: LockService, payload: Record<string, unknown>) {
  return await locks.serve(call("acquire", payload)) as { token: number; expiresAtMs: number };
}

function errorName(e: unknown): string {
  return e instanceof AetherError ? String(e.extra.errorName ?? e.code) : String(e);
}

Deno.test("lock: one holder; LockBusy for the next; tokens are the acquiring writes' revisions", async () => {
  const { state, locks } = oneReplica();
  try {
    const a = await acquire(locks, { lock: "job", ttlMs: 60_000 });
    equal(a.token, state.get("locks/org.example/job")!.createRevision);
    await rejects(acquire(locks, { lock: "job", waitMs: 0 }), (e) => errorName(e) === "LockBusy");
    equal(await locks.serve(call("release", { lock: "job", token: a.token })), true);
    const b = await acquire(locks, { lock: "job" });
    ok(b.token > a.token, `${b.token} > ${a.token}`);
    const other = await acquire(locks, { lock: "other" });
    ok(other.token > b.token, "every later acquisition has a larger token, whatever the lock");
  } finally {
    locks.stop();
  }
});

Deno.test("lock: renew and release by token; a stale token is LockLost or releases nothing", async () => {
  const { locks } = oneReplica();
  try {
    const a = await acquire(locks, { lock: "job" });
    const renewed = await locks.serve(call("renew", { lock: "job", token: a.token, ttlMs: 30_000 })) as {
      token: number;
    };
    equal(renewed.token, a.token, "renewal keeps the token");
    await rejects(
      locks.serve(call("renew", { lock: "job", token: a.token + 1000 })),
      (e) => errorName(e) === "LockLost",
    );
    equal(await locks.serve(call("release", { lock: "job", token: a.token + 1000 })), false);
    equal(await locks.serve(call("release", { lock: "job", token: a.token })), true);
    equal(await locks.serve(call("release", { lock: "job", token: a.token })), false);
    await rejects(
      locks.serve(call("renew", { lock: "job", token: a.token })),
      (e) => errorName(e) === "LockLost",
    );
    await rejects(
      locks.serve(call("acquire", { lock: "job", ttlMs: 0 })),
      /lock\.acquire: ttlMs must be an integer from 1 to 3600000/,
    );
  } finally {
    locks.stop();
  }
});

Deno.test("lock: only the current leader ends a lease, and not before its TTL", async () => {
  const { state, locks, setLeader, elect } = oneReplica();
  const key = "locks/org.example/job";
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  try {
    setLeader(false);
    await acquire(locks, { lock: "job", ttlMs: 100 });
    await sleep(400);
    ok(state.get(key), "a follower never ends a lease");
    setLeader(true);
    await sleep(60);
    ok(state.get(key), "a new leader counts the TTL from its election");
    await sleep(400);
    equal(state.get(key), undefined, "the leader ended the lease after its TTL");

    const a = await acquire(locks, { lock: "job", ttlMs: 300 });
    for (let i = 0; i < 4; i++) {
      await sleep(150);
      await locks.serve(call("renew", { lock: "job", token: a.token, ttlMs: 300 }));
    }
    ok(state.get(key), "renewals keep the lease");

    elect("n2"); // this node still thinks it leads, but its replica holds a newer leader record
    await sleep(600);
    ok(state.get(key), "a node whose leader record is not current ends nothing");
  } finally {
    locks.stop();
  }
});

Deno.test("lock: one group holds at most its share of the cluster's locks; other groups still get theirs", async () => {
  // Hostile code: without a per-group bound one slice could take all MAX_LOCKS leases (renewing them) and
  // leave every other application without a lock.
  const { locks } = oneReplica();
  const inGroup = (group: string, method: string, payload: Record<string, unknown>): ServiceCall => ({
    ...call(method, payload),
    group,
  });
  try {
    for (let i = 0; i < MAX_LOCKS_PER_GROUP; i++) {
      await locks.serve(inGroup("org.hostile", "acquire", { lock: `hoard-${i}`, ttlMs: 3_600_000 }));
    }
    await rejects(
      locks.serve(inGroup("org.hostile", "acquire", { lock: "one-more", waitMs: 0 })),
      (e) =>
        e instanceof AetherError && e.code === "overloaded" &&
        e.message.includes(`group org.hostile holds ${MAX_LOCKS_PER_GROUP} locks`),
    );
    const other = await locks.serve(inGroup("org.example", "acquire", { lock: "job" })) as { token: number };
    ok(other.token > 0, "another group still acquires");
  } finally {
    locks.stop();
  }
});
