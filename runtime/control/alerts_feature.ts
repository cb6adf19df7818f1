/**
 * The node feature "alerts".
 *
 * On every node, an `AlertBoard` keeps the alerts pending or firing now, from the `alert.*` events the leader
 * publishes everywhere (so any node answers GET /api/v1/alerts, and a new leader takes the alerts over).
 * On the leader, every EVALUATE_EVERY_MS: the rules in `thresholds/` are read from the replicated state,
 * evaluated (alerts.ts) over the cluster metrics snapshot and the instance records, each transition is
 * published as an event on every node's stream, and firing/resolved ones are delivered to Alertmanager and
 * webhooks (alerts_delivery.ts), firing ones re-sent every RESEND_EVERY_MS.
 */

import type { Clock, Logger } from "../core/mod.ts";
import { emptyHistogram, mergeHistogramInto } from "../core/mod.ts";
import type { KvEntry } from "../kv/mod.ts";
import {
  type AlertRuleRecord,
  decodeEntry,
  KEY_PREFIXES,
  kvKeys,
  MAX_ALERT_RULES,
  parseKey,
} from "../model/mod.ts";
import type { ClusterEvent, ClusterSnapshot, EventBus, MetricsView } from "../metrics/mod.ts";
import {
  type AlertChange,
  AlertEvaluator,
  type AlertSeries,
  type AlertView,
  type SliceCounters,
} from "./alerts.ts";
import { AlertDelivery, type DeliveryTargetStats, RESEND_EVERY_MS } from "./alerts_delivery.ts";

export const EVALUATE_EVERY_MS = 1_000;
/**
 * The mesh channel on which the leader hands a member that (re)connects the alerts pending and firing now:
 * a member that restarted missed the events, and without them its board would be empty (and, were it to
 * become leader, it would fire them again).
 */
export const ALERTS_SYNC_CHANNEL = "alerts";
/** Alerts one sync message carries at most (one per rule and node; rules are bounded too). */
export const MAX_SYNCED_ALERTS = 10_000;
/** Resolved alerts the board remembers (newest first) for GET /api/v1/alerts?resolved=true. */
export const MAX_RECENT_RESOLVED = 100;
const ALERT_EVENT_TYPES = ["alert.pending", "alert.firing", "alert.resolved", "alert.cleared"];

/** What the feature reads of the replicated state. */
export interface StateReader {
  get(key: string): KvEntry | undefined;
  range(prefix: string): KvEntry[];
}

export interface AlertsFeatureOptions {
  log: Logger;
  /** Epoch-ms clock. */
  clock: Clock;
  events: EventBus;
  state(): StateReader;
  isLeader(): boolean;
  onLeadership(listener: (leading: boolean) => void): () => void;
  /** The cluster metrics (absent: only instance rules can be evaluated). */
  metrics?: Pick<MetricsView, "snapshot">;
  alertmanagers?: readonly string[];
  webhooks?: readonly string[];
  evaluateEveryMs?: number;
  /** For the webhook and Alertmanager retries (tests make them short). */
  firstRetryMs?: number;
  /** For ALERTS_SYNC_CHANNEL (absent: no sync; a member's board then fills from the events alone). */
  mesh?: {
    send(to: string, channel: string, message: unknown): boolean;
    onMessage(channel: string, handler: (from: string, message: unknown) => void): () => void;
  };
}

export interface RuleView extends AlertRuleRecord {
  name: string;
  expr: string;
}

export interface AlertsFeature {
  readonly name: "alerts";
  board: AlertBoard;
  status(): { leading: boolean; rules: number; active: number; delivery: DeliveryTargetStats[] };
  stop(): Promise<void>;
}

/** The alerts pending and firing in the cluster, as the leader's events said (see the file header). */
export class AlertBoard {
  readonly #active = new Map<string, AlertView>();
  readonly #resolved: (AlertView & { resolvedAt: number })[] = [];
  readonly #subscription: { close(): void };

  constructor(events: EventBus) {
    this.#subscription = events.subscribe((event) => this.#apply(event), ALERT_EVENT_TYPES);
  }

