/**
 * The cluster scheduler: cron and one-off jobs that call a slice method, kept in the consensus KV
 * (`jobs/{group}/{name}`, runtime/model/scheduler.ts) and fired by the leader.
 *
 * Firing one occurrence, on the leader:
 *
 * 1. **claim** (up to CLAIM_AHEAD_MS before the occurrence): a transaction compared on the leader's own
 *    leader record (a deposed leader's claim fails) and on the job record's modRevision (a second claim of
 *    the same occurrence fails), writing `claim: {occurrenceMs, node, attempt}`;
 * 2. **call**, once Date.now() >= the occurrence, the slice method through the invoker with
 *    `{job, scheduledAtMs, attempt, payload}`;
 * 3. **complete**: a compare-and-set on the claimed record that removes the claim, appends the outcome to
 *    the bounded history and moves `nextAtMs` to the following occurrence.
 *
 * A claim found without its completion by a leader that is not firing it (the previous leader died or was
 * deposed between 1 and 3) is fired again, attempt + 1: the **at-least-once window** is exactly the time from
 * the claim's commit to the completion's commit. Outside it an occurrence fires once: the claim's compare
 * lets one leader through per occurrence. An occurrence never fires before its time by the firing leader's
 * clock (so by at most the clock skew between nodes by another node's clock).
 *
 * Misfires (a leader found an occurrence later than the job's `misfireGraceMs`, e.g. after the whole cluster
 * was down): `skip` records the missed occurrences as one `skipped` history entry and waits for the next one
 * after now; `catchup` fires each missed occurrence in order, one after another (at most the last
 * MAX_CATCHUP_OCCURRENCES; older ones are recorded as skipped).
 */

import { CronExpressionParser } from "cron-parser";
import type { ConsensusServiceOptions, SliceInvoke } from "./consensus_service.ts";
import { AetherError } from "../core/mod.ts";
import type { InvokeOutcome } from "../sandbox/mod.ts";
import {
  decodeJobRecord,
  encodeJobRecord,
  type JobHistoryEntry,
  jobKey,
  type JobRecord,
  JOBS_PREFIX,
  jobsOfGroupPrefix,
  type JobTarget,
  LEADER_KEY,
  MAX_JOB_HISTORY,
  MAX_JOBS,
  MAX_JOBS_PER_GROUP,
  type MisfirePolicy,
  parseLeaderRecord,
} from "../model/mod.ts";
// Types only: services.ts imports this file for its catalog row (a value import back would be a cycle).
import type { InfraService, ServiceCall } from "./services.ts";

/** How often the leader looks for due occurrences. */
const TICK_MS = 5;
/**
 * The leader claims an occurrence this long before its time and calls the method at its time (a timer), so
 * the claim's consensus round is not part of the firing delay. The call itself is never early.
 */
export const CLAIM_AHEAD_MS = 200;
/** Occurrences being claimed, called or completed at once on the leader. */
const MAX_CONCURRENT_FIRES = 256;
/** A catch-up fires at most this many missed occurrences of a job; older ones are skipped. */
export const MAX_CATCHUP_OCCURRENCES = 100;
const DEFAULT_MISFIRE_GRACE_MS = 1_000;
/**
 * Tries of a call the invoker could not make (250 ms, 500 ms, then 1 s between them: about 8 s in all). The
 * pause stops doubling at CALL_PAUSE_MAX_MS so a job fires again within a second of its slice becoming
 * callable (right after a cluster restart, instances come up one after another): with 2 s and 4 s pauses an
 * every-second job sat out up to 4 s after its target was back, and a `skip` job's occurrences were skipped.
 */
const CALL_TRIES = 10;
const CALL_PAUSE_MAX_MS = 1_000;
/** How long a fired call may take. */
const FIRE_TIMEOUT_MS = 30_000;
/** One-off jobs: at most this far ahead. */
const MAX_DELAY_MS = 366 * 86_400_000;
/** The largest payload a job carries to its method (bytes of JSON). */
const MAX_PAYLOAD_BYTES = 16 * 1024;
/** How often the leader reconciles the jobs slices declare in their manifests. */
const RECONCILE_MS = 1_000;
const utf8 = new TextDecoder();

/**
 * The most often a group's cron jobs may fire together, per second: a slice cannot fill the consensus log
 * with its jobs (every fire writes the job record twice). One-off jobs and paused jobs do not count.
 */
export const MAX_GROUP_FIRES_PER_SECOND = 100;

