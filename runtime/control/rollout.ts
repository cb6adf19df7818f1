/**
 * The rollout reducer: the leader's side of progressive delivery, deterministic like the deployment managers.
 *
 * One rollout per slice lives in `rollouts/{g}:{a}`. Each `stepRollout` reads that record, the slice's target
 * and routing records, the instance counts of both versions, an analysis window and the time, and returns at
 * most one KV transaction (comparing the leader key and every key it read, so a deposed leader or a decision
 * over a newer operator change never applies) plus the time it wants to run again. It keeps no memory: a new
 * leader carries on from KV where the old one stood (only an analysis window restarts).
 *
 * The rollout moves traffic and capacity through what the deployment manager already honours
 * (runtime/invoke/README.md, "Version-weighted routing"): `routing/{g}:{a}` names the stable and the new
 * version, its weights split requests (HTTP and slice calls alike) and, for a rolling update, its instance
 * counts size each version; the target keeps naming the stable version until the rollout succeeds, when one
 * transaction names the new version in the target and removes the routing (the stable version is retired).
 *
 * - rolling: batches of `maxSurge` new instances (default 25%, at least 1 when `maxUnavailable` is 0); the
 *   stable version keeps `count − ACTIVE new − maxUnavailable` instances, so an old one goes only once a new
 *   one is ACTIVE; weights follow the ACTIVE counts.
 * - canary: once the new version runs at full count with no traffic, each `"N%"` step sets the weights and
 *   each `"pause 30s"` ends with an analysis of the window since the last change (success rate and p99 of the
 *   new version against the stable one); `failureLimit` failed analyses roll back: the weights return to the
 *   stable version in the same transaction that records the verdict. `"pause"` waits for `resume`/`promote`.
 * - blue-green: the new version runs at full count with no traffic (preview) until `promote` (or at once with
 *   `autoPromote`), which switches all traffic; the stable version stays `scaleDownDelayMs`, during which an
 *   abort switches back at once.
 */

import { type HistogramData, histogramQuantileMs } from "../core/mod.ts";
import type { KvCommand, KvCompare, KvOp } from "../kv/mod.ts";
import {
  budgetCount,
  encodeValue,
  isRolloutFinished,
  kvKeys,
  LEADER_KEY,
  MAX_ROLLOUT_VERDICTS,
  parseRolloutStep,
  type RolloutRecord,
  type RolloutVerdict,
  type RoutingRecord,
  type TargetRecord,
} from "../model/mod.ts";

/** A record as read, with the revision its writes compare. */
export interface Versioned<T> {
  record: T;
  modRevision: number;
}

/** Instances of one version on live nodes. */
export interface VersionCounts {
  /** ACTIVE (serving) instances. */
  active: number;
  /**
   * Instances starting or serving (not FAILED, not being drained): what the surge bound counts. A draining
   * instance takes no new calls and is on its way out, so the next batch starts while it finishes.
   */
  present: number;
}

/** Calls of one version over an analysis window, summed over its methods and the cluster's nodes. */
export interface WindowStats {
  calls: number;
  errors: number;
  latency: HistogramData;
}

export interface RolloutInput {
  slice: string;
  rollout: Versioned<RolloutRecord>;
  target: Versioned<TargetRecord> | undefined;
  routing: Versioned<RoutingRecord> | undefined;
  /** The leader key's modRevision (every write compares it). */
  leaderRevision: number;
  counts(version: string): VersionCounts;
  /**
   * What each version did since the current step started (undefined: no metrics yet). The driver measures
   * from the first reading it took in this step.
   */
  window(version: string): WindowStats | undefined;
  /** The alert rules with an alert firing now (absent: no alerts known; `analysis.alerts` then never fails). */
  firingRules?(): ReadonlySet<string>;
  nowMs: number;
  /** A rollout whose new instances make no progress this long rolls back (default PROGRESS_DEADLINE_MS). */
  progressDeadlineMs?: number;
}

/** How long a rollout waits for new instances to become ACTIVE before it rolls back. */
export const PROGRESS_DEADLINE_MS = 300_000;

/** Something that happened, for the event bus (`rollout.{type}`). */
export interface RolloutEvent {
  type: "started" | "step" | "paused" | "promoted" | "analysis" | "rolled-back" | "completed";
  details: Record<string, string | number | boolean>;
}

