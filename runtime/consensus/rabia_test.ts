/**
 * Transcript tests: one engine is fed hand-written peer messages and its effects are checked step by step.
 * Member ids are a, b, c (d, e for five); the engine under test is always "a" unless a test says otherwise.
 */

import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { commonCoin, RabiaEngine } from "./rabia.ts";
import {
  type Batch,
  type ConsensusMsg,
  DEFAULT_ENGINE_TIMINGS,
  type Effect,
  type EngineConfig,
  type PhaseRecord,
  QUESTION,
  type RestoredState,
} from "./types.ts";

type Cmd = string;

const THREE = ["a", "b", "c"];
const FIVE = ["a", "b", "c", "d", "e"];

function engine(
  members = THREE,
  restored: RestoredState<Cmd> = { lastDecided: 0 },
  self = "a",
  limits: Partial<EngineConfig> = {},
) {
  return new RabiaEngine<Cmd>({ self, members, ...DEFAULT_ENGINE_TIMINGS, ...limits }, restored);
}

function batch(id: string, createdAt = 1, submitter = id.split(":")[0]): Batch<Cmd> {
  return { id, submitter, createdAt, commands: [`cmd-of-${id}`] };
}

/** Starts an engine and answers its sync request from enough peers to make it active. */
function activeEngine(
  members = THREE,
  restored: RestoredState<Cmd> = { lastDecided: 0 },
  limits: Partial<EngineConfig> = {},
) {
  const e = engine(members, restored, "a", limits);
  const nonce = syncNonce(e.start(0));
  for (const peer of members.slice(1, Math.floor(members.length / 2) + 1)) {
    e.receive(peer, { t: "syncRes", nonce, lastDecided: restored.lastDecided, decisions: [] }, 0);
  }
  assert.deepEqual(e.status, "active");
  return e;
}

/** The nonce of the sync request among `effects`. */
function syncNonce(effects: Effect<Cmd>[]): number {
  const req = broadcasts(effects).find((m) => m.t === "syncReq");
  assert(req && req.t === "syncReq", "no sync request broadcast");
  return req.nonce;
}

function broadcasts(effects: Effect<Cmd>[]): ConsensusMsg<Cmd>[] {
  return effects.flatMap((e) => e.type === "broadcast" ? [e.msg] : []);
}

function sends(effects: Effect<Cmd>[]): { to: string; msg: ConsensusMsg<Cmd> }[] {
  return effects.flatMap((e) => e.type === "send" ? [{ to: e.to, msg: e.msg }] : []);
}

function decisions(effects: Effect<Cmd>[]): { phase: number; id: string | null }[] {
  return effects.flatMap((e) => e.type === "decide" ? [{ phase: e.phase, id: e.batch?.id ?? null }] : []);
}

function votes(effects: Effect<Cmd>[]) {
  return broadcasts(effects).flatMap((m) =>
    m.t === "vote1" || m.t === "vote2" ? [{ t: m.t, round: m.round, value: m.value, batchId: m.batchId }] : []
  );
}

function lastRecord(effects: Effect<Cmd>[]): PhaseRecord<Cmd> | undefined {
  return effects.flatMap((e) => e.type === "persist" ? [e.record] : []).at(-1);
}

/** Every broadcast/send of a proposal or vote must come after a persist in the same effect list. */
function assertPersistBeforeSend(effects: Effect<Cmd>[]): void {
  let persisted = false;
  for (const e of effects) {
    if (e.type === "persist") persisted = true;
    if ((e.type === "broadcast" || e.type === "send") && ["propose", "vote1", "vote2"].includes(e.msg.t)) {
      assert(persisted, `${e.msg.t} sent before any persist: ${JSON.stringify(effects)}`);
    }
  }
}

/** A phase whose round-1 coin shows `value`. */
function phaseWithCoin(value: 0 | 1): number {
  for (let p = 1;; p++) if (commonCoin(p, 1) === value) return p;
}

const X = batch("a:1:1", 5);
const Y = batch("b:1:1", 7);

Deno.test("fast path: identical proposals from every member decide at once, without voting", () => {
  const a = activeEngine();
  const submitted = a.submit(X, 1);
  assertPersistBeforeSend(submitted);
  assert.deepEqual(
    broadcasts(submitted),
    [{ t: "propose", phase: 1, batch: X }],
    "proposal carries the batch",
  );
  assert.deepEqual(decisions(a.receive("b", { t: "propose", phase: 1, batch: X }, 2)), []);
  const third = a.receive("c", { t: "propose", phase: 1, batch: X }, 3);
  assert.deepEqual(decisions(third), [{ phase: 1, id: X.id }]);
  assert.deepEqual(votes(third), [], "no vote round after unanimity");
  assert.deepEqual(a.lastDecided, 1);
  assert.deepEqual(a.pendingCount, 0);
});