/** How often a cron job fires at its fastest, per second: from the shortest of its next 8 gaps. */
export function fireRatePerSecond(record: Pick<JobRecord, "cron" | "tz">, nowMs = Date.now()): number {
  if (record.cron === undefined) return 0;
  let shortestMs = Infinity;
  let at = nextOccurrence(record.cron, record.tz, nowMs);
  for (let i = 0; i < 8; i++) {
    const next = nextOccurrence(record.cron, record.tz, at);
    shortestMs = Math.min(shortestMs, next - at);
    at = next;
  }
  return 1000 / Math.max(1000, shortestMs);
}

/** Same schedule and call: a declared job needs no rewrite. */
function sameDeclaration(a: JobRecord, b: JobRecord): boolean {
  return a.cron === b.cron && a.tz === b.tz && a.misfire === b.misfire &&
    JSON.stringify(a.target) === JSON.stringify(b.target);
}

export type { SliceInvoke };

export interface SchedulerOptions extends ConsensusServiceOptions {
  /** The invoker's `invoke` (bound late: the invoker starts after the infrastructure services). */
  invoke: SliceInvoke;
}

/** What a caller asks for; checked field by field (`createJob`). */
export interface JobSpec {
  cron?: string;
  tz?: string;
  atMs?: number;
  delayMs?: number;
  /** "artifact" or "group:artifact" of the caller's group. */
  slice?: string;
  method?: string;
  payload?: unknown;
  misfire?: MisfirePolicy;
  misfireGraceMs?: number;
  /** Replace a job of the same name (default: refuse with 409). */
  replace?: boolean;
}

export interface Scheduler {
  /** Answers `ctx.infra.scheduler(name)` calls: schedule, get, pause, resume, delete, run, history. */
  serve(call: ServiceCall): Promise<unknown>;
  create(group: string, name: string, spec: JobSpec, source: string): Promise<JobRecord>;
  /** Creates the one-off job of a state's timeout (statemachine.ts). */
  createInternal(group: string, name: string, atMs: number, target: JobTarget): Promise<void>;
  get(group: string, name: string): JobRecord | undefined;
  list(group?: string): JobRecord[];
  setPaused(group: string, name: string, paused: boolean): Promise<JobRecord>;
  remove(group: string, name: string): Promise<boolean>;
  /** Fires the job now, outside its schedule (recorded as `manual`); resolves with the method's outcome. */
  runNow(group: string, name: string): Promise<{ ok: boolean; value?: unknown; error?: unknown }>;
  /** Sets what a `machine` target does when it fires (statemachine.ts). */
  onMachineTimeout(
    handler: (group: string, target: Extract<JobTarget, { kind: "machine" }>) => Promise<void>,
  ): void;
  stats(): { jobs: number; firing: number; fired: number; leading: boolean };
  stop(): void;
}

/** The first occurrence of `cron` strictly after `afterMs`. Throws bad_request naming the expression. */
export function nextOccurrence(cron: string, tz: string | undefined, afterMs: number): number {
  return parseCron(cron, tz, afterMs).next().getTime();
}

function parseCron(cron: string, tz: string | undefined, currentMs: number) {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    throw new AetherError(
      "bad_request",
      `cron "${cron}" must have 5 fields (minute hour day month weekday) or 6 (seconds first), has ${fields.length}`,
      { field: "cron" },
    );
  }
  try {
    const expression = CronExpressionParser.parse(cron, {
      currentDate: new Date(currentMs),
      tz: tz ?? "UTC",
    });
    return expression;
  } catch (e) {
    throw new AetherError("bad_request", `cron "${cron}": ${(e as Error).message}`, { field: "cron" });
  }
}

function checkTz(tz: unknown): string | undefined {
  if (tz === undefined || tz === null) return undefined;
  if (typeof tz !== "string" || tz.length > 64) {
    throw new AetherError("bad_request", "tz must be an IANA time zone name such as Europe/Berlin", {
      field: "tz",
    });
  }
  try {
    new Intl.DateTimeFormat("en", { timeZone: tz });
  } catch {
    throw new AetherError("bad_request", `tz "${tz}" is not a known time zone`, { field: "tz" });
  }
  return tz;
}

/** "artifact" → "group:artifact"; a slice of another group is refused. */
function sliceOfGroup(group: string, value: unknown): string {
  if (typeof value !== "string" || !/^[A-Za-z0-9._-]+(:[A-Za-z0-9._-]+)?$/.test(value)) {
    throw new AetherError(
      "bad_request",
      `slice must be "artifact" or "${group}:artifact", got ${JSON.stringify(value)}`,
      {
        field: "slice",
      },
    );
  }
  const full = value.includes(":") ? value : `${group}:${value}`;
  if (full.split(":")[0] !== group) {
    throw new AetherError(
      "forbidden",
      `slice ${full} is not of group ${group}: a job calls only its own group's slices`,
      {
        field: "slice",
      },
    );
  }
  return full;
}