export interface RolloutDecision {
  /** The transaction to submit (absent: nothing to change now). */
  command?: KvCommand;
  /** The record as it will be once the command applies (the input's when nothing changes). */
  record: RolloutRecord;
  events: RolloutEvent[];
  /** Run again by then even when nothing changes. */
  wakeAtMs?: number;
  /** What it decided, in words (logs). */
  note?: string;
}

/** How often an unfinished rollout looks again while nothing changes (analysis windows, counts). */
export const ROLLOUT_TICK_MS = 1_000;

/** The transaction being built: compares on everything read, and the ops. */
class Txn {
  readonly compare = new Map<string, number>();
  readonly ops: KvOp[] = [];
  constructor(input: RolloutInput) {
    this.compare.set(LEADER_KEY, input.leaderRevision);
    this.compare.set(kvKeys.rollout(input.slice), input.rollout.modRevision);
    this.compare.set(kvKeys.target(input.slice), input.target?.modRevision ?? 0);
    this.compare.set(kvKeys.routing(input.slice), input.routing?.modRevision ?? 0);
  }
  command(): KvCommand {
    const compare: KvCompare[] = [...this.compare].map(([key, modRevision]) => ({ key, modRevision }));
    return { type: "txn", compare, success: this.ops, failure: [] };
  }
}

/** One step of one slice's rollout. Pure. */
export function stepRollout(input: RolloutInput): RolloutDecision {
  const record = input.rollout.record;
  if (isRolloutFinished(record.phase)) return { record, events: [] };
  const step = new Step(input);
  return step.run();
}

class Step {
  readonly #in: RolloutInput;
  readonly #txn: Txn;
  #record: RolloutRecord;
  readonly #events: RolloutEvent[] = [];
  #changed = false;
  #wakeAtMs: number | undefined;
  #note: string | undefined;

  constructor(input: RolloutInput) {
    this.#in = input;
    this.#txn = new Txn(input);
    this.#record = structuredClone(input.rollout.record);
  }

