/**
 * `thresholds/{name}`: alert rules, one record per rule, written by operators (`aether alert set`, PUT
 * /api/v1/alerts/rules/{name}) and evaluated by the leader (runtime/control/alerts.ts).
 *
 * A rule compares one measured value with a threshold and must hold for `forMs` before it fires:
 *
 * | metric             | value                                                   | scope                         |
 * | ------------------ | ------------------------------------------------------- | ----------------------------- |
 * | `latency`          | `quantile` of call latency over `windowMs`, ms          | `slice`, optional `method`    |
 * | `error_rate`       | errors / calls over `windowMs` (0..1)                   | `slice`, optional `method`    |
 * | `node_cpu`         | a node process's CPU, share of one core (0.9 = 90%)     | `node`, or every node         |
 * | `node_memory`      | a node process's resident memory, bytes                 | `node`, or every node         |
 * | `instances_active` | ACTIVE instances of the slice                           | `slice`                       |
 *
 * `threshold` is a number, or for `instances_active` the word `desired` (the target's instance count).
 * The same rule written as text (`expressionOf`, `parseAlertExpression`):
 *
 *   p99 of org.example:orders/placeOrder > 200ms
 *   error-rate of org.example:orders > 1%
 *   cpu of node n1 > 90%        cpu of nodes > 90%        memory of nodes > 1.5GiB
 *   instances of org.example:orders < desired
 */

import { AetherError } from "../core/mod.ts";
import { baseField, nodeId, sliceMethod } from "./_fields.ts";
import {
  type Check,
  FieldError,
  finite,
  integer,
  join,
  literal,
  object,
  optional,
  refine,
  string,
  timestamp,
} from "./_validate.ts";

export const ALERT_METRICS = [
  "latency",
  "error_rate",
  "node_cpu",
  "node_memory",
  "instances_active",
] as const;
export type AlertMetric = typeof ALERT_METRICS[number];
export const ALERT_OPS = [">", ">=", "<", "<="] as const;
export type AlertOp = typeof ALERT_OPS[number];
export const ALERT_SEVERITIES = ["info", "warning", "critical"] as const;
export type AlertSeverity = typeof ALERT_SEVERITIES[number];

/** The longest `for` and window a rule may ask for (the cluster keeps two hours of history). */
export const MAX_ALERT_FOR_MS = 2 * 3_600_000;
export const MAX_ALERT_WINDOW_MS = 3_600_000;
/** The window rates and quantiles are computed over unless a rule says otherwise. */
export const DEFAULT_ALERT_WINDOW_MS = 60_000;
/** Alert rules the cluster keeps at most (each is evaluated every second on the leader). */
export const MAX_ALERT_RULES = 500;
/** A rule's name: the key's last part. */
export const ALERT_RULE_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

/** `thresholds/{name}`: one alert rule. */
export interface ThresholdRecord {
  metric: AlertMetric;
  /** `group:artifact` (latency, error_rate, instances_active). */
  slice?: string;
  /** One method of the slice (latency, error_rate); absent: every method together. */
  method?: string;
  /** One node (node_cpu, node_memory); absent: each node on its own. */
  node?: string;
  /** latency: which quantile (0.5 .. 0.999). */
  quantile?: number;
  op: AlertOp;
  /** A number in the metric's unit, or `desired` (instances_active). */
  threshold: number | "desired";
  /** How long the condition must hold before the alert fires (0: at once). */
  forMs: number;
  /** latency and error_rate: the window they are computed over. */
  windowMs?: number;
  severity: AlertSeverity;
  /** One line for people (Alertmanager's `summary` annotation). */
  summary?: string;
  updatedAt: number;
}

/** An alert rule (the same record). */
export type AlertRuleRecord = ThresholdRecord;

const SLICE_METRICS: readonly AlertMetric[] = ["latency", "error_rate", "instances_active"];
const NODE_METRICS: readonly AlertMetric[] = ["node_cpu", "node_memory"];

const thresholdValue: Check<number | "desired"> = (value, path) => {
  if (value === "desired") return value;
  return finite()(value, path);
};

