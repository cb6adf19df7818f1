import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import { AetherError, createLogger, systemClock } from "../core/mod.ts";
import { type KvCommand, type KvEvent, type KvResult, KvState } from "../kv/mod.ts";
import { checkForwardMsg, WRITE_CHANNEL, WriteForwarder } from "./forward.ts";

const encoder = new TextEncoder();
const put = (key: string, value: string, ifRevision?: number): KvCommand => ({
  type: "put",
  key,
  value: encoder.encode(value),
  ...(ifRevision !== undefined ? { ifRevision } : {}),
});

/**
 * Two members, "lead" and "follow", over an in-memory link that delivers when the test says so. Both see the
 * same KvState, as replicas do once a decision is applied; "applied" on the follower trails until `replicate`.
 */
function pair() {
  const state = new KvState();
  const events: KvEvent[] = [];
  let followerRevision = 0;
  const revisionWaiters: { revision: number; resolve: (applied: boolean) => void }[] = [];
  const queue: { to: string; from: string; message: unknown }[] = [];
  const connected = new Set(["lead", "follow"]);
  const warnings: string[] = [];
  const log = {
    ...createLogger({ sink: () => {} }),
    warn: (m: string, f?: object) => warnings.push(`${m} ${JSON.stringify(f)}`),
  };
  const localWrites: string[] = [];
  const sent: string[] = [];
  const transport = (from: string) => ({
    send: (to: string, channel: string, message: unknown) => {
      equal(channel, WRITE_CHANNEL);
      sent.push((message as { t: string }).t);
      if (!connected.has(to)) return false;
      // Messages cross the wire encoded: nothing may be shared by reference.
      queue.push({ to, from, message: structuredClone(message) });
      return true;
    },
    isConnected: (id: string) => connected.has(id),
  });
  let failNext: AetherError | undefined;
  const leaderLocal = {
    write: (command: KvCommand): Promise<KvResult> => {
      localWrites.push("lead");
      if (failNext) {
        const error = failNext;
        failNext = undefined;
        return Promise.reject(error);
      }
      return Promise.resolve(state.apply(command, events));
    },
    waitForRevision: () => Promise.resolve(true),
  };
  const followerLocal = {
    write: (command: KvCommand): Promise<KvResult> => {
      localWrites.push("follow");
      return Promise.resolve(state.apply(command, events));
    },
    waitForRevision: (revision: number, timeoutMs: number): Promise<boolean> => {
      if (followerRevision >= revision) return Promise.resolve(true);
      const { promise, resolve } = Promise.withResolvers<boolean>();
      const timer = setTimeout(() => resolve(false), timeoutMs);
      revisionWaiters.push({
        revision,
        resolve: (applied) => {
          clearTimeout(timer);
          resolve(applied);
        },
      });
      return promise;
    },
  };
  let leaderId: string | undefined = "lead";
  const lead = new WriteForwarder({
    self: "lead",
    transport: transport("lead"),
    local: leaderLocal,
    target: () => leaderId,
    timers: systemClock,
    log,
    maxInFlight: 2,
  });
  const follow = new WriteForwarder({
    self: "follow",
    transport: transport("follow"),
    local: followerLocal,
    target: () => leaderId,
    timers: systemClock,
    log,
    maxInFlight: 2,
  });
  const byId: Record<string, WriteForwarder> = { lead, follow };
  return {
    lead,
    follow,
    state,
    warnings,
    localWrites,
    sent,
    queue,
    connected,
    setLeader: (id: string | undefined) => leaderId = id,
    failNextWith: (error: AetherError) => failNext = error,
    /** Delivers every queued message (and what they cause) in order. */
    async deliver(count = Infinity) {
      for (let i = 0; i < count && queue.length > 0; i++) {
        const { to, from, message } = queue.shift()!;
        if (connected.has(to)) byId[to].receive(from, message);
        await new Promise((r) => setTimeout(r, 0));
      }
    },
    /** The follower applies everything decided so far. */
    replicate() {
      followerRevision = state.revision;
      for (const w of revisionWaiters.splice(0)) w.resolve(w.revision <= followerRevision);
    },
  };
}

Deno.test("a follower's write goes into the leader's batch and is acknowledged once applied on the follower", async () => {
  const p = pair();
  const written = p.follow.write(put("app/a", "1"), 1_000);
  await p.deliver();
  deepStrictEqual(p.localWrites, ["lead"]);
  let settled = false;
  written.then(() => settled = true);
  await new Promise((r) => setTimeout(r, 5));
  equal(settled, false, "acknowledged before the follower applied it");
  p.replicate();
  deepStrictEqual(await written, { ok: true, revision: 1 });
  const none = { keptLocal: 0, keptLocalFull: 0, lostLeader: 0, inFlight: 0 };
  deepStrictEqual(p.follow.stats, { ...none, forwarded: 1, served: 0 });
  deepStrictEqual(p.lead.stats, { ...none, forwarded: 0, served: 1 });
  // The leader acknowledged reading it before it answered.
  deepStrictEqual(p.sent, ["write", "received", "result"]);
});