Deno.test("fast path: identical round-1 vote-1 messages from every member decide before round 2 completes", () => {
  const a = activeEngine();
  a.submit(X, 1);
  const quorum = a.receive("b", { t: "propose", phase: 1, batch: X }, 2);
  assert.deepEqual(votes(quorum), [{ t: "vote1", round: 1, value: 1, batchId: X.id }]);
  const v1b = a.receive("b", { t: "vote1", phase: 1, round: 1, value: 1, batchId: X.id }, 3);
  assert.deepEqual(votes(v1b), [{ t: "vote2", round: 1, value: 1, batchId: X.id }]);
  assert.deepEqual(decisions(v1b), [], "a quorum of vote-1 is not enough");
  const v1c = a.receive("c", { t: "vote1", phase: 1, round: 1, value: 1, batchId: X.id }, 4);
  assert.deepEqual(decisions(v1c), [{ phase: 1, id: X.id }], "all three vote-1 = 1 decides with one vote-2");
});

Deno.test("no fast path on n - f: the counter-example's B does not decide on {A:1, B:1}", () => {
  // B's view in the counter-example: A and B have state 1 for X.
  const b = activeEngineAs("b");
  b.receive("a", { t: "propose", phase: 1, batch: X }, 1); // b proposes X too (it is its oldest pending)
  const v1a = b.receive("a", { t: "vote1", phase: 1, round: 1, value: 1, batchId: X.id }, 2);
  assert.deepEqual(decisions(v1a), [], "n - f = 2 matching vote-1 messages must not decide");
  assert.deepEqual(votes(v1a), [{ t: "vote2", round: 1, value: 1, batchId: X.id }]);
  // A and C vote "?" and B's own vote-2 is late: B learns nothing decisive from {A:?}; with its own 1 the
  // quorum {B:1, A:?} shows a 1 only once (< f + 1): B locks 1 for round 2 instead of deciding.
  const v2a = b.receive("a", { t: "vote2", phase: 1, round: 1, value: QUESTION, batchId: X.id }, 3);
  assert.deepEqual(decisions(v2a), []);
  assert.deepEqual(votes(v2a), [{ t: "vote1", round: 2, value: 1, batchId: X.id }]);
});

Deno.test("no fast path on n - f with five members: four identical proposals or vote-1s do not decide", () => {
  const a = activeEngine(FIVE);
  a.submit(X, 1);
  for (const peer of ["b", "c", "d"]) {
    assert.deepEqual(decisions(a.receive(peer, { t: "propose", phase: 1, batch: X }, 2)), []);
  }
  for (const peer of ["b", "c", "d"]) {
    const effects = a.receive(peer, { t: "vote1", phase: 1, round: 1, value: 1, batchId: X.id }, 3);
    assert.deepEqual(decisions(effects), [], `vote-1 from ${peer}`);
  }
});

function activeEngineAs(self: string, members = THREE) {
  const e = new RabiaEngine<Cmd>({ self, members, ...DEFAULT_ENGINE_TIMINGS }, { lastDecided: 0 });
  const nonce = syncNonce(e.start(0));
  const peer = members.find((m) => m !== self)!;
  e.receive(peer, { t: "syncRes", nonce, lastDecided: 0, decisions: [] }, 0);
  assert.deepEqual(e.status, "active");
  return e;
}

Deno.test("normal path with one member silent: two of three decide through both vote rounds", () => {
  const a = activeEngine();
  a.submit(X, 1);
  assert.deepEqual(votes(a.receive("b", { t: "propose", phase: 1, batch: X }, 2)), [
    { t: "vote1", round: 1, value: 1, batchId: X.id },
  ]);
  assert.deepEqual(votes(a.receive("b", { t: "vote1", phase: 1, round: 1, value: 1, batchId: X.id }, 3)), [
    { t: "vote2", round: 1, value: 1, batchId: X.id },
  ]);
  const done = a.receive("b", { t: "vote2", phase: 1, round: 1, value: 1, batchId: X.id }, 4);
  assert.deepEqual(decisions(done), [{ phase: 1, id: X.id }]);
  assert.deepEqual(broadcasts(done).filter((m) => m.t === "decision"), [{
    t: "decision",
    phase: 1,
    batch: X,
  }]);
});

