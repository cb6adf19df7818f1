/**
 * The node feature "rollouts": on the leader, runs the rollout reducer (rollout.ts) for every unfinished
 * rollout whenever the replicated state changes, leadership starts, or a rollout's wake-up time passes; submits
 * its transactions (one in flight per slice) and publishes each step on the event bus. Other nodes do nothing:
 * everything a new leader needs is in KV.
 */

import type { Clock, Logger, NodeId } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvEvent } from "../kv/mod.ts";
import {
  decodeValue,
  type InstanceRecord,
  isRolloutFinished,
  KEY_PREFIXES,
  kvKeys,
  LEADER_KEY,
  parseKey,
  type RolloutRecord,
  type RoutingRecord,
  type TargetRecord,
} from "../model/mod.ts";
import type { KvReader } from "../deployment/mod.ts";
import { type RolloutEvent, stepRollout, type VersionCounts, type Versioned } from "./rollout.ts";
import { type RolloutMetrics, RolloutWindows } from "./rollout_metrics.ts";

/** Where steps are published (the node's event bus; optional so the reducer runs without one). */
export interface RolloutEventSink {
  publish(
    event: { type: string; subject: string; details: Record<string, string | number | boolean> },
  ): unknown;
}

export interface RolloutFeatureOptions {
  log: Logger;
  clock: Clock;
  kv: Pick<KvAccess, "write">;
  state(): KvReader;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  isLeader(): boolean;
  onLeadership(listener: (leading: boolean) => void): () => void;
  isConnected(node: NodeId): boolean;
  /** The analysis input (absent: canary analyses wait for metrics). */
  rolloutMetrics?: RolloutMetrics;
  events?: RolloutEventSink;
  /** The alert rules with an alert firing now (the alert board); absent: `analysis.alerts` never fails. */
  firingRules?(): ReadonlySet<string>;
}

export interface RolloutFeature {
  readonly name: "rollouts";
  status(): { leading: boolean; active: number; writesInFlight: number; writesFailed: number };
  stop(): Promise<void>;
}

/** Instances in these states occupy capacity but do not serve. FAILED ones are not counted at all. */
const ACTIVE_STATE = "ACTIVE";

export function startRollouts(options: RolloutFeatureOptions): RolloutFeature {
  return new RolloutDriver(options);
}

class RolloutDriver implements RolloutFeature {
  readonly name = "rollouts";
  readonly #o: RolloutFeatureOptions;
  readonly #log: Logger;
  readonly #windows: RolloutWindows;
  readonly #inFlight = new Set<string>();
  readonly #unsubscribe: Array<() => void> = [];
  #active = 0;
  #writesFailed = 0;
  #scheduled: ReturnType<typeof setTimeout> | undefined;
  #wake: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(options: RolloutFeatureOptions) {
    this.#o = options;
    this.#log = options.log.with({ component: "rollouts" });
    this.#windows = new RolloutWindows(options.rolloutMetrics);
    this.#unsubscribe.push(
      options.onEvents((events) => {
        if (events.some((e) => relevant(e.key))) this.#schedule();
      }),
      options.onReset(() => this.#schedule()),
      options.onLeadership(() => this.#schedule()),
    );
    this.#schedule();
  }