  run(): RolloutDecision {
    const r = this.#record;
    const target = this.#in.target?.record;
    if (!target) {
      this.#end("RolledBack", `${this.#in.slice} is no longer deployed`);
      if (this.#in.routing) this.#txn.ops.push({ op: "delete", key: kvKeys.routing(this.#in.slice) });
    } else if (r.phase === "RollingBack") {
      this.#rollBack(target);
    } else if (r.paused) {
      if (r.phase !== "Paused") {
        this.#set({ phase: "Paused", reason: "paused by an operator" });
        this.#event("paused", { by: "operator" });
      }
    } else if (target.version !== r.stableVersion) {
      this.#abort(`the target names ${target.version} now (deployed outside the rollout)`, target, false);
    } else if (r.strategy === "rolling") {
      this.#rolling(target);
    } else if (r.strategy === "canary") {
      this.#canary(target);
    } else {
      this.#blueGreen(target);
    }
    return this.#decision();
  }

  #decision(): RolloutDecision {
    if (this.#changed) {
      this.#record.updatedAt = this.#in.nowMs;
      this.#txn.ops.push({
        op: "put",
        key: kvKeys.rollout(this.#in.slice),
        value: encodeValue("rollout", this.#record),
      });
    }
    const finished = isRolloutFinished(this.#record.phase);
    const wakeAtMs = finished
      ? undefined
      : Math.min(this.#wakeAtMs ?? Infinity, this.#in.nowMs + ROLLOUT_TICK_MS);
    return {
      command: this.#txn.ops.length > 0 ? this.#txn.command() : undefined,
      record: this.#record,
      events: this.#events,
      wakeAtMs,
      note: this.#note,
    };
  }

  // ---- strategies ----

  #rolling(target: TargetRecord): void {
    const r = this.#record;
    const count = target.instances;
    const { surge, unavailable, budgetNote } = budgetedBatch(r, target);
    const fresh = this.#in.counts(r.newVersion);
    const stable = this.#in.counts(r.stableVersion);
    if (fresh.active >= count && stable.present === 0) {
      this.#succeed(target, `${count} instance(s) of ${r.newVersion} ACTIVE, ${r.stableVersion} retired`);
      return;
    }
    if (Math.min(fresh.active, count) === r.step && this.#stalled(target, `${fresh.active}/${count}`)) return;
    const oldInstances = Math.max(0, count - fresh.active - unavailable);
    const newInstances = Math.min(count, Math.max(0, count + surge - stable.present));
    const oldWeight = stable.active === 0 && fresh.active === 0 ? 1 : stable.active;
    this.#route({ oldWeight, newWeight: fresh.active, oldInstances, newInstances });
    const batch = Math.min(fresh.active, count);
    if (batch !== r.step) {
      this.#set({ step: batch, stepStartedAt: this.#in.nowMs });
      this.#event("step", { newActive: fresh.active, stableActive: stable.active, of: count });
    }
    this.#waitReason(
      `${fresh.active}/${count} ${r.newVersion} ACTIVE, ${stable.present} ${r.stableVersion} left ` +
        `(maxSurge ${surge}, maxUnavailable ${unavailable}${budgetNote})`,
    );
  }

  #canary(target: TargetRecord): void {
    const r = this.#record;
    if (!this.#ready(target)) return;
    if (r.promote || r.step >= r.steps.length) {
      this.#finishSwitched(target, r.promote ? "promoted by an operator" : "every step passed");
      return;
    }
    const current = parseRolloutStep(r.steps[r.step], `steps[${r.step}]`);
    if (current.kind === "weight") {
      this.#route({ oldWeight: 100 - current.percent, newWeight: current.percent });
      this.#event("step", { step: r.step, weight: current.percent });
      this.#advance(`weight ${current.percent}% to ${r.newVersion}`);
      return;
    }
    if (current.durationMs === undefined) {
      if (r.phase !== "Paused") {
        this.#set({ phase: "Paused", reason: `step ${r.step} "pause": waiting for resume or promote` });
        this.#event("paused", { step: r.step });
      }
      return;
    }
    if (r.phase === "Paused") this.#set({ phase: "Progressing", reason: undefined });
    const endsAt = r.stepStartedAt + current.durationMs;
    if (this.#in.nowMs < endsAt) {
      this.#wakeAtMs = endsAt;
      return;
    }
    this.#analyse(target, () => this.#advance(`analysis passed at step ${r.step}`));
  }

  #blueGreen(target: TargetRecord): void {
    const r = this.#record;
    if (r.step === 0) {
      if (!this.#ready(target)) return;
      if (!r.promote && !r.autoPromote) {
        if (r.phase !== "Paused") {
          this.#set({
            phase: "Paused",
            reason: `${r.newVersion} is ready with no traffic; promote to switch`,
          });
          this.#event("paused", { step: 0 });
        }
        return;
      }
      this.#route({ oldWeight: 0, newWeight: 1 });
      this.#set({
        step: 1,
        stepStartedAt: this.#in.nowMs,
        switchedAt: this.#in.nowMs,
        phase: "Progressing",
        promote: undefined,
        reason: `switched to ${r.newVersion}; ${r.stableVersion} stays ${r.scaleDownDelayMs} ms`,
      });
      this.#event("promoted", { to: r.newVersion });
      return;
    }
    const endsAt = (r.switchedAt ?? r.stepStartedAt) + r.scaleDownDelayMs;
    if (this.#in.nowMs < endsAt) {
      this.#wakeAtMs = endsAt;
      return;
    }
    this.#finishSwitched(target, `${r.stableVersion} kept for ${r.scaleDownDelayMs} ms after the switch`);
  }

  // ---- shared steps ----

  /**
   * Canary and blue-green start with the new version at full count and no traffic; true once its instances
   * are ACTIVE (the weights then move traffic without waiting for capacity).
   */
  #ready(target: TargetRecord): boolean {
    const r = this.#record;
    if (!this.#in.routing || !namesBoth(this.#in.routing.record, r)) {
      this.#route({ oldWeight: 1, newWeight: 0 });
    }
    const active = this.#in.counts(r.newVersion).active;
    if (active >= target.instances) return true;
    // Only the first bring-up has a deadline: later (a node died, say) the deployment manager replaces the
    // missing instances while the rollout waits, however long it has been paused.
    const firstBringUp = r.step === 0 && r.phase !== "Paused";
    if (firstBringUp && this.#stalled(target, `${active}/${target.instances}`)) return false;
    this.#waitReason(`starting ${r.newVersion}: ${active}/${target.instances} ACTIVE, no traffic yet`);
    return false;
  }

  /**
   * True (and rolled back) when the new version made no progress within the deadline since the step started:
   * a version that never activates (it fails to load, or backs off) must not hold the slice forever.
   */
  #stalled(target: TargetRecord, progress: string): boolean {
    const r = this.#record;
    const deadlineMs = this.#in.progressDeadlineMs ?? PROGRESS_DEADLINE_MS;
    if (this.#in.nowMs - r.stepStartedAt <= deadlineMs) {
      this.#wakeAtMs = Math.min(this.#wakeAtMs ?? Infinity, r.stepStartedAt + deadlineMs + 1);
      return false;
    }
    const backoff = target.routedBackoff?.version === r.newVersion ? target.routedBackoff : undefined;
    const why = backoff?.lastReason ? `; last failure: ${backoff.lastReason}` : "";
    this.#abort(
      `${r.newVersion} made no progress for ${Math.round(deadlineMs / 1000)} s (${progress} ACTIVE)${why}`,
      target,
      true,
    );
    return true;
  }

  /** Analysis of the window since the step started: a verdict, then `passed` or a failure. */
  #analyse(target: TargetRecord, passed: () => void): void {
    const r = this.#record;
    const firing = firingOf(r.analysis.alerts, this.#in.firingRules?.());
    const verdict = firing.length > 0
      ? alertVerdict(r, firing, this.#in.nowMs)
      : analyse(r, this.#in.window(r.newVersion), this.#in.window(r.stableVersion), this.#in.nowMs);
    if (verdict === undefined) {
      this.#waitReason(`step ${r.step}: waiting for ${r.analysis.minRequests} calls of ${r.newVersion}`);
      return;
    }
    this.#set({ verdicts: [...r.verdicts, verdict].slice(-MAX_ROLLOUT_VERDICTS) });
    this.#event("analysis", { step: r.step, ok: verdict.ok, reason: verdict.reason });
    if (verdict.ok) {
      passed();
      return;
    }
    const failures = r.failures + 1;
    this.#set({ failures, stepStartedAt: this.#in.nowMs });
    if (failures >= r.analysis.failureLimit) {
      this.#abort(`analysis failed ${failures} time(s): ${verdict.reason}`, target, true);
    }
  }

  #advance(why: string): void {
    this.#set({ step: this.#record.step + 1, stepStartedAt: this.#in.nowMs, phase: "Progressing" });
    this.#note = why;
    this.#changed = true;
  }

  /** Traffic is all on the new version at full count: make it the target and retire the stable one. */
  #finishSwitched(target: TargetRecord, why: string): void {
    const r = this.#record;
    const active = this.#in.counts(r.newVersion).active;
    if (active < target.instances) {
      this.#route({ oldWeight: 1, newWeight: 1 });
      this.#waitReason(`promoting: ${active}/${target.instances} ${r.newVersion} ACTIVE`);
      return;
    }
    this.#succeed(target, why);
  }

  #succeed(target: TargetRecord, why: string): void {
    const r = this.#record;
    const next: TargetRecord = { ...target, version: r.newVersion, updatedAt: this.#in.nowMs };
    delete next.routedBackoff;
    this.#txn.ops.push({ op: "put", key: kvKeys.target(this.#in.slice), value: encodeValue("target", next) });
    if (this.#in.routing) this.#txn.ops.push({ op: "delete", key: kvKeys.routing(this.#in.slice) });
    this.#end("Succeeded", why);
    this.#event("completed", { version: r.newVersion });
  }

  /**
   * Rolls back: canary and blue-green put all traffic on the stable version in this very transaction (the
   * new instances are retired in the next step); a rolling update gives the stable version its full count
   * back and lets the deployment manager retire the new one as the stable one becomes ACTIVE.
   */
  #abort(reason: string, target: TargetRecord, automatic: boolean): void {
    const r = this.#record;
    if (target.version !== r.stableVersion || r.strategy === "rolling") {
      if (this.#in.routing) this.#txn.ops.push({ op: "delete", key: kvKeys.routing(this.#in.slice) });
      this.#end("RolledBack", reason);
    } else {
      this.#route({ oldWeight: 1, newWeight: 0 });
      this.#set({ phase: "RollingBack", reason });
      this.#note = `rolling back, all traffic to ${r.stableVersion}: ${reason}`;
    }
    this.#event("rolled-back", { reason, automatic });
  }

  /** RollingBack (set by an abort): traffic to the stable version, then the routing goes. */
  #rollBack(target: TargetRecord): void {
    const r = this.#record;
    const routing = this.#in.routing?.record;
    if (routing && namesBoth(routing, r) && routing.newWeight > 0 && r.strategy !== "rolling") {
      this.#route({ oldWeight: 1, newWeight: 0 });
      this.#event("rolled-back", { reason: r.reason ?? "aborted", automatic: false });
      return;
    }
    if (routing) this.#txn.ops.push({ op: "delete", key: kvKeys.routing(this.#in.slice) });
    if (target.version !== r.stableVersion) {
      const next: TargetRecord = { ...target, version: r.stableVersion, updatedAt: this.#in.nowMs };
      this.#txn.ops.push({
        op: "put",
        key: kvKeys.target(this.#in.slice),
        value: encodeValue("target", next),
      });
    }
    this.#end("RolledBack", r.reason ?? "aborted");
  }

  /** Writes `routing/` naming stable (old) and new with these weights, when it differs from what is stored. */
  #route(w: { oldWeight: number; newWeight: number; oldInstances?: number; newInstances?: number }): void {
    const r = this.#record;
    const stored = this.#in.routing?.record;
    const wanted: RoutingRecord = {
      oldVersion: r.stableVersion,
      newVersion: r.newVersion,
      oldWeight: w.oldWeight,
      newWeight: w.newWeight,
      updatedAt: this.#in.nowMs,
      ...(w.oldInstances !== undefined ? { oldInstances: w.oldInstances } : {}),
      ...(w.newInstances !== undefined ? { newInstances: w.newInstances } : {}),
    };
    if (stored && sameRouting(stored, wanted)) return;
    this.#txn.ops.push({
      op: "put",
      key: kvKeys.routing(this.#in.slice),
      value: encodeValue("routing", wanted),
    });
  }

  #end(phase: "Succeeded" | "RolledBack", reason: string): void {
    this.#set({ phase, reason, endedAt: this.#in.nowMs, promote: undefined, paused: undefined });
    this.#note = `${phase}: ${reason}`;
  }

  #waitReason(reason: string): void {
    if (this.#record.reason !== reason) this.#set({ reason });
  }

  #set(changes: Partial<RolloutRecord>): void {
    for (const [name, value] of Object.entries(changes)) {
      const key = name as keyof RolloutRecord;
      if (value === undefined) {
        if (key in this.#record) delete this.#record[key];
        else continue;
      } else (this.#record as unknown as Record<string, unknown>)[key] = value;
      this.#changed = true;
    }
  }

  #event(type: RolloutEvent["type"], details: RolloutEvent["details"]): void {
    this.#events.push({ type, details: { strategy: this.#record.strategy, ...details } });
  }
}

