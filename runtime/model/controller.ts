/**
 * The controller's records. They live under `config/` (the dynamic-configuration family, so generic tools can
 * read them) as two keys whose values this module checks:
 *
 * - `config/controller.rules`: the decision tree's thresholds, windows, cooldowns and steps, editable at run
 *   time (`PUT /api/v1/controller/rules`). Every field is optional in a stored record; absent ones take the
 *   defaults in runtime/control/controller.ts.
 * - `config/controller.state`: what must survive a change of leader so that the new one does not repeat the
 *   old one's decision: paused or not, operator pins, per slice the time of its last scale up and down, and the
 *   latest decisions with their inputs. The leader writes it in the same transaction as the target it changes.
 */

import { baseField } from "./_fields.ts";
import {
  array,
  boolean,
  type Check,
  fail,
  FieldError,
  finite,
  integer,
  join,
  literal,
  object,
  optional,
  record,
  refine,
  string,
  timestamp,
  validate,
} from "./_validate.ts";

export const CONTROLLER_RULES_KEY = "config/controller.rules";
export const CONTROLLER_STATE_KEY = "config/controller.state";

/** How many decisions `config/controller.state` keeps (the oldest go first). */
export const MAX_STORED_DECISIONS = 64;
/** How many pins the controller keeps: one per slice at most, and slices are bounded by the same figure. */
export const MAX_CONTROLLER_PINS = 1_000;

/** Thresholds and timings of the decision tree; see DEFAULT_CONTROLLER_RULES for the meaning of each. */
export interface ControllerRules {
  /** In-flight calls per instance the controller aims for. */
  targetInFlightPerInstance: number;
  /** Scale down only when the stable window's demand is below this share of the target (0..1). */
  scaleDownUtilization: number;
  /** CPU share (0..1) of an instance's node above which the slice scales up. */
  cpuHigh: number;
  /** CPU share below which a scale-down is allowed. */
  cpuLow: number;
  /** p95 latency objective of a slice without its own (ms). */
  p95ObjectiveMs: number;
  /** Per-slice objectives (`group:artifact` → ms). */
  objectives: Record<string, number>;
  /** The long window: scale-down decisions average over it (ms). */
  stableWindowMs: number;
  /** The short window: bursts are seen over it (ms). */
  panicWindowMs: number;
  /** Panic when the panic window's demand is at least this multiple of the current instances. */
  panicThreshold: number;
  upCooldownMs: number;
  downCooldownMs: number;
  /** At most this many instances added by one decision. */
  maxStepUp: number;
  /** At most this many instances removed by one decision. */
  maxStepDown: number;
  /** At most this many instances of one slice per connected node. */
  maxPerNode: number;
  /** At most this many count changes per slice per minute (a rate limit over the cooldowns). */
  maxChangesPerMinute: number;
  /** A slice with `min = 0` and no calls for this long is scaled to zero (ms). */
  idleToZeroMs: number;
  /** Let the forecaster add capacity ahead of predicted load. */
  forecast: boolean;
  /** The forecaster's confidence (0..1) below which its prediction is ignored. */
  forecastConfidence: number;
}

export type StoredControllerRules = Partial<ControllerRules>;

const positive = (max: number): Check<number> => (value, path) => {
  const n = finite()(value, path);
  if (n <= 0 || n > max) fail(path, `a number above 0 and at most ${max}`, n);
  return n;
};
const share: Check<number> = (value, path) => {
  const n = finite()(value, path);
  if (n < 0 || n > 1) fail(path, "a number from 0 to 1", n);
  return n;
};
const windowMs = integer(100, 3_600_000);

const rulesFields = {
  targetInFlightPerInstance: optional(positive(100_000)),
  scaleDownUtilization: optional(share),
  cpuHigh: optional(share),
  cpuLow: optional(share),
  p95ObjectiveMs: optional(positive(3_600_000)),
  objectives: optional(record(baseField, positive(3_600_000))),
  stableWindowMs: optional(windowMs),
  panicWindowMs: optional(windowMs),
  panicThreshold: optional(positive(100)),
  upCooldownMs: optional(integer(0, 3_600_000)),
  downCooldownMs: optional(integer(0, 3_600_000)),
  maxStepUp: optional(integer(1, 10_000)),
  maxStepDown: optional(integer(1, 10_000)),
  maxPerNode: optional(integer(1, 10_000)),
  maxChangesPerMinute: optional(integer(1, 600)),
  idleToZeroMs: optional(integer(1_000, 86_400_000)),
  forecast: optional(boolean()),
  forecastConfidence: optional(share),
};