Deno.test("fast 0: when no batch can reach a majority of proposals, the phase decides nothing at once", () => {
  const a = activeEngine();
  a.submit(X, 1);
  const Z = batch("c:1:1", 9);
  assert.deepEqual(
    decisions(a.receive("b", { t: "propose", phase: 1, batch: Y }, 2)),
    [],
    "c could still pick X or Y",
  );
  const done = a.receive("c", { t: "propose", phase: 1, batch: Z }, 3);
  assert.deepEqual(decisions(done), [{ phase: 1, id: null }]);
  assert.equal(votes(done).filter((v) => v.round === 1).length, 0, "no vote round was needed");
  // Five members: three distinct proposals and two missing still allow a majority; four distinct do not.
  const five = activeEngine(FIVE);
  five.submit(X, 1);
  five.receive("b", { t: "propose", phase: 1, batch: Y }, 2);
  assert.deepEqual(decisions(five.receive("c", { t: "propose", phase: 1, batch: Z }, 3)), []);
  const W = batch("d:1:1", 11);
  assert.deepEqual(decisions(five.receive("d", { t: "propose", phase: 1, batch: W }, 4)), [{
    phase: 1,
    id: null,
  }]);
});

Deno.test("proposals without a majority give state 0 and decide nothing for the phase", () => {
  const a = activeEngine();
  a.submit(X, 1);
  // b proposes Y; a's quorum {a:X, b:Y} has no majority batch.
  const v1 = a.receive("b", { t: "propose", phase: 1, batch: Y }, 2);
  assert.deepEqual(votes(v1), [{ t: "vote1", round: 1, value: 0, batchId: undefined }]);
  a.receive("b", { t: "vote1", phase: 1, round: 1, value: 0 }, 3);
  const done = a.receive("b", { t: "vote2", phase: 1, round: 1, value: 0 }, 4);
  assert.deepEqual(decisions(done)[0], { phase: 1, id: null });
  // Both batches are still pending; phase 2 starts at once with the oldest (X, createdAt 5).
  assert.deepEqual(a.pendingCount, 2);
  assert.deepEqual(broadcasts(done).find((m) => m.t === "propose"), { t: "propose", phase: 2, batch: X });
});

/** Brings a to round 1 vote-2 = "?" in phase p: a has state 1 (X), c has state 0. */
function questionVoter(phase: number) {
  const a = activeEngine(THREE, { lastDecided: phase - 1 });
  a.submit(X, 1);
  a.receive("b", { t: "propose", phase, batch: X }, 2); // state 1
  const q = a.receive("c", { t: "vote1", phase, round: 1, value: 0 }, 3);
  assert.deepEqual(votes(q), [{ t: "vote2", round: 1, value: QUESTION, batchId: X.id }]);
  return a;
}

Deno.test("coin: when every round-2 vote is '?', the next state is the common coin of (phase, round)", () => {
  for (const coin of [0, 1] as const) {
    const phase = phaseWithCoin(coin);
    const a = questionVoter(phase);
    const next = a.receive("c", { t: "vote2", phase, round: 1, value: QUESTION }, 4);
    assert.deepEqual(decisions(next), []);
    assert.deepEqual(votes(next), [{
      t: "vote1",
      round: 2,
      value: coin,
      batchId: coin === 1 ? X.id : undefined,
    }]);
  }
});

Deno.test("common coin: deterministic, and both values occur", () => {
  const bits = Array.from({ length: 64 }, (_, i) => commonCoin(1000 + i, 1 + (i % 3)));
  assert.deepEqual(bits, Array.from({ length: 64 }, (_, i) => commonCoin(1000 + i, 1 + (i % 3))));
  assert(bits.includes(0) && bits.includes(1));
  assert(commonCoin(2 ** 40 + 3, 2) === 0 || commonCoin(2 ** 40 + 3, 2) === 1);
});

Deno.test("value locking: a non-'?' round-2 vote fixes the next state even when the coin says otherwise", () => {
  const phase = phaseWithCoin(0);
  const a = questionVoter(phase);
  const next = a.receive("b", { t: "vote2", phase, round: 1, value: 1, batchId: X.id }, 4);
  assert.deepEqual(decisions(next), [], "one vote for 1 is fewer than f + 1");
  assert.deepEqual(votes(next), [{ t: "vote1", round: 2, value: 1, batchId: X.id }]);
  // Round 2: b agrees; two vote-2 = 1 decide.
  a.receive("b", { t: "vote1", phase, round: 2, value: 1, batchId: X.id }, 5);
  const done = a.receive("b", { t: "vote2", phase, round: 2, value: 1, batchId: X.id }, 6);
  assert.deepEqual(decisions(done), [{ phase, id: X.id }]);
});

