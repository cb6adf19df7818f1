import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { electionProposal, type ElectionView, lostMembers, STARTUP_GRACE_MS } from "./leader.ts";

type ViewOverrides = Partial<ElectionView> & {
  connected?: string[];
  seen?: string[];
  /** What each peer reported lost; by default every peer agrees with this member's own view. */
  reports?: Record<string, string[]>;
};

function view(overrides: ViewOverrides): ElectionView {
  const connected = new Set(overrides.connected ?? ["n1", "n2", "n3"]);
  const seen = new Set(overrides.seen ?? []);
  const reports = overrides.reports;
  const agree = ["n1", "n2", "n3"].filter((m) => m !== "n2" && !connected.has(m));
  return {
    peerReport: (id) => connected.has(id) ? (reports ? reports[id] : agree) : undefined,
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

Deno.test("a leader this member lost but another still hears stays (one link cut)", () => {
  const record = { nodeId: "n1", view: 4, electedAt: 1 };
  // n2 lost n1; n3 still hears n1 and says it has lost nobody.
  const cut = view({ record, recordRevision: 7, connected: ["n3"], seen: ["n1"], reports: { n3: [] } });
  assertEquals(electionProposal(cut), null);
  // Once n3 loses n1 too, a quorum (n2, n3) has lost it.
  const gone = view({ record, recordRevision: 7, connected: ["n3"], seen: ["n1"], reports: { n3: ["n1"] } });
  assertEquals(electionProposal(gone)?.record, { nodeId: "n2", view: 5, electedAt: 10_000 });
});

Deno.test("a peer's report counts only while that peer is connected (a silent peer speaks for nobody)", () => {
  const record = { nodeId: "n1", view: 4, electedAt: 1 };
  const alone = view({ record, recordRevision: 7, connected: [], seen: ["n1"], reports: { n3: ["n1"] } });
  assertEquals(electionProposal(alone), null);
});

Deno.test("a member reports whom it has lost: seen and lost, or never seen past the start-up grace", () => {
  assertEquals(lostMembers(view({ connected: ["n3"], seen: ["n1"] })), ["n1"]);
  assertEquals(lostMembers(view({ connected: ["n3"], startedAtMs: 10_000 - STARTUP_GRACE_MS + 1 })), []);
  assertEquals(lostMembers(view({ connected: [], startedAtMs: 0 })), ["n1", "n3"]);
  assertEquals(lostMembers(view({})), []);
});

Deno.test("five members: a leader is replaced only when three of the four others have lost it", () => {
  const members = ["n1", "n2", "n3", "n4", "n5"];
  const record = { nodeId: "n1", view: 2, electedAt: 1 };
  const base = {
    members,
    record,
    recordRevision: 3,
    isConnected: (id: string) => id !== "n1",
    lastConnectedAt: () => 500,
  };
  const two = view({ ...base, peerReport: (id) => (id === "n3" ? ["n1"] : []) });
  assertEquals(electionProposal(two), null);
  const three = view({ ...base, peerReport: (id) => (id === "n3" || id === "n4" ? ["n1"] : []) });
  assertEquals(electionProposal(three)?.record.nodeId, "n2");
});