export const thresholdCheck: Check<ThresholdRecord> = refine(
  object({
    metric: literal(ALERT_METRICS),
    slice: optional(baseField),
    method: optional(sliceMethod),
    node: optional(nodeId),
    quantile: optional(finite()),
    op: literal(ALERT_OPS),
    threshold: thresholdValue,
    forMs: integer(0, MAX_ALERT_FOR_MS),
    windowMs: optional(integer(1_000, MAX_ALERT_WINDOW_MS)),
    severity: literal(ALERT_SEVERITIES),
    summary: optional(string({ maxLength: 512 })),
    updatedAt: timestamp(),
  }),
  (rule, path) => {
    const at = (name: string) => join(path, name);
    const isSlice = SLICE_METRICS.includes(rule.metric);
    if (isSlice && rule.slice === undefined) {
      throw new FieldError(at("slice"), `${at("slice")} is missing: ${rule.metric} is measured per slice`);
    }
    if (!isSlice && rule.slice !== undefined) {
      throw new FieldError(at("slice"), `${at("slice")}: ${rule.metric} is measured per node, not per slice`);
    }
    if (rule.method !== undefined && !(rule.metric === "latency" || rule.metric === "error_rate")) {
      throw new FieldError(at("method"), `${at("method")}: only latency and error_rate rules name a method`);
    }
    if (rule.node !== undefined && !NODE_METRICS.includes(rule.metric)) {
      throw new FieldError(at("node"), `${at("node")}: only node_cpu and node_memory rules name a node`);
    }
    if (rule.metric === "latency") {
      const q = rule.quantile ?? 0.99;
      if (!(q >= 0.5 && q <= 0.999)) {
        throw new FieldError(at("quantile"), `${at("quantile")} must be from 0.5 to 0.999, got ${q}`);
      }
    } else if (rule.quantile !== undefined) {
      throw new FieldError(at("quantile"), `${at("quantile")}: only latency rules have a quantile`);
    }
    if (rule.threshold === "desired" && rule.metric !== "instances_active") {
      throw new FieldError(
        at("threshold"),
        `${at("threshold")}: "desired" is a threshold of instances_active only`,
      );
    }
    if (rule.windowMs !== undefined && !(rule.metric === "latency" || rule.metric === "error_rate")) {
      throw new FieldError(at("windowMs"), `${at("windowMs")}: only latency and error_rate have a window`);
    }
  },
);

// ------------------------------------------------------------------------------------ the text form

const UNIT_FACTORS: Record<string, Record<string, number>> = {
  latency: { ms: 1, s: 1_000, "": 1 },
  error_rate: { "%": 0.01, "": 1 },
  node_cpu: { "%": 0.01, "": 1 },
  node_memory: { "": 1, b: 1, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, kb: 1e3, mb: 1e6, gb: 1e9 },
  instances_active: { "": 1 },
};

/** The parts of a rule its expression gives (the rest — for, severity, summary — come separately). */
export type AlertExpression = Pick<
  ThresholdRecord,
  "metric" | "slice" | "method" | "node" | "quantile" | "op" | "threshold"
>;

function expressionProblem(text: string, message: string): AetherError {
  return new AetherError(
    "bad_request",
    `alert expression "${text}": ${message}. Forms: "p99 of group:artifact/method > 200ms", ` +
      `"error-rate of group:artifact > 1%", "cpu of node n1 > 90%", "cpu of nodes > 90%", ` +
      `"memory of nodes > 2GiB", "instances of group:artifact < desired"`,
    { field: "expr" },
  );
}

/** Parses `WHAT of SCOPE OP VALUE` (see the file header); a 400 naming the part that is wrong. */
export function parseAlertExpression(text: string): AlertExpression {
  const m = /^\s*([a-z0-9.-]+)\s+of\s+(.+?)\s*(>=|<=|>|<)\s*(\S+)\s*$/i.exec(text);
  if (!m) throw expressionProblem(text, "not WHAT of SCOPE OP VALUE");
  const [, what, scope, op, valueText] = m;
  const { metric, quantile } = metricOf(text, what.toLowerCase());
  const out: AlertExpression = { metric, op: op as AlertOp, threshold: 0 };
  if (quantile !== undefined) out.quantile = quantile;
  Object.assign(out, scopeOf(text, metric, scope.trim()));
  out.threshold = thresholdOf(text, metric, valueText);
  return out;
}