Deno.test("decision adoption: a peer's Decision ends the phase; later ones for the same phase must agree", () => {
  const a = activeEngine();
  a.submit(X, 1);
  a.receive("b", { t: "propose", phase: 1, batch: Y }, 2);
  const adopted = a.receive("b", { t: "decision", phase: 1, batch: Y }, 3);
  assert.deepEqual(decisions(adopted)[0], { phase: 1, id: Y.id });
  assert.deepEqual(
    broadcasts(adopted).filter((m) => m.t === "decision"),
    [],
    "adopting does not re-announce",
  );
  // X is still pending, so phase 2 starts proposing it.
  assert.deepEqual(broadcasts(adopted).find((m) => m.t === "propose"), { t: "propose", phase: 2, batch: X });
  assert.throws(() => a.receive("c", { t: "decision", phase: 1, batch: X }, 4), /phase 1: decided b:1:1/);
});

Deno.test("a Decision for a future phase is kept and applied in order", () => {
  const a = activeEngine();
  a.submit(X, 1);
  assert.deepEqual(decisions(a.receive("b", { t: "decision", phase: 2, batch: Y }, 2)), []);
  const both = a.receive("b", { t: "decision", phase: 1, batch: X }, 3);
  assert.deepEqual(decisions(both), [{ phase: 1, id: X.id }, { phase: 2, id: Y.id }]);
});

Deno.test("restart resumes the recorded proposal and votes (no equivocation)", () => {
  const a = activeEngine();
  a.submit(X, 1);
  const voted = a.receive("b", { t: "propose", phase: 1, batch: X }, 2);
  const record = lastRecord(voted)!;
  assert.deepEqual(record.proposal?.id, X.id);
  assert.deepEqual(record.rounds, [{ vote1: { value: 1, batchId: X.id } }]);

  // The restarted member has a newer batch Z pending... it must still say X and state 1 in phase 1.
  const again = engine(THREE, { lastDecided: 0, record });
  const nonce = syncNonce(again.start(10));
  const resumed = again.receive("c", { t: "syncRes", nonce, lastDecided: 0, decisions: [] }, 11);
  assert.deepEqual(broadcasts(resumed).filter((m) => m.t !== "decision"), [
    { t: "propose", phase: 1, batch: X },
    { t: "vote1", phase: 1, round: 1, value: 1, batchId: X.id },
  ]);
  const Z = batch("a:2:1", 0);
  const submitted = again.submit(Z, 12);
  assert.deepEqual(
    broadcasts(submitted),
    [{ t: "batch", batch: Z }],
    "Z is gossiped, not proposed in phase 1",
  );
  // c says state 0 (it saw no majority); a's recorded state 1 stands, so its vote-2 is "?".
  const v2 = again.receive("c", { t: "vote1", phase: 1, round: 1, value: 0 }, 13);
  assert.deepEqual(votes(v2), [{ t: "vote2", round: 1, value: QUESTION, batchId: X.id }]);
  assertPersistBeforeSend(v2);
});

Deno.test("restart after a '?' vote: coin 1 still names the candidate, from the record alone", () => {
  const phase = phaseWithCoin(1);
  const record: PhaseRecord<Cmd> = {
    phase,
    proposal: X,
    rounds: [{ vote1: { value: 1, batchId: X.id }, vote2: { value: QUESTION, batchId: X.id } }],
  };
  const again = activeEngine(THREE, { lastDecided: phase - 1, record });
  // Only a "?" arrives after the restart (no vote-1 message naming X), yet round 2's vote for 1 names X.
  const next = again.receive("b", { t: "vote2", phase, round: 1, value: QUESTION }, 5);
  assert.deepEqual(votes(next), [{ t: "vote1", round: 2, value: 1, batchId: X.id }]);
});