  active(): AlertView[] {
    return [...this.#active.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  recentlyResolved(): (AlertView & { resolvedAt: number })[] {
    return [...this.#resolved];
  }

  /** Takes the leader's list of what is pending and firing now (a member that missed the events). */
  replace(alerts: readonly AlertView[]): void {
    this.#active.clear();
    for (const alert of alerts) this.#active.set(alert.id, alert);
  }

  close(): void {
    this.#subscription.close();
  }

  #apply(event: ClusterEvent): void {
    const alert = event.details.alert as unknown as AlertView | undefined;
    if (!alert || typeof alert.id !== "string") return;
    if (event.type === "alert.pending" || event.type === "alert.firing") {
      this.#active.set(alert.id, alert);
      return;
    }
    this.#active.delete(alert.id);
    if (event.type === "alert.resolved") {
      this.#resolved.unshift({ ...alert, resolvedAt: event.time });
      this.#resolved.length = Math.min(this.#resolved.length, MAX_RECENT_RESOLVED);
    }
  }
}

/** Every rule in `thresholds/`, decoded (a record that does not decode is skipped and logged once). */
export function readRules(state: StateReader, log?: Logger): Map<string, AlertRuleRecord> {
  const rules = new Map<string, AlertRuleRecord>();
  for (const entry of state.range(KEY_PREFIXES.thresholds)) {
    if (rules.size >= MAX_ALERT_RULES) break;
    try {
      const decoded = decodeEntry(entry.key, entry.value);
      if (decoded.family === "threshold") rules.set(decoded.key.metric, decoded.value);
    } catch (e) {
      log?.warn("alerts: skipped a rule that does not decode", {
        key: entry.key,
        error: (e as Error).message,
      });
    }
  }
  return rules;
}

/** The evaluator's inputs from a cluster snapshot and the replicated state. */
export function snapshotSeries(snapshot: ClusterSnapshot | undefined, state: StateReader): AlertSeries {
  return {
    sliceCounters(slice: string, method: string | undefined): SliceCounters | undefined {
      if (!snapshot) return undefined;
      let found = false;
      const total: SliceCounters = { latency: emptyHistogram(), calls: 0, errors: 0 };
      for (const version of snapshot.slices) {
        if (version.artifact !== slice) continue;
        for (const m of version.methods) {
          if (method !== undefined && m.method !== method) continue;
          found = true;
          mergeHistogramInto(total.latency, m.latency);
          total.calls += m.calls;
          for (const count of Object.values(m.errors)) total.errors += count;
        }
      }
      return found ? total : undefined;
    },
    nodes() {
      if (!snapshot) return [];
      return snapshot.nodes.filter((n) => !n.stale).map((n) => ({
        node: n.node,
        cpuShare: n.process.cpuShare,
        rssBytes: n.process.rssBytes,
      }));
    },
    instances(slice: string) {
      let target;
      try {
        const entry = state.get(kvKeys.target(slice));
        const decoded = entry && decodeEntry(entry.key, entry.value);
        target = decoded?.family === "target" ? decoded.value : undefined;
      } catch {
        return undefined;
      }
      if (!target) return undefined;
      let active = 0;
      for (const entry of state.range(KEY_PREFIXES.instances)) {
        const key = parseKey(entry.key);
        if (key.family !== "instance" || `${key.artifact.group}:${key.artifact.artifact}` !== slice) continue;
        const decoded = decodeEntry(entry.key, entry.value);
        if (decoded.family === "instance" && decoded.value.state === "ACTIVE") active++;
      }
      return { active, desired: target.instances };
    },
  };
}

export function startAlerts(options: AlertsFeatureOptions): AlertsFeature {
  return new AlertsDriver(options);
}

class AlertsDriver implements AlertsFeature {
  readonly name = "alerts";
  readonly board: AlertBoard;
  readonly #o: AlertsFeatureOptions;
  readonly #log: Logger;
  readonly #delivery: AlertDelivery;
  readonly #offLeadership: () => void;
  readonly #offSync: (() => void)[] = [];
  #evaluator?: AlertEvaluator;
  #timer?: ReturnType<typeof setInterval>;
  #lastResendMs = 0;
  #rules = 0;