/**
 * The rolling batch within the slice's disruption budget: `maxUnavailable` never lets ACTIVE instances fall
 * below `minAvailable` (the note says when the budget held it back).
 */
export function budgetedBatch(
  r: RolloutRecord,
  target: TargetRecord,
): { surge: number; unavailable: number; budgetNote: string } {
  const count = target.instances;
  const batch = rollingBatch(r.maxSurge, r.maxUnavailable, count);
  const allowed = Math.max(0, count - budgetCount(target.minAvailable, count));
  if (batch.unavailable <= allowed) return { ...batch, budgetNote: "" };
  return {
    surge: Math.max(batch.surge, allowed === 0 ? 1 : 0),
    unavailable: allowed,
    budgetNote: `; the disruption budget minAvailable ${target.minAvailable} holds it at ${allowed}`,
  };
}

/** `maxSurge`/`maxUnavailable` as counts for `count` instances (surge rounds up, unavailable down). */
export function rollingBatch(
  maxSurge: string,
  maxUnavailable: string,
  count: number,
): { surge: number; unavailable: number } {
  const resolve = (text: string, round: (x: number) => number) =>
    text.endsWith("%") ? round((Number(text.slice(0, -1)) / 100) * count) : Number(text);
  const unavailable = Math.min(count, resolve(maxUnavailable, Math.floor));
  let surge = resolve(maxSurge, Math.ceil);
  // Neither extra nor missing instances allowed would never move: one at a time above the count.
  if (surge === 0 && unavailable === 0) surge = 1;
  return { surge, unavailable };
}