function metricOf(text: string, what: string): { metric: AlertMetric; quantile?: number } {
  const p = /^p(\d{2,3}(?:\.\d+)?)$/.exec(what);
  if (p) {
    const digits = p[1];
    // p99 = 0.99, p999 = 0.999, p99.9 = 0.999.
    const raw = digits.includes(".") || digits.length === 2 ? Number(digits) / 100 : Number(digits) / 1000;
    const quantile = Math.round(raw * 1e6) / 1e6;
    if (!(quantile >= 0.5 && quantile <= 0.999)) {
      throw expressionProblem(text, `${what}: a quantile from p50 to p999`);
    }
    return { metric: "latency", quantile };
  }
  const names: Record<string, AlertMetric> = {
    "error-rate": "error_rate",
    errors: "error_rate",
    cpu: "node_cpu",
    memory: "node_memory",
    instances: "instances_active",
  };
  const metric = names[what];
  if (!metric) {
    throw expressionProblem(text, `"${what}" is not p50..p999, error-rate, cpu, memory or instances`);
  }
  return { metric };
}

function scopeOf(text: string, metric: AlertMetric, scope: string): Partial<AlertExpression> {
  if (NODE_METRICS.includes(metric)) {
    if (scope === "nodes") return {};
    const node = /^node\s+(\S+)$/.exec(scope)?.[1];
    if (!node || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(node)) {
      throw expressionProblem(text, `"${scope}" is not "node ID" or "nodes"`);
    }
    return { node };
  }
  const slash = scope.indexOf("/");
  const slice = slash < 0 ? scope : scope.slice(0, slash);
  const method = slash < 0 ? undefined : scope.slice(slash + 1);
  if (!/^[A-Za-z0-9._-]+:[A-Za-z0-9._-]+$/.test(slice)) {
    throw expressionProblem(text, `"${slice}" is not a slice (group:artifact)`);
  }
  if (method !== undefined && metric === "instances_active") {
    throw expressionProblem(text, "instances are counted per slice, not per method");
  }
  if (method !== undefined && !/^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/.test(method)) {
    throw expressionProblem(text, `"${method}" is not a method name`);
  }
  return method === undefined ? { slice } : { slice, method };
}

function thresholdOf(text: string, metric: AlertMetric, valueText: string): number | "desired" {
  if (valueText === "desired") {
    if (metric !== "instances_active") throw expressionProblem(text, `"desired" compares instances only`);
    return "desired";
  }
  const m = /^(\d+(?:\.\d+)?)([a-z%]*)$/i.exec(valueText);
  const factor = m ? UNIT_FACTORS[metric][m[2].toLowerCase()] : undefined;
  if (!m || factor === undefined) {
    const units = Object.keys(UNIT_FACTORS[metric]).filter((u) => u !== "").join(", ");
    throw expressionProblem(text, `"${valueText}" is not a number${units ? ` (units: ${units})` : ""}`);
  }
  return Number(m[1]) * factor;
}

/** The rule as the text `parseAlertExpression` reads. */
export function expressionOf(rule: AlertExpression): string {
  const value = (t: number | "desired") => {
    if (t === "desired") return t;
    switch (rule.metric) {
      case "latency":
        return `${t}ms`;
      case "error_rate":
      case "node_cpu":
        return `${+(t * 100).toFixed(6)}%`;
      default:
        return String(t);
    }
  };
  const scope = NODE_METRICS.includes(rule.metric)
    ? (rule.node === undefined ? "nodes" : `node ${rule.node}`)
    : `${rule.slice}${rule.method === undefined ? "" : `/${rule.method}`}`;
  const what = rule.metric === "latency"
    ? `p${+((rule.quantile ?? 0.99) * 100).toFixed(4)}`
    : { error_rate: "error-rate", node_cpu: "cpu", node_memory: "memory", instances_active: "instances" }[
      rule.metric
    ];
  return `${what} of ${scope} ${rule.op} ${value(rule.threshold)}`;
}