  constructor(options: AlertsFeatureOptions) {
    this.#o = options;
    this.#log = options.log.with({ component: "alerts" });
    this.board = new AlertBoard(options.events);
    this.#delivery = new AlertDelivery({
      alertmanagers: options.alertmanagers ?? [],
      webhooks: options.webhooks ?? [],
      log: this.#log,
      firstRetryMs: options.firstRetryMs,
    });
    this.#offLeadership = options.onLeadership((leading) => this.#leadership(leading));
    this.#startSync();
    this.#leadership(options.isLeader());
  }

  status() {
    return {
      leading: this.#evaluator !== undefined,
      rules: this.#rules,
      active: this.board.active().length,
      delivery: this.#delivery.stats(),
    };
  }

  stop(): Promise<void> {
    this.#offLeadership();
    for (const off of this.#offSync) off();
    this.#leadership(false);
    this.board.close();
    this.#delivery.stop();
    return Promise.resolve();
  }

  #leadership(leading: boolean): void {
    if (leading && !this.#evaluator) {
      this.#evaluator = new AlertEvaluator();
      // Take over what the previous leader announced (its events reached this node's board).
      this.#evaluator.seed(this.board.active());
      this.#timer = setInterval(() => this.#tick(), this.#o.evaluateEveryMs ?? EVALUATE_EVERY_MS);
    } else if (!leading && this.#evaluator) {
      clearInterval(this.#timer);
      this.#evaluator = undefined;
    }
  }

  /** The leader sends its alerts to a member that (re)connects; a member takes them (see ALERTS_SYNC_CHANNEL). */
  #startSync(): void {
    const mesh = this.#o.mesh;
    if (!mesh) return;
    const peerConnected = this.#o.events.subscribe((event) => {
      if (!this.#evaluator) return;
      mesh.send(event.subject, ALERTS_SYNC_CHANNEL, {
        alerts: this.#evaluator.alerts().slice(0, MAX_SYNCED_ALERTS),
      });
    }, ["node.joined", "node.back"]);
    this.#offSync.push(() => peerConnected.close());
    this.#offSync.push(mesh.onMessage(ALERTS_SYNC_CHANNEL, (from, message) => {
      const alerts = syncedAlerts(message);
      if (alerts === undefined) {
        this.#log.warn("alerts: dropped a malformed sync message", { from });
        return;
      }
      // Only the leading member sends (its evaluator exists only while consensus names it leader), and a
      // member that just restarted may not know the current leader yet: any member's list is taken.
      this.board.replace(alerts);
    }));
  }

  #tick(): void {
    const evaluator = this.#evaluator;
    if (!evaluator || !this.#o.isLeader()) return;
    const nowMs = Math.round(this.#o.clock.now());
    try {
      const state = this.#o.state();
      const rules = readRules(state, this.#log);
      this.#rules = rules.size;
      const changes = evaluator.evaluate(rules, snapshotSeries(this.#o.metrics?.snapshot(), state), nowMs);
      for (const change of changes) this.#publish(change);
      this.#delivery.deliver(changes, nowMs);
      if (nowMs - this.#lastResendMs >= RESEND_EVERY_MS) {
        this.#lastResendMs = nowMs;
        this.#delivery.resend(evaluator.alerts().filter((a) => a.state === "firing"), nowMs);
      }
    } catch (e) {
      this.#log.error("alert evaluation failed", { error: (e as Error).stack ?? String(e) });
    }
  }

  #publish(change: AlertChange): void {
    this.#o.events.publish({
      type: `alert.${change.transition}`,
      subject: change.alert.id,
      time: change.atMs,
      details: { alert: JSON.parse(JSON.stringify(change.alert)) },
      everywhere: true,
    });
  }
}

/** The alerts of a sync message, or undefined when it is not `{alerts: AlertView[]}`. */
function syncedAlerts(message: unknown): AlertView[] | undefined {
  const alerts = (message as { alerts?: unknown } | null)?.alerts;
  if (!Array.isArray(alerts) || alerts.length > MAX_SYNCED_ALERTS) return undefined;
  const valid = alerts.every((a) =>
    typeof a === "object" && a !== null && typeof a.id === "string" && typeof a.rule === "string" &&
    (a.state === "pending" || a.state === "firing") && typeof a.activeSince === "number"
  );
  return valid ? alerts as AlertView[] : undefined;
}