Deno.test("deciding 1 before holding the batch: no decide until content arrives; next-round votes help", () => {
  // In round 1 a member always sees the majority batch among its quorum of proposals; it lacks the content
  // after a restart that lost the proposals: a proposed nothing, said state 0, then "?" naming X.
  const record: PhaseRecord<Cmd> = {
    phase: 1,
    proposal: null,
    rounds: [{ vote1: { value: 0 }, vote2: { value: QUESTION, batchId: X.id } }],
  };
  const a = activeEngine(THREE, { lastDecided: 0, record });
  // {a:?, b:1}: a single 1 locks state 1 for round 2.
  const r2 = a.receive("b", { t: "vote2", phase: 1, round: 1, value: 1, batchId: X.id }, 3);
  assert.deepEqual(votes(r2), [{ t: "vote1", round: 2, value: 1, batchId: X.id }]);
  a.receive("b", { t: "vote1", phase: 1, round: 2, value: 1, batchId: X.id }, 4); // -> vote2(2) = 1
  const decided = a.receive("b", { t: "vote2", phase: 1, round: 2, value: 1, batchId: X.id }, 5);
  assert.deepEqual(decisions(decided), [], "never decide without the batch content");
  assert.deepEqual(votes(decided), [
    { t: "vote1", round: 3, value: 1, batchId: X.id },
    { t: "vote2", round: 3, value: 1, batchId: X.id },
  ]);
  assertPersistBeforeSend(decided);
  // While waiting, a stalled tick also asks peers for the decision.
  const waiting = a.tick(5 + DEFAULT_ENGINE_TIMINGS.retransmitMs);
  assert.deepEqual(sends(waiting).map((s) => [s.to, s.msg.t]), [["b", "syncReq"], ["c", "syncReq"]]);
  const content = a.receive("b", { t: "batch", batch: X }, 6);
  assert.deepEqual(decisions(content), [{ phase: 1, id: X.id }]);
  assert.deepEqual(broadcasts(content).filter((m) => m.t === "decision"), [{
    t: "decision",
    phase: 1,
    batch: X,
  }]);
});

Deno.test("catch-up by decisions: applied in order, and asked again while the peer reports more", () => {
  const a = activeEngine();
  const d = (phase: number, b: Batch<Cmd> | null) => ({ phase, batch: b });
  const res = a.receive("b", {
    t: "syncRes",
    nonce: 0,
    lastDecided: 5,
    decisions: [d(1, X), d(2, null), d(3, Y)],
  }, 1);
  assert.deepEqual(decisions(res), [{ phase: 1, id: X.id }, { phase: 2, id: null }, { phase: 3, id: Y.id }]);
  assert.deepEqual(sends(res).map((s) => [s.to, s.msg]), [["b", { t: "syncReq", fromPhase: 4, nonce: 0 }]]);
  // A response with a gap is not applied.
  const gap = a.receive("b", { t: "syncRes", nonce: 0, lastDecided: 5, decisions: [d(5, X)] }, 2);
  assert.deepEqual(decisions(gap), []);
  assert.deepEqual(a.lastDecided, 3);
});

Deno.test("catch-up by snapshot: install, drop others' pending batches, keep own, then the decisions after it", () => {
  const a = activeEngine();
  a.submit(X, 1); // a's own batch, in flight in phase 1
  const Z = batch("c:1:1", 3);
  a.receive("c", { t: "batch", batch: Z }, 1); // someone else's pending batch
  const snapshot = { phase: 100, data: new Uint8Array([1, 2, 3]) };
  const res = a.receive("b", {
    t: "syncRes",
    nonce: 0,
    lastDecided: 101,
    snapshot,
    decisions: [{ phase: 101, batch: Y }],
  }, 2);
  assert.deepEqual(res.slice(0, 3).map((e) => e.type), ["installSnapshot", "dropped", "decide"]);
  assert.deepEqual(res[0], { type: "installSnapshot", snapshot });
  assert.deepEqual(res[1], { type: "dropped", batchIds: [Z.id] }, "Z may be inside the snapshot");
  assert.deepEqual(decisions(res), [{ phase: 101, id: Y.id }]);
  assert.equal(a.lastDecided, 101);
  // X was submitted here: it stays pending and is proposed in the next phase (the state machine skips it
  // if the snapshot already holds it).
  assert.deepEqual(broadcasts(res).find((m) => m.t === "propose"), { t: "propose", phase: 102, batch: X });
  assert.equal(a.pendingCount, 1);
});

Deno.test("future-phase messages are buffered and used when their phase comes", () => {
  const a = activeEngine();
  a.submit(X, 1);
  // Phase 2 proposals from b and c arrive early (they already decided phase 1).
  a.receive("b", { t: "propose", phase: 2, batch: Y }, 2);
  a.receive("c", { t: "propose", phase: 2, batch: Y }, 2);
  // Phase 1 decides X; a then proposes Y (pending from the buffered proposals) and decides at once.
  const done = a.receive("b", { t: "decision", phase: 1, batch: X }, 3);
  assert.deepEqual(decisions(done), [{ phase: 1, id: X.id }, { phase: 2, id: Y.id }]);
});

Deno.test("a message too far ahead is not buffered; the member asks that peer for a sync", () => {
  const a = activeEngine();
  const far = 1 + DEFAULT_ENGINE_TIMINGS.maxPhasesAhead + 1;
  const effects = a.receive("c", { t: "vote1", phase: far, round: 1, value: 0 }, 1);
  assert.deepEqual(sends(effects), [{ to: "c", msg: { t: "syncReq", fromPhase: 1, nonce: 0 } }]);
});

