/** `blueprints/{group}:{artifact}:{version}`: published blueprints, parsed, validated and expanded. */

import { placementCheck, type PlacementRule } from "./nodes.ts";
import { bounds, coordsField, services } from "./_fields.ts";
import {
  array,
  boolean,
  type Check,
  FieldError,
  integer,
  join,
  object,
  optional,
  refine,
  string,
  timestamp,
} from "./_validate.ts";
import { AetherError } from "../core/mod.ts";
import { parseRolloutSpec, type RolloutSpec } from "./rollouts.ts";

/** One slice of a published blueprint, after expansion with the slices it calls. */
export interface BlueprintSlice {
  /** `group:artifact:version`. */
  artifact: string;
  instances: number;
  /** Autoscaling bounds. */
  min?: number;
  max?: number;
  /** Infrastructure services the slice requires (for example "cache"). */
  requires: string[];
  /** True when expansion added it because another slice calls it; false when the operator listed it. */
  transitive: boolean;
  /** How a change of its version rolls out (`rollout = { strategy = "canary", ... }`); absent: at once. */
  rollout?: RolloutSpec;
  /** Disruption budget (`minAvailable = 2` or `"50%"`), see TargetRecord. */
  minAvailable?: string;
  /** Placement rules (`placement = { spread = "zone", require = { disk = "ssd" } }`), see TargetRecord. */
  placement?: PlacementRule;
}

/** `blueprints/{id}`: a published blueprint, parsed, validated and expanded. */
export interface BlueprintRecord {
  /** `group:artifact:version`, the same as in the key. */
  id: string;
  /** In activation order: every slice after the slices it calls. */
  slices: BlueprintSlice[];
  /** The TOML as published, for `blueprint get`. */
  source?: string;
  publishedAt: number;
}

/** A rollout spec as stored: the same checks as the API's (runtime/model/rollouts.ts). */
function rolloutSpecField(value: unknown, path: string): RolloutSpec {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new FieldError(path, `${path} must be a table such as { strategy = "canary" }`);
  }
  try {
    return parseRolloutSpec(value as Record<string, unknown>, path);
  } catch (e) {
    if (!(e instanceof AetherError)) throw e;
    throw new FieldError(join(path, String(e.extra.field ?? "")), e.message);
  }
}

const blueprintSliceCheck: Check<BlueprintSlice> = refine(
  object({
    artifact: coordsField,
    instances: integer(1, 10_000),
    min: optional(integer(0, 10_000)),
    max: optional(integer(1, 10_000)),
    requires: services,
    transitive: boolean(),
    rollout: optional(rolloutSpecField),
    minAvailable: optional(
      string({ pattern: /^(?:\d{1,5}|\d{1,3}%)$/, expectation: "a count or a percentage" }),
    ),
    placement: optional(placementCheck),
  }),
  bounds,
);

export const blueprintCheck: Check<BlueprintRecord> = refine(
  object({
    id: coordsField,
    slices: array(blueprintSliceCheck, { min: 1, max: 1_000 }),
    source: optional(string({ maxLength: 1024 * 1024 })),
    publishedAt: timestamp(),
  }),
  (value, path) => {
    const seen = new Map<string, number>();
    value.slices.forEach((slice, i) => {
      const base = slice.artifact.split(":").slice(0, 2).join(":");
      if (seen.has(base)) {
        const at = join(path, `slices[${i}].artifact`);
        throw new FieldError(at, `${at} repeats ${base} (slices[${seen.get(base)}])`);
      }
      seen.set(base, i);
    });
  },
);
