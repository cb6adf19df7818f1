/**
 * The cluster-wide rate limiter: named token buckets (`ratelimits/{name}` in the consensus KV: a rate in
 * permits per second and a burst) enforced without a consensus round per permit.
 *
 * Every node holds a share of each limit (a fraction; the shares of the live nodes sum to 1) and answers
 * `tryAcquire` from a local token bucket that refills at `rate × share` and holds at most `burst × share`.
 * Every REPORT_EVERY_MS each node sends the leader its demand (permits asked for per second, granted or not)
 * over the mesh channel RATELIMIT_CHANNEL; the leader splits each rate among the nodes it reaches by max-min
 * fairness over the demands (with headroom so a growing demand is seen) and sends every node its shares.
 *
 * Accuracy bound (stated, tested in tests/integration/ratelimit_cluster_test.ts): while the leader's shares
 * hold, the permits granted across the cluster in any interval T are at most `rate × T + burst` plus what a
 * share change in flight adds (at most the moved share × rate × the mesh's one-way delay). Before a node hears
 * from a leader, and after SHARE_STALE_MS without one, it uses 1/members: still at most the rate when every
 * member does so, but a node cut off from the leader while the others' shares were moved may over-grant by
 * its own share until it hears again (a partition trades accuracy for availability; no consensus round).
 * A departed node's share is reassigned by the leader's next rebalance (REBALANCE_EVERY_MS).
 */

import { AetherError, type Logger, type NodeId } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvEvent, KvState } from "../kv/mod.ts";
import type { Mesh } from "../net/mod.ts";
import {
  decodeRateLimitRecord,
  encodeRateLimitRecord,
  MAX_RATE_PER_SEC,
  MAX_RATELIMITS,
  rateLimitNameText,
  type RateLimitRecord,
  RATELIMITS_PREFIX,
  secretKeys,
} from "../model/mod.ts";

export const RATELIMIT_CHANNEL = "rl";
/** How often a node reports its demand to the leader. */
export const REPORT_EVERY_MS = 200;
/** How often the leader recomputes and sends shares. */
export const REBALANCE_EVERY_MS = 200;
/** Demand reports older than this are treated as no demand (a node that went quiet). */
const DEMAND_STALE_MS = 1_500;
/** A node that heard no shares for this long falls back to 1/members. */
export const SHARE_STALE_MS = 3_000;
/** Headroom over a node's observed demand when splitting a rate (so rising demand shows in the next report). */
const DEMAND_HEADROOM = 1.25;
/** The least part of a rate every live node keeps (so a node with no demand can start at once). */
const FLOOR_FRACTION = 0.02;

// ---------------------------------------------------------------------------------------------------------
// Pure parts: the bucket and the split

/** A token bucket refilled continuously; `reshape` changes rate and size keeping the tokens (clamped). */
export class TokenBucket {
  #tokens: number;
  #lastMs: number;
  ratePerSec: number;
  capacity: number;

  constructor(ratePerSec: number, capacity: number, nowMs: number, full = true) {
    this.ratePerSec = ratePerSec;
    this.capacity = capacity;
    this.#tokens = full ? capacity : 0;
    this.#lastMs = nowMs;
  }

  #refill(nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.#lastMs);
    this.#lastMs = Math.max(this.#lastMs, nowMs);
    this.#tokens = Math.min(this.capacity, this.#tokens + (elapsed * this.ratePerSec) / 1000);
  }

  tryTake(permits: number, nowMs: number): boolean {
    this.#refill(nowMs);
    if (this.#tokens + 1e-9 < permits) return false;
    this.#tokens -= permits;
    return true;
  }

  reshape(ratePerSec: number, capacity: number, nowMs: number): void {
    this.#refill(nowMs);
    this.ratePerSec = ratePerSec;
    this.capacity = capacity;
    this.#tokens = Math.min(this.#tokens, capacity);
  }

  tokens(nowMs: number): number {
    this.#refill(nowMs);
    return this.#tokens;
  }
}

