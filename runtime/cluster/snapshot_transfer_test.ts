/** The chunked snapshot transfer on its own: reassembly, and every way a transfer is refused or abandoned. */

import { deepEqual, equal, ok } from "node:assert/strict";
import type { DecidedPhase } from "../consensus/mod.ts";
import {
  type ReceiverAction,
  sha256Hex,
  SNAPSHOT_CHUNK_ATTEMPTS,
  SNAPSHOT_CHUNK_TIMEOUT_MS,
  type SnapshotChunkMsg,
  type SnapshotGetMsg,
  SnapshotReceiver,
  SnapshotSender,
  splitSyncResponse,
} from "./_snapshot_transfer.ts";

const CHUNK = 100;

function snapshotOf(bytes: number, seed = 1): { phase: number; data: Uint8Array } {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + seed) & 0xff;
  return { phase: 40 + seed, data };
}

const answer = { nonce: 7, lastDecided: 45, decisions: [] as DecidedPhase<string>[] };

/** Runs a transfer to its end between a sender and a receiver; returns the receiver's last action. */
function pump(sender: SnapshotSender, receiver: SnapshotReceiver<string>, first: ReceiverAction<string>) {
  let action = first;
  let requests = 0;
  while (action.type === "send") {
    requests++;
    action = receiver.onChunk("n1", sender.chunk(action.msg, 0), 0);
  }
  return { action, requests };
}

Deno.test("a snapshot larger than a chunk is offered, fetched chunk by chunk and handed over whole", () => {
  const sender = new SnapshotSender(CHUNK);
  const receiver = new SnapshotReceiver<string>(10_000);
  const snapshot = snapshotOf(1_050);
  ok(sender.needsChunks(snapshot));
  ok(!sender.needsChunks(snapshotOf(CHUNK)));
  const offer = sender.offer(snapshot, answer, 0);
  deepEqual([offer.bytes, offer.phase, offer.sha256], [1_050, snapshot.phase, sha256Hex(snapshot.data)]);
  const { action, requests } = pump(sender, receiver, receiver.onOffer("n1", offer, 3, 0));
  equal(requests, 11);
  if (action.type !== "complete") throw new Error(`expected complete, got ${action.type}`);
  deepEqual(action.msg, {
    t: "syncRes",
    ...answer,
    snapshot: { phase: snapshot.phase, data: snapshot.data },
  });
  equal(receiver.inProgress, undefined);
});

Deno.test("a repeated offer of the same snapshot keeps the transfer going; a newer one restarts it", () => {
  const sender = new SnapshotSender(CHUNK);
  const receiver = new SnapshotReceiver<string>(10_000);
  const first = receiver.onOffer("n1", sender.offer(snapshotOf(500), answer, 0), 3, 0);
  if (first.type !== "send") throw new Error(first.type);
  receiver.onChunk("n1", sender.chunk(first.msg, 0), 0);
  equal(receiver.inProgress?.received, CHUNK);
  equal(receiver.onOffer("n1", sender.offer(snapshotOf(500), answer, 0), 3, 0).type, "none");
  equal(receiver.inProgress?.received, CHUNK);
  // A chunk of another snapshot is ignored.
  const stray: SnapshotChunkMsg = { t: "snapChunk", phase: 99, offset: CHUNK, data: new Uint8Array(CHUNK) };
  equal(receiver.onChunk("n1", stray, 0).type, "none");
  equal(receiver.inProgress?.received, CHUNK);
  // A newer snapshot: the transfer starts over from its first byte.
  const newer = new SnapshotSender(CHUNK).offer(snapshotOf(300, 5), answer, 0);
  const restart = receiver.onOffer("n2", newer, 3, 0);
  deepEqual(restart, { type: "send", to: "n2", msg: { t: "snapGet", phase: newer.phase, offset: 0 } });
});