function integerField(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new AetherError(
      "bad_request",
      `${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`,
      {
        field,
      },
    );
  }
  return value;
}

/** Builds a new job record from a caller's spec (every field checked, errors name it). */
export function jobFromSpec(
  group: string,
  name: string,
  spec: JobSpec,
  source: string,
  nowMs: number,
): JobRecord {
  if (spec === null || typeof spec !== "object" || Array.isArray(spec)) {
    throw new AetherError("bad_request", "a job must be a JSON object", { field: "(body)" });
  }
  const kinds = ["cron", "atMs", "delayMs"].filter((k) => (spec as Record<string, unknown>)[k] !== undefined);
  if (kinds.length !== 1) {
    throw new AetherError(
      "bad_request",
      `a job needs exactly one of cron, atMs, delayMs (got ${kinds.join(", ") || "none"})`,
      {
        field: "cron",
      },
    );
  }
  const tz = checkTz(spec.tz);
  let nextAtMs: number;
  let atMs: number | undefined;
  let cron: string | undefined;
  if (spec.cron !== undefined) {
    if (typeof spec.cron !== "string") {
      throw new AetherError("bad_request", "cron must be a string", { field: "cron" });
    }
    cron = spec.cron.trim();
    nextAtMs = nextOccurrence(cron, tz, nowMs);
  } else if (spec.atMs !== undefined) {
    atMs = integerField(spec.atMs, "atMs", 0, nowMs + MAX_DELAY_MS);
    nextAtMs = atMs;
  } else {
    atMs = nowMs + integerField(spec.delayMs, "delayMs", 0, MAX_DELAY_MS);
    nextAtMs = atMs;
  }
  if (typeof spec.method !== "string" || !/^[a-zA-Z_][a-zA-Z0-9_]{0,127}$/.test(spec.method)) {
    throw new AetherError(
      "bad_request",
      `method must be a slice method name, got ${JSON.stringify(spec.method)}`,
      {
        field: "method",
      },
    );
  }
  const payload = spec.payload === undefined ? null : spec.payload;
  let payloadText: string;
  try {
    payloadText = JSON.stringify(payload);
  } catch {
    throw new AetherError("bad_request", "payload must be JSON", { field: "payload" });
  }
  if (new TextEncoder().encode(payloadText).byteLength > MAX_PAYLOAD_BYTES) {
    throw new AetherError("bad_request", `payload is over ${MAX_PAYLOAD_BYTES} bytes of JSON`, {
      field: "payload",
    });
  }
  const misfire = spec.misfire ?? "skip";
  if (misfire !== "skip" && misfire !== "catchup") {
    throw new AetherError(
      "bad_request",
      `misfire must be "skip" or "catchup", got ${JSON.stringify(misfire)}`,
      {
        field: "misfire",
      },
    );
  }
  const record: JobRecord = {
    group,
    name,
    target: {
      kind: "slice",
      slice: sliceOfGroup(group, spec.slice),
      method: spec.method,
      payload: JSON.parse(payloadText),
    },
    misfire,
    misfireGraceMs: spec.misfireGraceMs === undefined
      ? DEFAULT_MISFIRE_GRACE_MS
      : integerField(spec.misfireGraceMs, "misfireGraceMs", 0, 86_400_000),
    paused: false,
    source,
    createdAtMs: nowMs,
    nextAtMs,
    fired: 0,
    history: [],
  };
  if (cron !== undefined) record.cron = cron;
  if (tz !== undefined) record.tz = tz;
  if (atMs !== undefined) record.atMs = atMs;
  return record;
}

function pushHistory(record: JobRecord, entry: JobHistoryEntry): void {
  record.history.push(entry);
  if (record.history.length > MAX_JOB_HISTORY) {
    record.history.splice(0, record.history.length - MAX_JOB_HISTORY);
  }
}

/** The occurrence after `occurrenceMs` (null for a one-off job). */
function followingOccurrence(record: JobRecord, occurrenceMs: number): number | null {
  return record.cron === undefined ? null : nextOccurrence(record.cron, record.tz, occurrenceMs);
}