/**
 * Splits `rate` among `nodes` by max-min fairness over their `demand` (permits/s, with headroom): a node
 * asking for less than an equal part gets what it asks for, the rest share what is left; whatever no node asks
 * for is spread evenly. Every node keeps at least FLOOR_FRACTION of an equal part. Returns fractions that sum
 * to 1 (empty for no nodes).
 */
export function splitShares(
  rate: number,
  nodes: readonly NodeId[],
  demand: (node: NodeId) => number,
): Map<NodeId, number> {
  const shares = new Map<NodeId, number>();
  if (nodes.length === 0) return shares;
  const floor = (rate / nodes.length) * FLOOR_FRACTION;
  const wants = nodes.map((node) => ({ node, want: Math.max(floor, demand(node) * DEMAND_HEADROOM) }))
    .sort((a, b) => a.want - b.want || (a.node < b.node ? -1 : 1));
  let remaining = rate;
  let left = wants.length;
  const given = new Map<NodeId, number>();
  for (const { node, want } of wants) {
    const part = Math.min(want, remaining / left);
    given.set(node, part);
    remaining -= part;
    left--;
  }
  for (const node of nodes) {
    const part = given.get(node)! + remaining / nodes.length;
    shares.set(node, part / rate);
  }
  return shares;
}

// ---------------------------------------------------------------------------------------------------------
// Mesh messages

type RateLimitMessage =
  /** node → leader: permits asked for per second, per limit, over the last report interval. */
  | { t: "demand"; demand: Record<string, number> }
  /** leader → node: this node's fraction of each limit. */
  | { t: "shares"; shares: Record<string, number> };

function isMessage(value: unknown): value is RateLimitMessage {
  if (value === null || typeof value !== "object") return false;
  const m = value as Record<string, unknown>;
  const table = m.t === "demand" ? m.demand : m.t === "shares" ? m.shares : undefined;
  return table !== null && typeof table === "object" && !Array.isArray(table) &&
    Object.values(table as object).every((v) => typeof v === "number" && Number.isFinite(v) && v >= 0);
}

// ---------------------------------------------------------------------------------------------------------
// The node service

export interface RateLimiterOptions {
  self: NodeId;
  members: readonly NodeId[];
  log: Logger;
  mesh: Pick<Mesh, "send" | "onMessage">;
  isConnected(node: NodeId): boolean;
  kv: KvAccess;
  state(): KvState;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  isLeader(): boolean;
  leaderId(): NodeId | undefined;
  now?: () => number;
}

interface Limit {
  record: RateLimitRecord;
  bucket: TokenBucket;
  share: number;
  /** Permits asked for since the last report. */
  asked: number;
  granted: number;
  refused: number;
}

export interface RateLimitStatus {
  name: string;
  ratePerSec: number;
  burst: number;
  /** This node's fraction of the limit and its bucket. */
  share: number;
  nodeRatePerSec: number;
  tokens: number;
  granted: number;
  refused: number;
  /** Where the share came from: the leader's split, or 1/members (no leader heard lately). */
  shareSource: "leader" | "default";
}

export class RateLimiter {
  readonly #o: RateLimiterOptions;
  readonly #now: () => number;
  readonly #limits = new Map<string, Limit>();
  /** Leader only: per node, its latest demand report and when it came. */
  readonly #demands = new Map<NodeId, { atMs: number; demand: Record<string, number> }>();
  #lastSharesMs = -Infinity;
  #lastReportMs: number;
  readonly #timers: ReturnType<typeof setInterval>[] = [];
  readonly #off: Array<() => void> = [];

