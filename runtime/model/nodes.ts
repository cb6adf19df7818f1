/**
 * `nodes/{node}/labels` and `nodes/{node}/cordon`: what placement knows about a node besides its membership.
 *
 * Two keys, because two different writers own them: the node publishes its labels when it starts (from
 * `--labels zone=a,disk=ssd`), operators cordon and drain it (`aether node drain|uncordon`). Neither overwrites
 * the other's write.
 */

import {
  array,
  type Check,
  FieldError,
  join,
  literal,
  object,
  optional,
  record,
  string,
  timestamp,
} from "./_validate.ts";

/** Label names and values: short identifiers, so they read well in `status` and in blueprints. */
export const LABEL_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** At most this many labels per node. */
export const MAX_NODE_LABELS = 32;

/** `nodes/{node}/labels`: published by the node itself at start. */
export interface NodeLabelsRecord {
  labels: Record<string, string>;
  updatedAt: number;
}

/**
 * `nodes/{node}/cordon`: the node takes no new instances; with `mode: "drain"` the leader also moves every
 * instance off it, one at a time, each replacement ACTIVE before the old one stops. Deleted by `uncordon`.
 */
export interface CordonRecord {
  mode: "cordon" | "drain";
  since: number;
  /** Who asked (a token's subject), for `status` and the audit trail. */
  by?: string;
  reason?: string;
}

const label = string({ pattern: LABEL_PATTERN, expectation: "a label (a-z, 0-9, '.', '_', '-'; up to 63)" });

export const nodeLabelsCheck: Check<NodeLabelsRecord> = (value, path) => {
  const checked = object({ labels: record(label, label), updatedAt: timestamp() })(value, path);
  if (Object.keys(checked.labels).length > MAX_NODE_LABELS) {
    throw new FieldError(join(path, "labels"), `${join(path, "labels")}: at most ${MAX_NODE_LABELS} labels`);
  }
  return checked;
};

export const cordonCheck: Check<CordonRecord> = object({
  mode: literal(["cordon", "drain"] as const),
  since: timestamp(),
  by: optional(string({ maxLength: 256 })),
  reason: optional(string({ maxLength: 1024 })),
});

/**
 * Parses `zone=a,disk=ssd` (the node flag); throws naming the bad pair. Empty text: no labels.
 */
export function parseNodeLabels(text: string, where = "--labels"): Record<string, string> {
  const labels: Record<string, string> = {};
  if (text.trim() === "") return labels;
  for (const pair of text.split(",")) {
    const eq = pair.indexOf("=");
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    if (eq < 0 || !LABEL_PATTERN.test(name) || !LABEL_PATTERN.test(value)) {
      throw new Error(
        `${where}: "${pair}" is not name=value (a-z, 0-9, '.', '_', '-'; up to 63 characters each)`,
      );
    }
    if (name in labels) throw new Error(`${where}: label "${name}" is given twice`);
    labels[name] = value;
  }
  if (Object.keys(labels).length > MAX_NODE_LABELS) {
    throw new Error(`${where}: at most ${MAX_NODE_LABELS} labels`);
  }
  return labels;
}

/**
 * Where a slice's instances may go (blueprint `placement = { spread = "zone", require = { disk = "ssd" } }`,
 * kept in the target): only nodes carrying every `require` label, spread evenly over the values of the
 * `spread` label.
 */
export interface PlacementRule {
  spread?: string;
  require?: Record<string, string>;
  /** Slices (`group:artifact`) an instance must run beside: only nodes already running each of them. */
  affinity?: string[];
  /** Slices (`group:artifact`) an instance must stay apart from: only nodes running none of them. */
  antiAffinity?: string[];
}

/** Most slices one affinity or anti-affinity list names (the rule is checked per candidate node). */
export const MAX_AFFINITY_SLICES = 16;

const sliceBaseName = string({
  pattern: /^[^:\s]+:[^:\s]+$/,
  expectation: '"group:artifact"',
  maxLength: 256,
});

export const placementCheck: Check<PlacementRule> = object({
  spread: optional(label),
  require: optional(record(label, label)),
  affinity: optional(array(sliceBaseName, { max: MAX_AFFINITY_SLICES, unique: true })),
  antiAffinity: optional(array(sliceBaseName, { max: MAX_AFFINITY_SLICES, unique: true })),
});

/** Whether a node with `labels` may run instances under `rule`. */
export function nodeMatches(rule: PlacementRule | undefined, labels: Record<string, string>): boolean {
  for (const [name, value] of Object.entries(rule?.require ?? {})) if (labels[name] !== value) return false;
  return true;
}

/** `disk=ssd,zone=a`: labels as text, for messages. */
export function labelsText(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(",");
}