Deno.test("late messages are answered with the decision, or from storage when older than memory", () => {
  const a = new RabiaEngine<Cmd>(
    { self: "a", members: THREE, ...DEFAULT_ENGINE_TIMINGS, recentDecisions: 2 },
    { lastDecided: 0 },
  );
  const nonce = syncNonce(a.start(0));
  a.receive("b", {
    t: "syncRes",
    nonce,
    lastDecided: 3,
    decisions: [{ phase: 1, batch: X }, { phase: 2, batch: null }, { phase: 3, batch: Y }],
  }, 1);
  const vote = { t: "vote1", phase: 3, round: 1, value: 1, batchId: Y.id } as const;
  assert.deepEqual(a.receive("c", vote, 2), [], "just decided: the sender is one message behind, not stuck");
  const later = 1 + DEFAULT_ENGINE_TIMINGS.retransmitMs;
  assert.deepEqual(sends(a.receive("c", vote, later)), [{
    to: "c",
    msg: { t: "decision", phase: 3, batch: Y },
  }]);
  const old = a.receive("c", { t: "propose", phase: 1, batch: null }, later);
  assert.deepEqual(old, [{ type: "serveSync", to: "c", request: { t: "syncReq", fromPhase: 1, nonce: 0 } }]);
  const again = a.receive("c", { t: "propose", phase: 1, batch: null }, later + 1);
  assert.deepEqual(again, [], "storage reads are rate-limited");
});

Deno.test("sync after restart: active only after a quorum answered; syncing peers answer from storage", () => {
  const a = engine(FIVE, { lastDecided: 7 });
  const started = a.start(0);
  assert.deepEqual(started[0], { type: "status", status: "syncing" });
  const req = broadcasts(started)[0];
  assert(req.t === "syncReq");
  assert.deepEqual(req.fromPhase, 8);
  assert.throws(() => a.submit(X, 1), (e: unknown) => e instanceof AetherError && e.code === "unavailable");
  // A syncing member answers a peer's request from durable storage.
  assert.deepEqual(a.receive("b", { t: "syncReq", fromPhase: 3, nonce: 9 }, 1), [
    { type: "serveSync", to: "b", request: { t: "syncReq", fromPhase: 3, nonce: 9 } },
  ]);
  a.receive("b", { t: "syncRes", nonce: req.nonce, lastDecided: 7, decisions: [] }, 2);
  assert.deepEqual(a.status, "syncing", "two of five (self included) is not a quorum");
  const third = a.receive("c", { t: "syncRes", nonce: req.nonce, lastDecided: 7, decisions: [] }, 3);
  assert.deepEqual(a.status, "active");
  assert(third.some((e) => e.type === "status" && e.status === "active"));
  // Retries while syncing would have gone only to members that had not answered.
});

Deno.test("sync retry goes to the members that have not answered", () => {
  const a = engine(FIVE);
  const nonce = syncNonce(a.start(0));
  a.receive("b", { t: "syncRes", nonce, lastDecided: 0, decisions: [] }, 1);
  assert.deepEqual(a.tick(DEFAULT_ENGINE_TIMINGS.syncRetryMs - 1), []);
  const retry = a.tick(DEFAULT_ENGINE_TIMINGS.syncRetryMs);
  assert.deepEqual(sends(retry).map((s) => s.to), ["c", "d", "e"]);
});

Deno.test("single-member cluster: a submitted batch is decided at once, with nothing to persist or send", () => {
  const solo = engine(["a"]);
  const started = solo.start(0);
  assert.deepEqual(solo.status, "active");
  assert.deepEqual(started.map((e) => e.type), ["status", "status"]);
  assert.deepEqual(solo.submit(X, 1), [{ type: "decide", phase: 1, batch: X }]);
  const next = batch("a:1:2", 2);
  assert.deepEqual(solo.submit(next, 2), [{ type: "decide", phase: 2, batch: next }]);
});

Deno.test("invalid member counts and configurations are refused", () => {
  for (const members of [[], ["a", "b"], ["a", "b", "c", "d"], ["a", "b", "c", "d", "e", "f"]]) {
    assert.throws(
      () => engine(members.length ? members : ["x"].slice(1)),
      (e: unknown) => e instanceof AetherError && e.code === "bad_request" && /1, 3 or 5/.test(e.message),
    );
  }
  assert.throws(() => engine(["a", "a", "b"]), /duplicates/);
  assert.throws(() => engine(["x", "b", "c"]), /self "a" is not one of the members/);
  assert.throws(() => engine(THREE, { lastDecided: 2, record: { phase: 9, rounds: [] } }), /corrupt/);
});

