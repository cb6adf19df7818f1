/**
 * Support for the end-to-end tests of the ecommerce example on real node processes: a valid order, polling of
 * what the nodes report while one of them dies or rejoins (with the time each condition was first seen), and
 * the figures and diagnostics the tests print.
 */

import type { TestCluster } from "../_support/cluster.ts";
import { type SliceStatus, sliceStatuses } from "../_support/deployment.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import type { LoadReport, RequestOutcome } from "../../runtime/loadgen/mod.ts";

export const SLICES = ["fulfillment", "inventory", "payment", "place-order", "pricing"].map((s) =>
  `org.example:${s}`
);
/** blueprint.toml asks 3 instances of each of the 5 slices. */
export const INSTANCES_PER_SLICE = 3;
export const TOTAL_INSTANCES = SLICES.length * INSTANCES_PER_SLICE;

/** The sample order of examples/ecommerce (the one Forge's banner and the README use). */
export const ORDER = JSON.parse(
  await Deno.readTextFile(new URL("../../examples/ecommerce/order.json", import.meta.url)),
) as Record<string, unknown>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/**
 * Between two polls of the survivors' health and slices: fine enough for figures of a few hundred ms, coarse
 * enough that the polling itself (three management requests per round) does not load the nodes under test.
 */
const POLL_MS = 40;

interface Health {
  status: string;
  leader: string | null;
  members: { id: string; connected: boolean }[];
}

async function health(node: NodeProcess): Promise<{ status: number; body: Health } | null> {
  try {
    return await node.json<Health>("/api/v1/health");
  } catch {
    return null;
  }
}

/** ACTIVE instances of the target version on connected nodes other than `excluded`, per slice. */
function activeOutside(slices: SliceStatus[], excluded: string | null): Map<string, number> {
  return new Map(slices.map((s) => [
    s.slice,
    s.instances.filter((i) =>
      i.node !== excluded && i.connected && i.state === "ACTIVE" && i.version === s.version
    ).length,
  ]));
}

/** Every slice of the example at its desired count, all ACTIVE, on live nodes other than `excluded`. */
export function fullCount(slices: SliceStatus[], excluded: string | null): boolean {
  const active = activeOutside(slices, excluded);
  return SLICES.every((name) => {
    const s = slices.find((x) => x.slice === name);
    return s !== undefined && s.desired === INSTANCES_PER_SLICE && active.get(name) === INSTANCES_PER_SLICE;
  });
}

/** The shop's own slices (the infrastructure services it requires run as slices of their own). */
export function shopSlices(slices: SliceStatus[]): SliceStatus[] {
  return slices.filter((s) => SLICES.includes(s.slice));
}

