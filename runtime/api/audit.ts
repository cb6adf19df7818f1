/**
 * The audit log: every authenticated mutating call (who, role, what, target, result, request id, time) as a
 * record under `audit/` in the replicated KV store. Records are queued and written in one transaction per
 * flush (one consensus write for many calls); the queue is bounded and what it drops is counted. Retention is
 * the newest MAX_AUDIT_ENTRIES records: the node that writes prunes the oldest beyond that.
 *
 * GET /api/v1/audit?limit=&since= answers the newest `limit` records at or after `since`, oldest first.
 */

import { Hono } from "hono";
import type { Logger } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvOp } from "../kv/mod.ts";
import {
  auditKey,
  auditKeyFrom,
  type AuditRecord,
  AUTH_PREFIXES,
  decodeAuditRecord,
  encodeJson,
} from "../model/mod.ts";
import { badRequest } from "./_problem.ts";
import { parseSince } from "./logs.ts";

/** Records the cluster keeps; older ones are deleted. */
export const MAX_AUDIT_ENTRIES = 10_000;
/** Records waiting to be written on one node; beyond, new ones are dropped and counted. */
export const MAX_PENDING_AUDIT = 1_000;
/** Records written in one transaction at most. */
const FLUSH_BATCH = 200;
/** How often queued records are written. */
const FLUSH_EVERY_MS = 100;
/** How often the writing node checks retention. */
const PRUNE_EVERY_MS = 5_000;
/** Keys deleted per pruning transaction at most. */
const PRUNE_BATCH = 1_000;
export const DEFAULT_AUDIT_LIMIT = 100;

export interface AuditStats {
  written: number;
  dropped: number;
  failed: number;
  pruned: number;
  pending: number;
}

export class AuditLog {
  readonly #pending: AuditRecord[] = [];
  readonly stats: AuditStats = { written: 0, dropped: 0, failed: 0, pruned: 0, pending: 0 };
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #flushing: Promise<void> | null = null;
  #lastPruneMs = 0;

  constructor(
    readonly kv: KvAccess,
    readonly node: string,
    readonly log: Logger,
    readonly maxEntries = MAX_AUDIT_ENTRIES,
  ) {}

  record(entry: Omit<AuditRecord, "node">): void {
    if (this.#pending.length >= MAX_PENDING_AUDIT) {
      this.stats.dropped++;
      return;
    }
    this.#pending.push({ ...entry, node: this.node });
    this.stats.pending = this.#pending.length;
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch((e) => this.log.warn("audit flush failed", { error: e }));
    }, FLUSH_EVERY_MS);
  }

  /** Writes what is queued (tests call it to see records at once). */
  async flush(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#pending.length === 0) return;
    this.#flushing = this.#write().finally(() => (this.#flushing = null));
    await this.#flushing;
  }

  async #write(): Promise<void> {
    while (this.#pending.length > 0) {
      const batch = this.#pending.splice(0, FLUSH_BATCH);
      this.stats.pending = this.#pending.length;
      const success: KvOp[] = batch.map((r) => ({
        op: "put",
        key: auditKey(r.time, r.node, this.#seq++),
        value: encodeJson(r),
      }));
      try {
        await this.kv.write({ type: "txn", compare: [], success, failure: [] });
        this.stats.written += batch.length;
      } catch (e) {
        this.stats.failed += batch.length;
        this.log.warn("audit records not written", { count: batch.length, error: e });
      }
    }
    if (Date.now() - this.#lastPruneMs >= PRUNE_EVERY_MS) {
      this.#lastPruneMs = Date.now();
      await this.prune();
    }
  }

  /** Deletes the oldest records beyond the retention limit. */
  async prune(): Promise<void> {
    try {
      const { items } = this.kv.range(AUTH_PREFIXES.audit, { limit: this.maxEntries + PRUNE_BATCH });
      const excess = items.length - this.maxEntries;
      if (excess <= 0) return;
      const success: KvOp[] = items.slice(0, excess).map((e) => ({ op: "delete", key: e.key }));
      await this.kv.write({ type: "txn", compare: [], success, failure: [] });
      this.stats.pruned += excess;
    } catch (e) {
      this.log.warn("audit pruning failed", { error: e });
    }
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

export function auditRoutes(kv: KvAccess, now: () => number = Date.now): Hono {
  const app = new Hono();
  app.get("/audit", (c) => {
    const limitText = c.req.query("limit");
    let limit = DEFAULT_AUDIT_LIMIT;
    if (limitText !== undefined) {
      if (!/^\d{1,6}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_AUDIT_ENTRIES) {
        throw badRequest(
          `query parameter limit: "${limitText}" is not an integer from 1 to ${MAX_AUDIT_ENTRIES}`,
          { parameter: "limit" },
        );
      }
      limit = Number(limitText);
    }
    const since = c.req.query("since");
    const from = since === undefined ? undefined : auditKeyFrom(parseSince(since, now()));
    // Keys sort by time, so `since` is a key comparison.
    const { items } = kv.range(AUTH_PREFIXES.audit, { limit: MAX_AUDIT_ENTRIES + PRUNE_BATCH });
    const records = items.filter((e) => from === undefined || e.key >= from).slice(-limit);
    return c.json({ items: records.map((e) => decodeAuditRecord(e.value)) });
  });
  return app;
}