Deno.test("malformed messages are refused with a clear error and change nothing", () => {
  const a = activeEngine();
  const bad: unknown[] = [
    { t: "vote1", phase: 1, round: 1, value: 1 }, // value 1 without batchId
    { t: "vote2", phase: 0, round: 1, value: 0 },
    { t: "propose", phase: 1, batch: { id: "", submitter: "b", createdAt: 1, commands: [] } },
    { t: "nope" },
  ];
  for (const msg of bad) {
    assert.throws(() => a.receive("b", msg as ConsensusMsg<Cmd>, 1), AetherError);
  }
  assert.throws(() => a.receive("zz", { t: "syncReq", fromPhase: 1, nonce: 0 }, 1), /not a peer/);
  assert.deepEqual(a.currentPhase, 1);
  assert.deepEqual(a.busy, false, "no phase started");
});

Deno.test("equivocation by a peer is caught as a broken invariant, and the engine halts for good", () => {
  const a = activeEngine();
  a.receive("b", { t: "vote1", phase: 1, round: 1, value: 0 }, 1);
  assert.throws(
    () => a.receive("b", { t: "vote1", phase: 1, round: 1, value: 1, batchId: X.id }, 2),
    /assertion/,
  );
  assert.throws(
    () => a.tick(3),
    /halted after a broken invariant: assertion failed: phase 1 round 1: b sent/,
  );
  assert.throws(() => a.submit(X, 4), /halted/);
});

Deno.test("an idle cluster is quiet: no pending batch, no messages, no ticks' traffic", () => {
  const a = activeEngine();
  for (let t = 0; t < 5000; t += 50) assert.deepEqual(a.tick(t), []);
});

Deno.test("a stalled phase retransmits everything said in it, and peerConnected resends at once", () => {
  const a = activeEngine();
  a.submit(X, 1);
  a.receive("b", { t: "propose", phase: 1, batch: X }, 2);
  assert.deepEqual(a.tick(2 + DEFAULT_ENGINE_TIMINGS.retransmitMs - 1), []);
  const retransmitted = a.tick(2 + DEFAULT_ENGINE_TIMINGS.retransmitMs);
  assert.deepEqual(broadcasts(retransmitted).map((m) => m.t), ["propose", "vote1"]);
  assert(!retransmitted.some((e) => e.type === "persist"), "nothing new to persist");
  const connected = a.peerConnected("c", 500);
  assert.deepEqual(sends(connected).map((s) => [s.to, s.msg.t]), [["c", "propose"], ["c", "vote1"], [
    "c",
    "syncReq",
  ]]);
});

Deno.test("a proposal from a peer is pending before this member proposes, so members converge", () => {
  const a = activeEngine();
  const effects = a.receive("b", { t: "propose", phase: 1, batch: Y }, 1);
  assert.deepEqual(broadcasts(effects)[0], { t: "propose", phase: 1, batch: Y });
});

Deno.test("a proposal of an already decided batch is answered with its Decision; the proposer forgets it", () => {
  // b decided X in phase 1 ...
  const b = activeEngineAs("b");
  b.receive("a", { t: "propose", phase: 1, batch: X }, 1);
  b.receive("c", { t: "propose", phase: 1, batch: X }, 1);
  assert.equal(b.lastDecided, 1);
  // ... and a, which caught up by a snapshot and still holds X, proposes it again in phase 2.
  const answer = b.receive("a", { t: "propose", phase: 2, batch: X }, 2);
  assert.deepEqual(sends(answer), [{ to: "a", msg: { t: "decision", phase: 1, batch: X } }]);
  assert.equal(b.pendingCount, 0, "b does not take X back");
  assert.deepEqual(broadcasts(answer).find((m) => m.t === "propose"), {
    t: "propose",
    phase: 2,
    batch: null,
  });

  // The proposer's side: X is its own batch, kept across a snapshot install (phases 1..5).
  const a = activeEngine();
  a.submit(X, 1);
  a.receive("b", {
    t: "syncRes",
    nonce: 0,
    lastDecided: 5,
    snapshot: { phase: 5, data: new Uint8Array() },
    decisions: [],
  }, 2);
  assert.equal(a.pendingCount, 1);
  const told = a.receive("b", { t: "decision", phase: 1, batch: X }, 3);
  assert.deepEqual(told.filter((e) => e.type === "dropped"), [{ type: "dropped", batchIds: [X.id] }]);
  assert.equal(a.pendingCount, 0);
  assert.deepEqual(a.receive("c", { t: "batch", batch: X }, 4), [], "and it does not come back");
});