Deno.test("refused commands and errors come back as they happened on the leader", async () => {
  const p = pair();
  const cas = p.follow.write(put("app/a", "1", 7), 1_000);
  await p.deliver();
  p.replicate();
  const result = await cas;
  equal(result.ok, false);
  equal(!result.ok && result.code, "compare_failed");

  p.failNextWith(new AetherError("overloaded", "the batch queue is full", { queuedBytes: 9 }));
  const refused = rejects(p.follow.write(put("app/b", "2"), 1_000), (e: AetherError) => {
    equal(e.code, "overloaded");
    equal(e.message, "the batch queue is full");
    deepStrictEqual(e.extra, { queuedBytes: 9 });
    return true;
  });
  await p.deliver();
  await refused;
});

Deno.test("writes stay local without a connected leader other than this member", async () => {
  const p = pair();
  await p.lead.write(put("app/a", "1"), 1_000);
  p.setLeader(undefined);
  await p.follow.write(put("app/b", "2"), 1_000);
  p.setLeader("lead");
  p.connected.delete("lead");
  await p.follow.write(put("app/c", "3"), 1_000);
  deepStrictEqual(p.localWrites, ["lead", "follow", "follow"]);
  equal(p.follow.stats.forwarded, 0);
});

Deno.test("a leader that read a write and then disconnects fails it as unavailable, never retried", async () => {
  const p = pair();
  const failed = rejects(p.follow.write(put("app/a", "1"), 1_000), (e: AetherError) => {
    equal(e.code, "unavailable");
    match(e.message, /lead disconnected before answering; the write may still be applied/);
    return true;
  });
  // The leader reads the write (its receipt arrives), then is gone before its answer is delivered.
  await p.deliver(1);
  await p.deliver(1);
  deepStrictEqual(p.localWrites, ["lead"]);
  p.connected.delete("lead");
  p.follow.peerDown("lead");
  await failed;
  deepStrictEqual(p.localWrites, ["lead"], "not written again locally");
  equal(p.follow.stats.lostLeader, 1);
  equal(p.follow.stats.keptLocal, 0);
});

Deno.test("a write the leader never read before it disconnected goes into this member's batch", async () => {
  const p = pair();
  const written = p.follow.write(put("app/a", "1"), 1_000);
  // Sent, but the leader died before reading it: no receipt.
  p.queue.length = 0;
  p.connected.delete("lead");
  p.follow.peerDown("lead");
  deepStrictEqual(await written, { ok: true, revision: 1 });
  deepStrictEqual(p.localWrites, ["follow"]);
  deepStrictEqual(p.follow.stats, {
    forwarded: 1,
    served: 0,
    lostLeader: 0,
    keptLocal: 1,
    keptLocalFull: 0,
    inFlight: 0,
  });
});

Deno.test("forwards in flight are bounded: beyond the limit writes go into this member's batch", async () => {
  const p = pair();
  const writes = [1, 2, 3].map((i) => p.follow.write(put(`app/${i}`, "x"), 1_000));
  equal(p.follow.stats.inFlight, 2);
  equal(p.follow.stats.keptLocalFull, 1);
  deepStrictEqual(p.localWrites, ["follow"]);
  await p.deliver();
  p.replicate();
  await Promise.all(writes);
  equal(p.follow.stats.inFlight, 0);
});

Deno.test("an unanswered forwarded write times out within its deadline", async () => {
  const p = pair();
  const started = performance.now();
  await rejects(p.follow.write(put("app/a", "1"), 50), (e: AetherError) => e.code === "timeout");
  ok(performance.now() - started < 1_000);
  equal(p.follow.stats.inFlight, 0);
});

Deno.test("malformed forwarded messages are dropped with the reason logged", () => {
  const p = pair();
  p.lead.receive("follow", { t: "write", id: 1, command: { type: "put", key: 5 }, timeoutMs: 10 });
  p.lead.receive("follow", "nonsense");
  p.follow.receive("lead", { t: "result", id: 3, result: { ok: true } });
  equal(p.warnings.length, 3);
  match(p.warnings[0], /a put with malformed fields/);
  match(p.warnings[1], /not an object/);
  match(p.warnings[2], /result.revision must be a non-negative integer/);
  equal(p.lead.stats.served, 0);
});

Deno.test("checkForwardMsg names what is wrong", () => {
  const cases: [unknown, string | undefined][] = [
    [{ t: "write", id: 1, command: put("app/a", "1"), timeoutMs: 100 }, undefined],
    [{ t: "write", id: 0, command: put("app/a", "1"), timeoutMs: 100 }, "id must be a positive integer"],
    [{ t: "write", id: 1, command: put("app/a", "1"), timeoutMs: 0 }, "timeoutMs must be a positive integer"],
    [
      { t: "write", id: 1, command: { type: "drop" }, timeoutMs: 9 },
      "command must be an object whose type is put, delete, txn or barrier",
    ],
    [{ t: "result", id: 1, result: { ok: true, revision: 3 } }, undefined],
    [{ t: "received", id: 4 }, undefined],
    [{ t: "error", id: 1, code: "teapot", message: "x" }, "unknown error code teapot"],
    [{ t: "error", id: 1, code: "timeout", message: "x" }, undefined],
    [{ t: "ping", id: 1 }, "unknown message type ping"],
  ];
  for (const [message, expected] of cases) equal(checkForwardMsg(message), expected, JSON.stringify(message));
});