  constructor(options: RateLimiterOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#lastReportMs = this.#now();
    this.#reload();
    this.#off.push(options.onEvents((events) => this.#apply(events)));
    this.#off.push(options.onReset(() => this.#reload()));
    this.#off.push(
      options.mesh.onMessage(RATELIMIT_CHANNEL, (from, message) => this.#receive(from, message)),
    );
    this.#timers.push(setInterval(() => this.#report(), REPORT_EVERY_MS));
    this.#timers.push(setInterval(() => this.#rebalance(), REBALANCE_EVERY_MS));
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    for (const off of this.#off) off();
  }

  /** Takes permits from this node's share of `name`; throws not_found for a limit nobody defined. */
  tryAcquire(name: string, permits = 1): boolean {
    const limit = this.#limits.get(name);
    if (!limit) {
      throw new AetherError(
        "not_found",
        `no rate limit "${name}" (aether ratelimit set ${name} --rate 100/s)`,
      );
    }
    if (!Number.isInteger(permits) || permits < 1 || permits > limit.record.burst) {
      throw new AetherError(
        "bad_request",
        `rate limit "${name}": permits must be an integer from 1 to its burst ${limit.record.burst}, got ${permits}`,
        { field: "permits" },
      );
    }
    this.#staleCheck();
    limit.asked += permits;
    const ok = limit.bucket.tryTake(permits, this.#now());
    if (ok) limit.granted += permits;
    else limit.refused += permits;
    return ok;
  }

  list(): RateLimitStatus[] {
    const now = this.#now();
    const source: RateLimitStatus["shareSource"] = now - this.#lastSharesMs < SHARE_STALE_MS
      ? "leader"
      : "default";
    return [...this.#limits].map(([name, l]) => ({
      name,
      ratePerSec: l.record.ratePerSec,
      burst: l.record.burst,
      share: round(l.share),
      nodeRatePerSec: round(l.bucket.ratePerSec),
      tokens: round(l.bucket.tokens(now)),
      granted: l.granted,
      refused: l.refused,
      shareSource: source,
    })).sort((a, b) => a.name < b.name ? -1 : 1);
  }

  record(name: string): RateLimitRecord | undefined {
    return this.#limits.get(name)?.record;
  }

