import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { electionProposal, type ElectionView, STARTUP_GRACE_MS } from "./leader.ts";

function view(overrides: Partial<ElectionView> & { connected?: string[]; seen?: string[] }): ElectionView {
  const connected = new Set(overrides.connected ?? ["n1", "n2", "n3"]);
  const seen = new Set(overrides.seen ?? []);
  return {
    self: "n2",
    members: ["n1", "n2", "n3"],
    canPropose: true,
    isConnected: (id) => id === "n2" || connected.has(id),
    lastConnectedAt: (id) => (seen.has(id) ? 500 : undefined),
    record: null,
    recordRevision: 0,
    nowMs: 10_000,
    startedAtMs: 9_000,
    ...overrides,
  };
}

Deno.test("no record: propose the smallest connected member as view 1, create-only", () => {
  const p = electionProposal(view({ connected: ["n3"] }));
  assertEquals(p, { record: { nodeId: "n2", view: 1, electedAt: 10_000 }, ifRevision: 0 });
});

Deno.test("a live leader is never challenged", () => {
  const record = { nodeId: "n1", view: 4, electedAt: 1 };
  assertEquals(electionProposal(view({ record, recordRevision: 7 })), null);
});

Deno.test("a leader seen and lost is replaced by the next smallest member, view + 1, compare-and-set", () => {
  const record = { nodeId: "n1", view: 4, electedAt: 1 };
  const p = electionProposal(view({ record, recordRevision: 7, connected: ["n3"], seen: ["n1"] }));
  assertEquals(p, { record: { nodeId: "n2", view: 5, electedAt: 10_000 }, ifRevision: 7 });
});

Deno.test("a leader not seen since start-up gets a grace period", () => {
  const record = { nodeId: "n1", view: 1, electedAt: 1 };
  const early = view({
    record,
    recordRevision: 3,
    connected: ["n3"],
    startedAtMs: 10_000 - STARTUP_GRACE_MS + 1,
  });
  assertEquals(electionProposal(early), null);
  const late = view({ record, recordRevision: 3, connected: ["n3"], startedAtMs: 10_000 - STARTUP_GRACE_MS });
  assertEquals(electionProposal(late)?.record.nodeId, "n2");
});

Deno.test("nothing is proposed without quorum or before catching up", () => {
  assertEquals(electionProposal(view({ canPropose: false })), null);
});

Deno.test("this member as leader never deposes itself", () => {
  const record = { nodeId: "n2", view: 2, electedAt: 1 };
  assertEquals(electionProposal(view({ record, recordRevision: 5, connected: [] })), null);
});