  status() {
    return {
      leading: this.#o.isLeader(),
      active: this.#active,
      writesInFlight: this.#inFlight.size,
      writesFailed: this.#writesFailed,
    };
  }

  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#scheduled);
    clearTimeout(this.#wake);
    for (const off of this.#unsubscribe) off();
    return Promise.resolve();
  }

  #schedule(): void {
    if (this.#stopped || this.#scheduled !== undefined) return;
    this.#scheduled = setTimeout(() => {
      this.#scheduled = undefined;
      try {
        this.#run();
      } catch (e) {
        this.#log.error("rollout step failed", { error: (e as Error).stack ?? String(e) });
        this.#wakeAt(this.#o.clock.now() + 1_000);
      }
    }, 0);
  }

  #wakeAt(atMs: number | undefined): void {
    clearTimeout(this.#wake);
    this.#wake = undefined;
    if (atMs === undefined || this.#stopped) return;
    const delayMs = Math.max(0, Math.ceil(atMs - this.#o.clock.now()));
    this.#wake = setTimeout(() => {
      this.#wake = undefined;
      this.#schedule();
    }, delayMs);
  }

  #run(): void {
    if (!this.#o.isLeader()) {
      this.#active = 0;
      this.#wakeAt(undefined);
      return;
    }
    const kv = this.#o.state();
    const leader = kv.get(LEADER_KEY);
    if (!leader) return;
    const rollouts = readRollouts(kv).filter((r) => !isRolloutFinished(r.record.phase));
    this.#active = rollouts.length;
    this.#windows.retain(new Set(rollouts.map((r) => r.slice)));
    if (rollouts.length === 0) {
      this.#wakeAt(undefined);
      return;
    }
    const counts = this.#counts(kv);
    const nowMs = this.#o.clock.now();
    let wakeAtMs = Infinity;
    for (const { slice, record, modRevision } of rollouts) {
      if (this.#inFlight.has(slice)) continue;
      const stepKey = `${record.step}/${record.stepStartedAt}`;
      const decision = stepRollout({
        slice,
        rollout: { record, modRevision },
        target: readVersioned<TargetRecord>(kv, kvKeys.target(slice), "target"),
        routing: readVersioned<RoutingRecord>(kv, kvKeys.routing(slice), "routing"),
        leaderRevision: leader.modRevision,
        counts: (version) => counts.get(`${slice}:${version}`) ?? { active: 0, present: 0 },
        window: (version) => this.#windows.window(slice, stepKey, version),
        ...(this.#o.firingRules ? { firingRules: this.#o.firingRules } : {}),
        nowMs,
      });
      if (decision.wakeAtMs !== undefined) wakeAtMs = Math.min(wakeAtMs, decision.wakeAtMs);
      if (decision.command) this.#submit(slice, decision.command, decision.events, decision.note);
    }
    this.#wakeAt(Number.isFinite(wakeAtMs) ? wakeAtMs : undefined);
  }

  #submit(
    slice: string,
    command: Parameters<KvAccess["write"]>[0],
    events: RolloutEvent[],
    note: string | undefined,
  ): void {
    this.#inFlight.add(slice);
    const submittedAt = this.#o.clock.now();
    this.#o.kv.write(command).then((outcome) => {
      if (outcome.succeeded === false) return; // a newer change came first: the next step sees it
      // How long the decision took to apply (a rollback's weights are in this very write).
      const appliedMs = Math.round((this.#o.clock.now() - submittedAt) * 10) / 10;
      if (note) this.#log.info(`rollout ${slice}: ${note} (applied in ${appliedMs} ms)`);
      for (const e of events) this.#publish(slice, { ...e, details: { ...e.details, appliedMs } });
    }).catch((e) => {
      this.#writesFailed++;
      this.#log.warn(`rollout ${slice}: write failed`, { error: (e as Error).message });
    }).finally(() => {
      this.#inFlight.delete(slice);
      this.#schedule();
    });
  }

  #publish(slice: string, event: RolloutEvent): void {
    try {
      this.#o.events?.publish({ type: `rollout.${event.type}`, subject: slice, details: event.details });
    } catch (e) {
      this.#log.warn("rollout event not published", { error: (e as Error).message });
    }
  }

  /** ACTIVE and present instances per `group:artifact:version`, on nodes the mesh reaches now. */
  #counts(kv: KvReader): Map<string, VersionCounts> {
    const counts = new Map<string, VersionCounts>();
    for (const entry of kv.range(KEY_PREFIXES.instances)) {
      const key = parseKey(entry.key);
      if (key.family !== "instance" || !this.#o.isConnected(key.node)) continue;
      let record: InstanceRecord;
      try {
        record = decodeValue("instance", entry.value);
      } catch {
        continue;
      }
      if (record.state === "FAILED") continue;
      const id = `${key.artifact.group}:${key.artifact.artifact}:${key.artifact.version}`;
      const c = counts.get(id) ?? { active: 0, present: 0 };
      if (!isDraining(record)) c.present++;
      if (record.state === ACTIVE_STATE && !record.retiring) c.active++;
      counts.set(id, c);
    }
    return counts;
  }
}

/** Being removed: it takes no new calls (its endpoints are withdrawn first) and will be gone. */
function isDraining(record: InstanceRecord): boolean {
  return record.retiring === true || record.state === "DEACTIVATE" || record.state === "DEACTIVATING" ||
    record.state === "UNLOAD" || record.state === "UNLOADING";
}

function relevant(key: string): boolean {
  return key.startsWith(KEY_PREFIXES.rollouts) || key.startsWith(KEY_PREFIXES.instances) ||
    key.startsWith(KEY_PREFIXES.targets) || key.startsWith(KEY_PREFIXES.routing) || key === LEADER_KEY;
}

/** Every rollout record (undecodable ones are skipped: the API never writes them). */
export function readRollouts(kv: Pick<KvReader, "range">): Array<
  { slice: string; record: RolloutRecord; modRevision: number }
> {
  const out: Array<{ slice: string; record: RolloutRecord; modRevision: number }> = [];
  for (const entry of kv.range(KEY_PREFIXES.rollouts)) {
    try {
      const key = parseKey(entry.key);
      if (key.family !== "rollout") continue;
      out.push({
        slice: `${key.slice.group}:${key.slice.artifact}`,
        record: decodeValue("rollout", entry.value),
        modRevision: entry.modRevision,
      });
    } catch {
      continue;
    }
  }
  return out;
}

function readVersioned<T>(
  kv: KvReader,
  key: string,
  family: "target" | "routing",
): Versioned<T> | undefined {
  const entry = kv.get(key);
  if (!entry) return undefined;
  try {
    return { record: decodeValue(family, entry.value) as T, modRevision: entry.modRevision };
  } catch {
    return undefined;
  }
}