interface Tracked {
  record: JobRecord;
  modRevision: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function compareFailed(e: unknown): boolean {
  return e instanceof AetherError && e.code === "compare_failed";
}

function errorText(e: unknown): string {
  const text = e instanceof Error ? e.message : typeof e === "object" ? JSON.stringify(e) : String(e);
  return text.slice(0, 1000);
}

export function startScheduler(options: SchedulerOptions): Scheduler {
  const log = options.log.with({ component: "scheduler" });
  const jobs = new Map<string, Tracked>();
  /** Jobs whose occurrence this node is claiming, calling or completing. */
  const firing = new Set<string>();
  /**
   * A lower bound of when any job next needs the leader: lowered by every change of a job (incrementally),
   * recomputed by a full scan only when reached, so the 5 ms tick costs nothing while nothing is due.
   */
  let earliestMs = 0;
  let leading = false;
  let firedHere = 0;
  let machineTimeout:
    | ((group: string, target: Extract<JobTarget, { kind: "machine" }>) => Promise<void>)
    | undefined;

  const track = (key: string, value: Uint8Array, modRevision: number) => {
    try {
      jobs.set(key, { record: decodeJobRecord(value, key), modRevision });
    } catch (e) {
      log.warn("job record unreadable; it never fires", { key, error: String(e) });
      jobs.delete(key);
    }
  };
  const rebuild = () => {
    jobs.clear();
    for (const entry of options.state().range(JOBS_PREFIX)) track(entry.key, entry.value, entry.modRevision);
    earliestMs = 0;
  };
  rebuild();
  const offEvents = options.onEvents((events) => {
    for (const event of events) {
      if (!event.key.startsWith(JOBS_PREFIX)) continue;
      if (event.type === "put" && event.value) {
        track(event.key, event.value, event.revision);
        const tracked = jobs.get(event.key);
        if (tracked) earliestMs = Math.min(earliestMs, dueAtMs(event.key, tracked.record));
      } else jobs.delete(event.key);
    }
  });
  const offReset = options.onReset(rebuild);

  /** When the job needs the leader next: 0 for an orphaned claim, Infinity for none. */
  const dueAtMs = (key: string, job: JobRecord): number => {
    if (firing.has(key)) return Infinity;
    if (job.claim) return 0;
    if (job.paused || job.nextAtMs === null) return Infinity;
    return job.nextAtMs - CLAIM_AHEAD_MS;
  };

  const tick = () => {
    const leader = options.isLeader() ? options.state().get(LEADER_KEY) : undefined;
    if (leader === undefined || parseLeaderRecord(leader.value)?.nodeId !== options.self) {
      leading = false;
      return;
    }
    if (!leading) earliestMs = 0; // just became leader: look at everything (orphaned claims first of all)
    leading = true;
    const nowMs = Date.now();
    if (nowMs < earliestMs) return;
    earliestMs = Infinity;
    for (const [key, tracked] of jobs) {
      const due = dueAtMs(key, tracked.record);
      if (due > nowMs || firing.size >= MAX_CONCURRENT_FIRES) {
        earliestMs = Math.min(earliestMs, due);
        continue;
      }
      firing.add(key);
      fire(key, tracked, leader.modRevision, nowMs)
        .catch((e) => log.debug("occurrence not fired", { key, error: errorText(e) }))
        .finally(() => {
          firing.delete(key);
          const now = jobs.get(key);
          if (now) earliestMs = Math.min(earliestMs, dueAtMs(key, now.record));
        });
    }
  };
  const timer = setInterval(tick, TICK_MS);
  let reconciling = false;
  const reconcileTimer = setInterval(() => {
    if (reconciling || !options.isLeader()) return;
    reconciling = true;
    reconcileDeclared().catch((e) => log.debug("declared jobs not reconciled", { error: errorText(e) }))
      .finally(() => reconciling = false);
  }, RECONCILE_MS);

  /**
   * Jobs declared in the manifests of deployed slices (`jobs` field): the leader creates each one missing,
   * rewrites one whose declaration changed (keeping its history, pause and next occurrence when the schedule
   * is the same), and deletes the declared jobs of slices no longer deployed.
   */
  const reconcileDeclared = async () => {
    const state = options.state();
    const wanted = new Map<string, JobRecord>();
    for (const target of state.range("targets/")) {
      const slice = target.key.slice("targets/".length);
      let version: string | undefined;
      try {
        version = JSON.parse(utf8.decode(target.value)).version;
      } catch {
        continue;
      }
      const artifact = state.get(`artifacts/${slice}:${version}`);
      if (!artifact) continue;
      let declared: Record<string, JobSpec & { cron: string }> | undefined;
      try {
        declared = JSON.parse(utf8.decode(artifact.value)).manifest?.jobs;
      } catch {
        continue;
      }
      const group = slice.split(":")[0];
      for (const [name, job] of Object.entries(declared ?? {})) {
        try {
          const record = jobFromSpec(group, name, { ...job, slice }, "manifest", Date.now());
          wanted.set(jobKey(group, name), record);
        } catch (e) {
          log.warn("a declared job is invalid; not scheduled", { slice, job: name, error: errorText(e) });
        }
      }
    }
    for (const [key, record] of wanted) {
      const existing = jobs.get(key);
      if (existing && existing.record.source !== "manifest") continue; // a job made at run time keeps its name
      if (existing && sameDeclaration(existing.record, record)) continue;
      if (!existing) {
        await options.kv.write({ type: "put", key, value: encodeJobRecord(record), ifRevision: 0 }, {
          timeoutMs: 5_000,
        })
          .catch((e) => log.debug("declared job not created", { key, error: errorText(e) }));
        continue;
      }
      const kept = {
        ...record,
        paused: existing.record.paused,
        history: existing.record.history,
        fired: existing.record.fired,
      };
      await options.kv.write(
        { type: "put", key, value: encodeJobRecord(kept), ifRevision: existing.modRevision },
        { timeoutMs: 5_000 },
      ).catch((e) => log.debug("declared job not updated", { key, error: errorText(e) }));
    }
    for (const [key, tracked] of jobs) {
      if (tracked.record.source === "manifest" && !wanted.has(key)) {
        await options.kv.write({ type: "delete", key, ifRevision: tracked.modRevision }, { timeoutMs: 5_000 })
          .catch(() => {});
      }
    }
  };

  /** Claims the due occurrence (or re-claims an orphaned one), calls it, completes it. */
  const fire = async (key: string, tracked: Tracked, leaderRevision: number, nowMs: number) => {
    const job = tracked.record;
    let occurrenceMs: number;
    let attempt = 1;
    const next: JobRecord = structuredClone(job);
    if (job.claim) {
      occurrenceMs = job.claim.occurrenceMs;
      attempt = job.claim.attempt + 1;
    } else {
      occurrenceMs = job.nextAtMs!;
      const lateMs = nowMs - occurrenceMs;
      if (lateMs > job.misfireGraceMs) {
        const resumeAtMs = misfireResume(job, nowMs);
        if (resumeAtMs !== occurrenceMs) {
          // Skipped: every occurrence from occurrenceMs up to (not including) resumeAtMs, or one-off lost nothing.
          const skipped = countOccurrences(job, occurrenceMs, resumeAtMs);
          pushHistory(next, { occurrenceMs, outcome: "skipped", attempt: 1, node: options.self, skipped });
          next.nextAtMs = resumeAtMs;
          await fencedPut(key, next, tracked.modRevision, leaderRevision);
          return;
        }
      }
    }
    next.claim = { occurrenceMs, node: options.self, attempt, claimedAtMs: Date.now() };
    const claimRevision = await fencedPut(key, next, tracked.modRevision, leaderRevision);
    if (claimRevision === undefined) return;
    // Claimed ahead: wait for the occurrence's time (never early, by this node's clock).
    while (Date.now() < occurrenceMs) await sleep(Math.max(1, occurrenceMs - Date.now()));
    const firedAtMs = Date.now();
    const entry: JobHistoryEntry = { occurrenceMs, firedAtMs, outcome: "ok", attempt, node: options.self };
    try {
      const outcome = await callWithRetries(job, occurrenceMs, attempt);
      if (!outcome.ok) {
        entry.outcome = "error";
        entry.error = errorText(outcome.error);
      }
    } catch (e) {
      entry.outcome = "error";
      entry.error = errorText(e);
    }
    entry.durationMs = Date.now() - firedAtMs;
    firedHere++;
    await complete(key, occurrenceMs, attempt, entry);
  };

  /** Where a misfired job resumes: skip → the next occurrence after now; catchup → the oldest kept one. */
  const misfireResume = (job: JobRecord, nowMs: number): number => {
    if (job.cron === undefined) return job.nextAtMs!; // a one-off job always fires, late
    if (job.misfire === "skip") return nextOccurrence(job.cron, job.tz, nowMs);
    const expression = parseCron(job.cron, job.tz, nowMs + 1);
    let oldestKept = job.nextAtMs!;
    for (let i = 0; i < MAX_CATCHUP_OCCURRENCES; i++) oldestKept = expression.prev().getTime();
    return Math.max(oldestKept, job.nextAtMs!);
  };

  const countOccurrences = (job: JobRecord, fromMs: number, untilMs: number): number => {
    if (job.cron === undefined) return 1;
    let count = 0;
    for (let at = fromMs; at < untilMs && count < 1_000_000; at = nextOccurrence(job.cron, job.tz, at)) {
      count++;
    }
    return count;
  };

  /** A put compared on the leader record and the job's modRevision; the new modRevision, or undefined. */
  const fencedPut = async (key: string, record: JobRecord, modRevision: number, leaderRevision: number) => {
    const outcome = await options.kv.write({
      type: "txn",
      compare: [{ key: LEADER_KEY, modRevision: leaderRevision }, { key, modRevision }],
      success: [{ op: "put", key, value: encodeJobRecord(record) }],
      failure: [],
    }, { timeoutMs: 5_000 });
    return outcome.succeeded ? outcome.revision : undefined;
  };

  const callTarget = async (
    job: JobRecord,
    occurrenceMs: number,
    attempt: number,
  ): Promise<InvokeOutcome> => {
    const target = job.target;
    if (target.kind === "machine") {
      if (!machineTimeout) throw new AetherError("unavailable", "state machines are not served by this node");
      await machineTimeout(job.group, target);
      return { ok: true, value: null };
    }
    return await options.invoke(target.slice, target.method, {
      job: job.name,
      scheduledAtMs: occurrenceMs,
      attempt,
      payload: target.payload,
    }, {
      timeoutMs: FIRE_TIMEOUT_MS,
      from: `scheduler:${job.group}/${job.name}`,
      requestId: `job-${occurrenceMs}-${attempt}`,
    });
  };

  /**
   * The call, tried again when the invoker could not make it (no live instance yet, e.g. right after the
   * cluster restarted, or every attempt failed before reaching the method): up to CALL_TRIES tries with a
   * doubling pause of at most CALL_PAUSE_MAX_MS. What the method itself answered, error or not, is final.
   */
  const callWithRetries = async (job: JobRecord, occurrenceMs: number, attempt: number) => {
    for (let tryNo = 1, pauseMs = 250;; tryNo++, pauseMs = Math.min(CALL_PAUSE_MAX_MS, pauseMs * 2)) {
      try {
        return await callTarget(job, occurrenceMs, attempt);
      } catch (e) {
        if (tryNo >= CALL_TRIES || !options.isLeader()) throw e;
        log.debug("job call not made; trying again", { job: job.name, error: errorText(e), pauseMs });
        await sleep(pauseMs);
      }
    }
  };

  /**
   * Removes our claim and records the outcome. The record may have changed since the claim (an operator's
   * pause): compare-and-set on whatever it is now, as long as the claim is still ours.
   */
  const complete = async (key: string, occurrenceMs: number, attempt: number, entry: JobHistoryEntry) => {
    for (let i = 0; i < 20; i++) {
      const local = options.state().get(key);
      if (local === undefined) return; // deleted meanwhile
      const record = decodeJobRecord(local.value, key);
      const claim = record.claim;
      if (
        !claim || claim.occurrenceMs !== occurrenceMs || claim.attempt !== attempt ||
        claim.node !== options.self
      ) {
        if (i < 3) {
          await sleep(20); // the claim may not be applied here yet
          continue;
        }
        return; // another leader took the occurrence over
      }
      delete record.claim;
      pushHistory(record, entry);
      record.fired++;
      if (record.target.kind === "machine") {
        try {
          await options.kv.write({ type: "delete", key, ifRevision: local.modRevision }, {
            timeoutMs: 5_000,
          });
          return;
        } catch (e) {
          if (!compareFailed(e)) throw e;
          continue;
        }
      }
      record.nextAtMs = followingOccurrence(record, occurrenceMs);
      try {
        await options.kv.write({
          type: "put",
          key,
          value: encodeJobRecord(record),
          ifRevision: local.modRevision,
        }, {
          timeoutMs: 5_000,
        });
        return;
      } catch (e) {
        if (!compareFailed(e)) throw e;
        await sleep(10);
      }
    }
  };

  /** Read-modify-write of a job record by compare-and-set, retried on a concurrent change. */
  const update = async (
    group: string,
    name: string,
    change: (record: JobRecord) => JobRecord | undefined,
  ) => {
    const key = jobKey(group, name);
    for (let i = 0; i < 10; i++) {
      const entry = await options.kv.get(key, { consistent: i === 0 ? false : true, timeoutMs: 5_000 });
      if (entry === undefined) throw notFound(group, name);
      const record = change(decodeJobRecord(entry.value, key));
      if (record === undefined) return decodeJobRecord(entry.value, key);
      try {
        await options.kv.write({
          type: "put",
          key,
          value: encodeJobRecord(record),
          ifRevision: entry.modRevision,
        }, {
          timeoutMs: 5_000,
        });
        return record;
      } catch (e) {
        if (!compareFailed(e)) throw e;
      }
    }
    throw new AetherError("conflict", `job ${group}/${name} changes too often to update; try again`);
  };

  const countOfGroup = (group: string) => {
    const prefix = jobsOfGroupPrefix(group);
    let n = 0;
    for (const key of jobs.keys()) if (key.startsWith(prefix)) n++;
    return n;
  };

  /** A group's cron jobs may fire at most MAX_GROUP_FIRES_PER_SECOND times a second together. */
  const checkRate = (record: JobRecord, key: string) => {
    if (record.source === "machine" || record.cron === undefined) return;
    const prefix = jobsOfGroupPrefix(record.group);
    let rate = fireRatePerSecond(record);
    for (const [other, tracked] of jobs) {
      if (other !== key && other.startsWith(prefix) && !tracked.record.paused) {
        rate += fireRatePerSecond(tracked.record);
      }
    }
    if (rate > MAX_GROUP_FIRES_PER_SECOND) {
      throw new AetherError(
        "overloaded",
        `group ${record.group}'s jobs would fire ${rate.toFixed(1)} times a second together, more than ` +
          `${MAX_GROUP_FIRES_PER_SECOND} (each fire is two consensus writes)`,
        { errorName: "TooManyFires", field: "cron" },
      );
    }
  };

  const write = async (record: JobRecord, replace: boolean) => {
    const key = jobKey(record.group, record.name);
    checkRate(record, key);
    if (!replace || !jobs.has(key)) {
      if (jobs.size >= MAX_JOBS) {
        throw new AetherError("overloaded", `the cluster holds ${MAX_JOBS} jobs, the most it may`);
      }
      if (record.source !== "machine" && countOfGroup(record.group) >= MAX_JOBS_PER_GROUP) {
        throw new AetherError(
          "overloaded",
          `group ${record.group} holds ${MAX_JOBS_PER_GROUP} jobs, the most it may`,
          {
            errorName: "TooManyJobs",
          },
        );
      }
    }
    try {
      if (replace) {
        await options.kv.write({ type: "put", key, value: encodeJobRecord(record) }, { timeoutMs: 5_000 });
      } else {
        await options.kv.write({ type: "put", key, value: encodeJobRecord(record), ifRevision: 0 }, {
          timeoutMs: 5_000,
        });
      }
    } catch (e) {
      if (compareFailed(e)) {
        throw new AetherError(
          "conflict",
          `job ${record.group}/${record.name} exists (replace: true replaces it)`,
          {
            errorName: "JobExists",
          },
        );
      }
      throw e;
    }
  };

  const scheduler: Scheduler = {
    serve: (call) => serve(scheduler, call),
    async create(group, name, spec, source) {
      const record = jobFromSpec(group, name, spec, source, Date.now());
      await write(record, spec.replace === true);
      return record;
    },
    async createInternal(group, name, atMs, target) {
      const record: JobRecord = {
        group,
        name,
        atMs,
        target,
        misfire: "catchup",
        misfireGraceMs: DEFAULT_MISFIRE_GRACE_MS,
        paused: false,
        source: "machine",
        createdAtMs: Date.now(),
        nextAtMs: atMs,
        fired: 0,
        history: [],
      };
      await write(record, true);
    },
    get: (group, name) => jobs.get(jobKey(group, name))?.record,
    list: (group) => {
      const prefix = group === undefined ? JOBS_PREFIX : jobsOfGroupPrefix(group);
      return [...jobs.entries()].filter(([key]) => key.startsWith(prefix)).map(([, t]) => t.record);
    },
    setPaused: (group, name, paused) =>
      update(group, name, (record) => {
        if (record.paused === paused) return undefined;
        record.paused = paused;
        // Resuming skips what was missed while paused: the next occurrence from now on.
        if (
          !paused && record.cron !== undefined && record.nextAtMs !== null && record.nextAtMs < Date.now()
        ) {
          record.nextAtMs = nextOccurrence(record.cron, record.tz, Date.now());
        }
        return record;
      }),
    async remove(group, name) {
      const key = jobKey(group, name);
      const outcome = await options.kv.write({ type: "delete", key }, { timeoutMs: 5_000 });
      return (outcome.deleted ?? 0) > 0;
    },
    async runNow(group, name) {
      const key = jobKey(group, name);
      const entry = await options.kv.get(key, { consistent: true, timeoutMs: 5_000 });
      if (entry === undefined) throw notFound(group, name);
      const job = decodeJobRecord(entry.value, key);
      const firedAtMs = Date.now();
      const history: JobHistoryEntry = {
        occurrenceMs: firedAtMs,
        firedAtMs,
        outcome: "manual",
        attempt: 1,
        node: options.self,
      };
      let result: { ok: boolean; value?: unknown; error?: unknown };
      try {
        const outcome = await callTarget(job, firedAtMs, 1);
        result = outcome.ok ? { ok: true, value: outcome.value } : { ok: false, error: outcome.error };
        if (!outcome.ok) history.error = errorText(outcome.error);
      } catch (e) {
        result = { ok: false, error: errorText(e) };
        history.error = errorText(e);
      }
      history.durationMs = Date.now() - firedAtMs;
      await update(group, name, (record) => {
        pushHistory(record, history);
        return record;
      }).catch((e) => log.debug("manual run not recorded", { key, error: errorText(e) }));
      return result;
    },
    onMachineTimeout(handler) {
      machineTimeout = handler;
    },
    stats: () => ({ jobs: jobs.size, firing: firing.size, fired: firedHere, leading: options.isLeader() }),
    stop() {
      clearInterval(timer);
      clearInterval(reconcileTimer);
      offEvents();
      offReset();
    },
  };
  return scheduler;
}

function notFound(group: string, name: string): AetherError {
  return new AetherError("not_found", `no job ${name} in group ${group}`, { errorName: "JobNotFound" });
}

/** A job as callers see it. */
export function jobView(record: JobRecord) {
  return {
    group: record.group,
    name: record.name,
    schedule: record.cron !== undefined
      ? `cron ${record.cron}${record.tz ? ` ${record.tz}` : ""}`
      : `at ${new Date(record.atMs!).toISOString()}`,
    ...(record.cron !== undefined ? { cron: record.cron } : { atMs: record.atMs }),
    ...(record.tz ? { tz: record.tz } : {}),
    target: record.target,
    misfire: record.misfire,
    misfireGraceMs: record.misfireGraceMs,
    paused: record.paused,
    source: record.source,
    createdAtMs: record.createdAtMs,
    nextAtMs: record.nextAtMs,
    ...(record.claim ? { claim: record.claim } : {}),
    fired: record.fired,
    lastRun: record.history.at(-1) ?? null,
  };
}

async function serve(scheduler: Scheduler, call: ServiceCall): Promise<unknown> {
  const name = call.payload.job;
  if (typeof name !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(name)) {
    throw new AetherError(
      "bad_request",
      `scheduler.${call.method}: job must be 1-128 of A-Z a-z 0-9 . _ : @ -, got ${JSON.stringify(name)}`,
      { field: "job" },
    );
  }
  switch (call.method) {
    case "schedule": {
      const spec = { ...call.payload } as JobSpec & { job?: unknown };
      delete spec.job;
      // Default target: the calling slice itself (its coordinates, set by the host, when the call carries them).
      const from = (call as { from?: string }).from;
      if (spec.slice === undefined && typeof from === "string") {
        spec.slice = from.split(":").slice(0, 2).join(":");
      }
      return jobView(await scheduler.create(call.group, name, spec, "slice"));
    }
    case "get": {
      const job = scheduler.get(call.group, name);
      return job === undefined ? null : jobView(job);
    }
    case "pause":
      return jobView(await scheduler.setPaused(call.group, name, true));
    case "resume":
      return jobView(await scheduler.setPaused(call.group, name, false));
    case "delete":
      return await scheduler.remove(call.group, name);
    case "run":
      return await scheduler.runNow(call.group, name);
    case "history": {
      const job = scheduler.get(call.group, name);
      if (job === undefined) throw notFound(call.group, name);
      return job.history;
    }
  }
  throw new AetherError("not_found", `scheduler has no method "${call.method}"`);
}

/**
 * The catalog row. Calls reach the bundled slice (infra/scheduler/slice.ts, `aether.infra:scheduler`) through
 * the invoker, and the slice reaches the Scheduler its node started (services.ts `kvServed`) through
 * `@service-host`; while the slice is not deployed the node answers them itself. Firing is the leader's.
 */
export const SCHEDULER_SERVICE: InfraService = {
  name: "scheduler",
  version: "1.0.0",
  description: "cron and one-off jobs calling a slice method, fired once per occurrence across the cluster",
  methods: ["schedule", "get", "pause", "resume", "delete", "run", "history"],
};