/** ACTIVE instances per node (for the spread), from one node's view. */
export function instancesByNode(slices: SliceStatus[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const i of shopSlices(slices).flatMap((s) => s.instances)) {
    if (i.state === "ACTIVE" && i.connected) out[i.node] = (out[i.node] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(out).sort());
}

/**
 * The even spread on `nodes`: every slice settled at its count with each node running one instance of it
 * (3 instances on 3 nodes), so every node serves every slice locally.
 */
export function evenSpread(slices: SliceStatus[], nodes: string[]): boolean {
  return SLICES.every((name) => {
    const s = slices.find((x) => x.slice === name);
    if (!s || !s.settled || s.instances.length !== INSTANCES_PER_SLICE) return false;
    return nodes.every((node) =>
      s.instances.filter((i) => i.node === node && i.state === "ACTIVE" && i.connected).length ===
        INSTANCES_PER_SLICE / nodes.length
    );
  });
}

export function describeSlices(slices: SliceStatus[]): string {
  return slices.map((s) =>
    `${s.slice} ${s.active}/${s.desired}${s.settled ? "" : " (unsettled)"}: ` +
    s.instances.map((i) => `${i.node}/${i.n} ${i.state}${i.connected ? "" : " (unreachable)"}`).join(", ")
  ).join("\n");
}

/** When each condition was first seen after a kill, in epoch ms (undefined: not seen before the timeout). */
export interface KillTimeline {
  killedAt: number;
  /** Every survivor reports the victim disconnected. */
  detectedAt?: number;
  /** Every survivor answers healthy and names the same leader, one of the survivors. */
  leaderAt?: number;
  leader?: string;
  /** Every leader any survivor named while it was watched (the victim's too, before they saw it die). */
  leadersNamed: Set<string>;
  /** Every slice back at its desired ACTIVE count on the survivors. */
  fullCountAt?: number;
  lastSlices: SliceStatus[];
}

/**
 * Kills `victim` with SIGKILL and polls the survivors (health of each, slices of the first) every few
 * milliseconds until they report it gone, agree on a leader among themselves, and every slice is back at its
 * desired ACTIVE count on them, or until `timeoutMs`.
 */
export async function killAndWatch(
  victim: NodeProcess,
  survivors: NodeProcess[],
  timeoutMs: number,
): Promise<KillTimeline> {
  const killedAt = Date.now();
  await victim.kill();
  const t: KillTimeline = { killedAt, leadersNamed: new Set(), lastSlices: [] };
  const survivorIds = new Set(survivors.map((n) => n.id));
  while (Date.now() - killedAt < timeoutMs) {
    const [healths, slices] = await Promise.all([
      Promise.all(survivors.map(health)),
      sliceStatuses(survivors[0]).catch(() => null),
    ]);
    const now = Date.now();
    if (
      t.detectedAt === undefined &&
      healths.every((h) => h?.body.members.some((m) => m.id === victim.id && !m.connected))
    ) t.detectedAt = now;
    for (const h of healths) if (h?.body.leader) t.leadersNamed.add(h.body.leader);
    const leader = healths[0]?.body.leader;
    if (
      t.leaderAt === undefined && leader && survivorIds.has(leader) &&
      healths.every((h) => h?.status === 200 && h.body.leader === leader)
    ) {
      t.leaderAt = now;
      t.leader = leader;
    }
    if (slices) {
      t.lastSlices = slices;
      if (t.fullCountAt === undefined && fullCount(slices, victim.id)) t.fullCountAt = now;
    }
    if (t.detectedAt !== undefined && t.leaderAt !== undefined && t.fullCountAt !== undefined) break;
    await sleep(POLL_MS);
  }
  return t;
}

/** When each condition was first seen after a restart, in epoch ms. */
export interface RejoinTimeline {
  startedAt: number;
  /** The process printed its ready line. */
  readyAt: number;
  /** Every running node answers healthy, names one leader and sees every member connected. */
  connectedAt?: number;
  /** An instance started after the restart is ACTIVE on the restarted node. */
  firstInstanceAt?: number;
  /** The even spread is back: one instance of every slice on every node. */
  spreadAt?: number;
  lastSlices: SliceStatus[];
}

/**
 * Starts `node` again and polls until every running node is healthy and connected to every member, and a node
 * that ran throughout (`observer`) shows the even spread back. The restarted node's own view is not used for
 * the instance figures: it starts from its data directory, whose records still show the instances it ran
 * before it was killed, until it has caught up.
 */
export async function restartAndWatch(
  cluster: TestCluster,
  node: NodeProcess,
  observer: NodeProcess,
  timeoutMs: number,
): Promise<RejoinTimeline> {
  const startedAt = Date.now();
  await node.start();
  const t: RejoinTimeline = { startedAt, readyAt: Date.now(), lastSlices: [] };
  const ids = cluster.nodes.map((n) => n.id);
  while (Date.now() - startedAt < timeoutMs) {
    const [healths, slices] = await Promise.all([
      Promise.all(cluster.running().map(health)),
      sliceStatuses(observer).catch(() => null),
    ]);
    const now = Date.now();
    const leader = healths[0]?.body.leader;
    if (
      t.connectedAt === undefined && leader &&
      healths.every((h) =>
        h?.status === 200 && h.body.leader === leader && h.body.members.every((m) => m.connected)
      )
    ) t.connectedAt = now;
    if (slices) {
      t.lastSlices = slices;
      const started = slices.flatMap((s) => s.instances).some((i) =>
        i.node === node.id && i.state === "ACTIVE" && i.connected && i.updatedAt >= startedAt
      );
      if (t.firstInstanceAt === undefined && started) t.firstInstanceAt = now;
      if (t.spreadAt === undefined && t.connectedAt !== undefined && evenSpread(slices, ids)) {
        t.spreadAt = now;
      }
    }
    if (t.spreadAt !== undefined) break;
    await sleep(POLL_MS);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------
// Figures and diagnostics

export const pct = (rate: number) => `${(rate * 100).toFixed(2)}%`;
export const msText = (ms: number | undefined) => ms === undefined ? "not seen" : `${Math.round(ms)} ms`;
export const since = (from: number, to: number | undefined) => to === undefined ? undefined : to - from;

/** Failed requests by the phase they were due in, relative to the given moments (epoch ms, ascending). */
export function failuresByPhase(
  report: LoadReport,
  phases: { name: string; from: number | undefined }[],
): string {
  const known = phases.filter((p) => p.from !== undefined) as { name: string; from: number }[];
  const counts = new Map<string, { failed: number; total: number }>(
    [["before", { failed: 0, total: 0 }], ...known.map((p) => [p.name, { failed: 0, total: 0 }] as const)],
  );
  for (const o of report.outcomes ?? []) {
    const phase = known.filter((p) => o.scheduledAt >= p.from).at(-1)?.name ?? "before";
    const c = counts.get(phase)!;
    c.total++;
    if (o.kind !== "ok") c.failed++;
  }
  return [...counts].map(([name, c]) => `${name} ${c.failed}/${c.total}`).join(", ");
}

/**
 * Splits a kill window's failed requests: those lost with the killed node (no HTTP answer from its own
 * application port: the connection was cut while the request was in flight there, so the client cannot know
 * whether the order was placed, and nothing may send it again) and every other failure (an error status, a
 * timeout, or a failure at a surviving node), which the runtime is there to prevent.
 */
export function splitFailures(report: LoadReport, victimUrl: string): {
  lostWithNode: RequestOutcome[];
  other: RequestOutcome[];
} {
  const failed = (report.outcomes ?? []).filter((o) => o.kind !== "ok");
  const lost = (o: RequestOutcome) => o.kind === "error" && o.url === victimUrl;
  return { lostWithNode: failed.filter(lost), other: failed.filter((o) => !lost(o)) };
}

/** `"6 Connection reset by peer, 2 connection closed before the answer"`. */
export function countReasons(outcomes: RequestOutcome[]): string {
  const counts = new Map<string, number>();
  for (const o of outcomes) counts.set(shortError(o.error), (counts.get(shortError(o.error)) ?? 0) + 1);
  return [...counts].map(([reason, n]) => `${n} ${reason}`).join(", ");
}

/** What went wrong, grouped: kind, status, URL and the error text (a problem document's title and detail). */
export function failureSummary(report: LoadReport, origin: number, originName = "the kill"): string {
  const failed = (report.outcomes ?? []).filter((o) => o.kind !== "ok");
  if (failed.length === 0) return "no failed requests";
  const groups = new Map<string, RequestOutcome[]>();
  for (const o of failed) {
    const key = `${o.kind} ${o.status ?? ""} at ${o.url} after ${o.attempts} attempt(s): ${
      shortError(o.error)
    }`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  return [...groups].map(([key, list]) =>
    `  ${list.length} x ${key}\n    due at ${
      list.slice(0, 12).map((o) => `${Math.round(o.scheduledAt - origin)}`).join(", ")
    }${list.length > 12 ? ", ..." : ""} ms after ${originName}; latency ${
      list.slice(0, 6).map((o) => o.latencyMs === null ? "-" : Math.round(o.latencyMs)).join(", ")
    } ms`
  ).join("\n");
}

/** A problem document's title and detail, or the error text as it is. */
function shortError(error: string | undefined): string {
  if (!error) return "";
  try {
    const problem = JSON.parse(error);
    if (typeof problem?.title === "string") return `${problem.title}: ${problem.detail}`.slice(0, 300);
  } catch {
    // Not JSON (a connection error, or a body cut at its first characters).
  }
  return error.replace(/\s+/g, " ").slice(0, 300);
}

export function perSecondTable(report: LoadReport): string {
  return report.perSecond.map((s) =>
    `  ${String(s.second).padStart(3)}s ${String(s.succeeded).padStart(4)}/${
      String(s.requests).padEnd(4)
    } ok  p50 ${s.p50Ms.toFixed(1)} ms  p99 ${s.p99Ms.toFixed(1)} ms${
      s.dropped ? `  dropped ${s.dropped}` : ""
    }`
  ).join("\n");
}

/**
 * The last `lines` lines of every node's own log: what the runtime did (peers down, deployment writes, leader
 * changes, warnings). The slices' info lines (several per order) are left out; their warnings stay.
 */
export function logTails(cluster: TestCluster, lines = 50): string {
  const isOrderChatter = (line: string) => / (INFO|DEBUG) .*component=slice /.test(line);
  return cluster.nodes.map((n) => {
    const own = n.log.trimEnd().split("\n").filter((line) => !isOrderChatter(line));
    return `----- ${n.id} (last ${lines} lines without the slices' info lines) -----\n` +
      own.slice(-lines).join("\n");
  }).join("\n");
}