  /** Defines or changes a limit through consensus (the management API). */
  async set(name: string, ratePerSec: number, burst?: number): Promise<RateLimitRecord> {
    rateLimitNameText(name, "rate limit");
    if (!Number.isInteger(ratePerSec) || ratePerSec < 1 || ratePerSec > MAX_RATE_PER_SEC) {
      throw new AetherError(
        "bad_request",
        `rate limit "${name}": rate must be an integer from 1 to ${MAX_RATE_PER_SEC} per second, got ${ratePerSec}`,
        { field: "ratePerSec" },
      );
    }
    const size = burst ?? Math.max(1, Math.ceil(ratePerSec / 10));
    if (!Number.isInteger(size) || size < 1 || size > MAX_RATE_PER_SEC) {
      throw new AetherError(
        "bad_request",
        `rate limit "${name}": burst must be an integer from 1 to ${MAX_RATE_PER_SEC}, got ${burst}`,
        { field: "burst" },
      );
    }
    if (!this.#limits.has(name) && this.#limits.size >= MAX_RATELIMITS) {
      throw new AetherError("overloaded", `the cluster holds ${MAX_RATELIMITS} rate limits already`);
    }
    const record: RateLimitRecord = { ratePerSec, burst: size, updatedAt: Date.now() };
    await this.#o.kv.write({
      type: "put",
      key: secretKeys.rateLimit(name),
      value: encodeRateLimitRecord(record),
    });
    return record;
  }

  async delete(name: string): Promise<boolean> {
    const key = secretKeys.rateLimit(rateLimitNameText(name, "rate limit"));
    if (!this.#o.state().get(key)) return false;
    await this.#o.kv.write({ type: "delete", key });
    return true;
  }

  // -------------------------------------------------------------------------------------------------------

  #defaultShare(): number {
    return 1 / Math.max(1, this.#o.members.length);
  }

  #shape(limit: Limit, share: number, now: number): void {
    limit.share = share;
    const rate = limit.record.ratePerSec * share;
    const capacity = Math.max(Math.min(1, limit.record.burst), limit.record.burst * share);
    limit.bucket.reshape(rate, capacity, now);
  }

  #put(name: string, value: Uint8Array): void {
    let record: RateLimitRecord;
    try {
      record = decodeRateLimitRecord(value, `rate limit "${name}"`);
    } catch (e) {
      this.#o.log.warn("rate limit record ignored", { name, error: (e as Error).message });
      this.#limits.delete(name);
      return;
    }
    const now = this.#now();
    const existing = this.#limits.get(name);
    if (existing) {
      existing.record = record;
      this.#shape(existing, existing.share, now);
      return;
    }
    const share = this.#defaultShare();
    const capacity = Math.max(Math.min(1, record.burst), record.burst * share);
    this.#limits.set(name, {
      record,
      bucket: new TokenBucket(record.ratePerSec * share, capacity, now),
      share,
      asked: 0,
      granted: 0,
      refused: 0,
    });
  }

  #reload(): void {
    const seen = new Set<string>();
    for (const entry of this.#o.state().range(RATELIMITS_PREFIX, MAX_RATELIMITS)) {
      const name = entry.key.slice(RATELIMITS_PREFIX.length);
      seen.add(name);
      this.#put(name, entry.value);
    }
    for (const name of [...this.#limits.keys()]) if (!seen.has(name)) this.#limits.delete(name);
  }

  #apply(events: readonly KvEvent[]): void {
    for (const event of events) {
      if (!event.key.startsWith(RATELIMITS_PREFIX)) continue;
      const name = event.key.slice(RATELIMITS_PREFIX.length);
      if (event.type === "put" && event.value) this.#put(name, event.value);
      else this.#limits.delete(name);
    }
  }

  /** Without a leader's shares for SHARE_STALE_MS, every limit falls back to 1/members. */
  #staleCheck(): void {
    if (this.#lastSharesMs === -Infinity || this.#now() - this.#lastSharesMs < SHARE_STALE_MS) return;
    this.#lastSharesMs = -Infinity;
    const now = this.#now();
    for (const limit of this.#limits.values()) this.#shape(limit, this.#defaultShare(), now);
  }

  #report(): void {
    const now = this.#now();
    const seconds = Math.max(0.001, (now - this.#lastReportMs) / 1000);
    this.#lastReportMs = now;
    const demand: Record<string, number> = {};
    for (const [name, limit] of this.#limits) {
      demand[name] = limit.asked / seconds;
      limit.asked = 0;
    }
    this.#staleCheck();
    const leader = this.#o.leaderId();
    if (leader === undefined) return;
    if (leader === this.#o.self) this.#demands.set(this.#o.self, { atMs: now, demand });
    else this.#o.mesh.send(leader, RATELIMIT_CHANNEL, { t: "demand", demand } satisfies RateLimitMessage);
  }

  #rebalance(): void {
    if (!this.#o.isLeader() || this.#limits.size === 0) return;
    const now = this.#now();
    const live = this.#o.members.filter((m) => m === this.#o.self || this.#o.isConnected(m));
    const perNode = new Map<NodeId, Record<string, number>>(live.map((n) => [n, {}]));
    for (const [name, limit] of this.#limits) {
      const shares = splitShares(limit.record.ratePerSec, live, (node) => {
        const report = this.#demands.get(node);
        return report && now - report.atMs < DEMAND_STALE_MS ? report.demand[name] ?? 0 : 0;
      });
      for (const [node, share] of shares) perNode.get(node)![name] = share;
    }
    for (const [node, shares] of perNode) {
      if (node === this.#o.self) this.#applyShares(shares);
      else this.#o.mesh.send(node, RATELIMIT_CHANNEL, { t: "shares", shares } satisfies RateLimitMessage);
    }
  }

  #applyShares(shares: Record<string, number>): void {
    const now = this.#now();
    this.#lastSharesMs = now;
    for (const [name, share] of Object.entries(shares)) {
      const limit = this.#limits.get(name);
      if (limit) this.#shape(limit, Math.min(1, share), now);
    }
  }

  #receive(from: NodeId, message: unknown): void {
    if (!isMessage(message)) {
      this.#o.log.warn("malformed rate limit message", { from });
      return;
    }
    if (message.t === "demand") {
      if (this.#o.isLeader()) this.#demands.set(from, { atMs: this.#now(), demand: message.demand });
      return;
    }
    // Shares count only from the node this one holds for leader (a stale leader's late message is dropped).
    if (from === this.#o.leaderId()) this.#applyShares(message.shares);
  }
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