Deno.test("a gap, a snapshot the sender dropped or a digest mismatch abandons the transfer", () => {
  const sender = new SnapshotSender(CHUNK);
  const receiver = new SnapshotReceiver<string>(10_000);
  const offer = sender.offer(snapshotOf(250), answer, 0);
  // The sender holds a different snapshot now: "gone".
  receiver.onOffer("n1", offer, 3, 0);
  const gone = receiver.onChunk("n1", { t: "snapChunk", phase: offer.phase, offset: 0, gone: true }, 0);
  equal(gone.type, "abandoned");
  equal(receiver.inProgress, undefined);
  // A chunk of the wrong size.
  receiver.onOffer("n1", offer, 3, 0);
  const short = { t: "snapChunk" as const, phase: offer.phase, offset: 0, data: new Uint8Array(10) };
  equal(receiver.onChunk("n1", short, 0).type, "abandoned");
  // Bytes that do not match the digest.
  const forged = { ...offer, sha256: "0".repeat(64) };
  const { action } = pump(sender, receiver, receiver.onOffer("n1", forged, 3, 0));
  equal(action.type, "abandoned");
  ok(action.type === "abandoned" && /digest/.test(action.reason));
  // A request for a snapshot the sender no longer holds.
  const chunk = sender.chunk({ t: "snapGet", phase: 1, offset: 0 } satisfies SnapshotGetMsg, 0);
  equal(chunk.gone, true);
});

Deno.test("a lost chunk is asked for again, and the transfer is abandoned after a few attempts", () => {
  const sender = new SnapshotSender(CHUNK);
  const receiver = new SnapshotReceiver<string>(10_000);
  receiver.onOffer("n1", sender.offer(snapshotOf(250), answer, 0), 3, 0);
  const connected = () => true;
  equal(receiver.tick(SNAPSHOT_CHUNK_TIMEOUT_MS - 1, 3, connected).type, "none");
  let now = 0;
  for (let attempt = 2; attempt <= SNAPSHOT_CHUNK_ATTEMPTS; attempt++) {
    now += SNAPSHOT_CHUNK_TIMEOUT_MS;
    equal(receiver.tick(now, 3, connected).type, "send");
  }
  now += SNAPSHOT_CHUNK_TIMEOUT_MS;
  equal(receiver.tick(now, 3, connected).type, "abandoned");
  // A lost connection abandons at once.
  receiver.onOffer("n1", sender.offer(snapshotOf(250), answer, 0), 3, now);
  equal(receiver.tick(now, 3, () => false).type, "abandoned");
});

Deno.test("a snapshot over maxSnapshotBytes is refused with a clear error, once per snapshot", () => {
  const sender = new SnapshotSender(CHUNK);
  const receiver = new SnapshotReceiver<string>(1_000);
  const offer = sender.offer(snapshotOf(1_500), answer, 0);
  const refused = receiver.onOffer("n1", offer, 3, 0);
  ok(refused.type === "refused" && /1500 bytes, more than the 1000 bytes/.test(refused.reason), refused.type);
  equal(receiver.onOffer("n1", offer, 3, 0).type, "none");
  equal(receiver.inProgress, undefined);
});

Deno.test("an offer of a snapshot already passed hands on the answer without fetching it", () => {
  const receiver = new SnapshotReceiver<string>(1_000);
  const offer = new SnapshotSender(CHUNK).offer(snapshotOf(500), answer, 0);
  deepEqual(receiver.onOffer("n1", offer, offer.phase, 0), {
    type: "complete",
    from: "n1",
    msg: { t: "syncRes", ...answer },
  });
  equal(receiver.onOffer("n1", { ...offer, sha256: "nope" }, 0, 0).type, "abandoned");
});

Deno.test("a sync answer with more decision bytes than the budget is split in phase order", () => {
  const batch = (phase: number, bytes: number) => ({
    phase,
    batch: { id: `b${phase}`, submitter: "n1", createdAt: 0, commands: ["x".repeat(bytes)] },
  });
  const decisions = [batch(1, 600), batch(2, 600), { phase: 3, batch: null }, batch(4, 2_000)];
  const parts = splitSyncResponse(
    { t: "syncRes", nonce: 1, lastDecided: 4, decisions },
    1_000,
    (c) => c.length,
  );
  deepEqual(parts.map((p) => p.decisions.map((d) => d.phase)), [[1], [2, 3], [4]]);
  ok(parts.every((p) => p.nonce === 1 && p.lastDecided === 4));
  const small = { t: "syncRes" as const, nonce: 1, lastDecided: 2, decisions: decisions.slice(0, 1) };
  deepEqual(splitSyncResponse(small, 1_000, (c) => c.length), [small]);
});