/**
 * The verdict of one analysis: the new version's success rate against `minSuccessRate`, and its p99 against
 * `maxP99Ms` or `maxP99Factor` × the stable version's p99 (a limit never below the stable p99 +
 * `p99ToleranceMs`). Undefined while the new version has fewer than
 * `minRequests` calls in the window (no verdict yet).
 */
/** Calls of the new version a p99 is judged on at least (fewer: only the success rate is judged). */
export const P99_MIN_CALLS = 100;

export function analyse(
  r: RolloutRecord,
  fresh: WindowStats | undefined,
  stable: WindowStats | undefined,
  nowMs: number,
): RolloutVerdict | undefined {
  const a = r.analysis;
  if (!fresh || fresh.calls < Math.max(1, a.minRequests)) return undefined;
  const successRate = (fresh.calls - fresh.errors) / fresh.calls;
  const p99Ms = histogramQuantileMs(fresh.latency, 0.99);
  const stableP99Ms = stable ? histogramQuantileMs(stable.latency, 0.99) : undefined;
  const problems: string[] = [];
  const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
  if (successRate < a.minSuccessRate) {
    problems.push(`success rate ${pct(successRate)} < ${pct(a.minSuccessRate)}`);
  }
  const limitMs = a.maxP99Ms ??
    (stableP99Ms !== undefined
      ? Math.max(stableP99Ms * a.maxP99Factor, stableP99Ms + (a.p99ToleranceMs ?? 0))
      : undefined);
  // A p99 of fewer than 100 calls is their slowest call (in the e2e run: one cold call of a fresh instance,
  // 67 ms against 13 ms), so the latency check waits for enough calls; the success rate is judged at once.
  const judgeLatency = fresh.calls >= P99_MIN_CALLS;
  if (judgeLatency && p99Ms !== undefined && limitMs !== undefined && p99Ms > limitMs) {
    problems.push(`p99 ${p99Ms.toFixed(1)} ms > ${limitMs.toFixed(1)} ms`);
  }
  const ok = problems.length === 0;
  const measured = `${fresh.calls} calls, success ${pct(successRate)}, p99 ${p99Ms?.toFixed(1) ?? "-"} ms` +
    (stableP99Ms !== undefined ? ` (stable p99 ${stableP99Ms.toFixed(1)} ms)` : "") +
    (judgeLatency ? "" : `; p99 not judged below ${P99_MIN_CALLS} calls`);
  return {
    step: r.step,
    at: nowMs,
    ok,
    reason: ok ? measured : `${problems.join("; ")} (${measured})`,
    requests: fresh.calls,
    successRate,
    ...(p99Ms !== undefined ? { p99Ms } : {}),
    ...(stableP99Ms !== undefined ? { stableP99Ms } : {}),
  };
}

/** The rules of `analysis.alerts` firing now, sorted. */
function firingOf(rules: readonly string[] | undefined, firing: ReadonlySet<string> | undefined): string[] {
  if (!rules || !firing) return [];
  return rules.filter((rule) => firing.has(rule)).sort();
}

/** A failed verdict at once for a step during which an alert of the analysis' rules fires. */
function alertVerdict(r: RolloutRecord, firing: readonly string[], nowMs: number): RolloutVerdict {
  return { step: r.step, at: nowMs, ok: false, reason: `alert firing: ${firing.join(", ")}` };
}

function namesBoth(routing: RoutingRecord, r: RolloutRecord): boolean {
  return routing.oldVersion === r.stableVersion && routing.newVersion === r.newVersion;
}

function sameRouting(a: RoutingRecord, b: RoutingRecord): boolean {
  return a.oldVersion === b.oldVersion && a.newVersion === b.newVersion && a.oldWeight === b.oldWeight &&
    a.newWeight === b.newWeight && a.oldInstances === b.oldInstances && a.newInstances === b.newInstances;
}