export const controllerRulesCheck: Check<StoredControllerRules> = refine(
  object(rulesFields),
  (rules, path) => {
    if (rules.cpuLow !== undefined && rules.cpuHigh !== undefined && rules.cpuLow >= rules.cpuHigh) {
      const at = join(path, "cpuLow");
      throw new FieldError(at, `${at} (${rules.cpuLow}) must be below cpuHigh (${rules.cpuHigh})`);
    }
    if (
      rules.panicWindowMs !== undefined && rules.stableWindowMs !== undefined &&
      rules.panicWindowMs > rules.stableWindowMs
    ) {
      const at = join(path, "panicWindowMs");
      throw new FieldError(
        at,
        `${at} (${rules.panicWindowMs}) must not exceed stableWindowMs (${rules.stableWindowMs})`,
      );
    }
  },
);

/** One target change (or a refusal) with what it was decided from. */
export interface ControllerDecision {
  at: number;
  slice: string;
  from: number;
  to: number;
  /** Why, in words (`p95 840ms > objective 500ms over 6s`). */
  reason: string;
  /** Which rule decided: `demand`, `panic`, `latency`, `cpu`, `min`, `max`, `forecast`, `capacity`. */
  rule: string;
  /** What the validator changed or refused, if anything. */
  bounded?: string;
  /** The leader that decided, and its view. */
  leader: string;
  view: number;
  inputs: Record<string, number>;
}

export interface ControllerPin {
  instances: number;
  at: number;
  by?: string;
}

export interface ControllerSliceState {
  lastUpAt?: number;
  lastDownAt?: number;
  /** Times of the latest count changes (at most `maxChangesPerMinute` of the last minute are needed). */
  changes: number[];
}

export interface ControllerState {
  paused: boolean;
  pausedBy?: string;
  pins: Record<string, ControllerPin>;
  slices: Record<string, ControllerSliceState>;
  decisions: ControllerDecision[];
  updatedAt: number;
}

export const EMPTY_CONTROLLER_STATE: ControllerState = {
  paused: false,
  pins: {},
  slices: {},
  decisions: [],
  updatedAt: 0,
};

const decisionCheck: Check<ControllerDecision> = object({
  at: timestamp(),
  slice: baseField,
  from: integer(0, 10_000),
  to: integer(0, 10_000),
  reason: string({ maxLength: 512 }),
  rule: literal(["demand", "panic", "latency", "cpu", "min", "max", "forecast", "capacity", "idle"]),
  bounded: optional(string({ maxLength: 512 })),
  leader: string({ maxLength: 64 }),
  view: integer(0),
  inputs: record(string({ maxLength: 64 }), finite()),
});

export const controllerStateCheck: Check<ControllerState> = object({
  paused: boolean(),
  pausedBy: optional(string({ maxLength: 128 })),
  pins: (value, path) => {
    const pins = record(
      baseField,
      object({ instances: integer(0, 10_000), at: timestamp(), by: optional(string({ maxLength: 128 })) }),
    )(value, path);
    if (Object.keys(pins).length > MAX_CONTROLLER_PINS) {
      fail(path, `at most ${MAX_CONTROLLER_PINS} pins`, `${Object.keys(pins).length} pins`);
    }
    return pins;
  },
  slices: record(
    baseField,
    object({
      lastUpAt: optional(timestamp()),
      lastDownAt: optional(timestamp()),
      changes: array(timestamp(), { max: 600 }),
    }),
  ),
  decisions: array(decisionCheck, { max: MAX_STORED_DECISIONS }),
  updatedAt: timestamp(),
});

/** Checks stored or submitted rules; throws AetherError("bad_request") naming the field. */
export function checkControllerRules(value: unknown, where: string): StoredControllerRules {
  return validate(controllerRulesCheck, value, where);
}

/** Checks the controller's state record; throws AetherError("bad_request") naming the field. */
export function checkControllerState(value: unknown, where: string): ControllerState {
  return validate(controllerStateCheck, value, where);
}