Deno.test("late gossip of a decided batch does not make it pending again", () => {
  const a = activeEngine();
  a.submit(X, 1);
  a.receive("b", { t: "propose", phase: 1, batch: X }, 2);
  a.receive("c", { t: "propose", phase: 1, batch: X }, 3);
  assert.deepEqual(a.lastDecided, 1);
  assert.deepEqual(a.receive("b", { t: "batch", batch: X }, 4), []);
  assert.deepEqual(a.pendingCount, 0);
});

Deno.test("pending limit: gossip beyond it keeps the oldest batches; those kept are still proposed and decided", () => {
  const a = activeEngine(THREE, { lastDecided: 0 }, { maxPendingBatches: 3 });
  const gossip = [10, 20, 30, 40, 50].map((at, i) => batch(`b:1:${i + 1}`, at));
  for (const g of gossip) a.receive("b", { t: "batch", batch: g }, 1);
  assert.equal(a.pendingCount, 3);
  assert.equal(a.stats.pendingGossipDropped, 2, "the two newest were not kept");
  // An older batch takes the place of the newest one kept.
  const older = batch("c:1:1", 5);
  a.receive("c", { t: "batch", batch: older }, 2);
  assert.equal(a.pendingCount, 3);
  assert.equal(a.stats.pendingGossipDropped, 3);
  assert.deepEqual(
    { pending: a.stats.pendingBatches, max: a.stats.maxPendingBatches, refused: a.stats.submissionsRefused },
    { pending: 3, max: 3, refused: 0 },
  );
  // Phase 1 started with b:1:1 (the oldest when it began); each decision makes the next oldest the proposal.
  const first = a.receive("b", { t: "decision", phase: 1, batch: gossip[0] }, 3);
  assert.deepEqual(decisions(first), [{ phase: 1, id: gossip[0].id }]);
  assert.deepEqual(broadcasts(first).find((m) => m.t === "propose"), {
    t: "propose",
    phase: 2,
    batch: older,
  });
  const second = a.receive("b", { t: "decision", phase: 2, batch: older }, 4);
  assert.deepEqual(broadcasts(second).find((m) => m.t === "propose"), {
    t: "propose",
    phase: 3,
    batch: gossip[1],
  });
  a.receive("b", { t: "decision", phase: 3, batch: gossip[1] }, 5);
  assert.equal(a.pendingCount, 0);
  // With room again, the batch that was not kept is taken when it comes back (its submitter proposes it).
  a.receive("b", { t: "propose", phase: 4, batch: gossip[4] }, 6);
  assert.equal(a.pendingCount, 1);
});

Deno.test("pending limit: a submission evicts the newest gossip; full of own batches it is refused with overloaded", () => {
  const a = activeEngine(THREE, { lastDecided: 0 }, { maxPendingBatches: 2 });
  a.receive("b", { t: "batch", batch: batch("b:1:1", 1) }, 1);
  a.receive("c", { t: "batch", batch: batch("c:1:1", 2) }, 1);
  const own1 = batch("a:1:1", 3);
  a.submit(own1, 2);
  assert.equal(a.pendingCount, 2);
  assert.equal(a.stats.pendingGossipDropped, 1, "c:1:1 made room for a's own batch");
  a.receive("b", { t: "decision", phase: 1, batch: batch("b:1:1", 1) }, 3);
  const own2 = batch("a:1:2", 4);
  a.submit(own2, 4);
  const own3 = batch("a:1:3", 5);
  assert.throws(
    () => a.submit(own3, 5),
    (e: unknown) =>
      e instanceof AetherError && e.code === "overloaded" && e.status === 503 &&
      e.extra.retryAfterSeconds === 1,
  );
  assert.equal(a.stats.submissionsRefused, 1);
  // Gossip finds no room either, and the engine goes on: its admitted batches are decided, then it takes more.
  a.receive("c", { t: "batch", batch: batch("c:1:2", 0) }, 6);
  assert.equal(a.stats.pendingGossipDropped, 2);
  assert.deepEqual(decisions(a.receive("b", { t: "decision", phase: 2, batch: own1 }, 7)), [{
    phase: 2,
    id: own1.id,
  }]);
  assert.equal(a.pendingCount, 1);
  a.submit(own3, 8);
  assert.equal(a.pendingCount, 2);
  assert.throws(() => engine(THREE, { lastDecided: 0 }, "a", { maxPendingBatches: 0 }), /maxPendingBatches/);
});
