/**
 * `rollouts/{group}:{artifact}`: the one rollout of a slice (rolling, canary or blue-green), written by the
 * management API when an operator starts, pauses, resumes, promotes or aborts it, and advanced by the leader's
 * rollout reducer (runtime/control/rollout.ts). A finished rollout stays until the next one replaces it, so
 * `rollout status` can still tell how the last one ended.
 */

import { AetherError } from "../core/mod.ts";
import { version } from "./_fields.ts";
import { ALERT_RULE_NAME } from "./thresholds.ts";
import {
  array,
  boolean,
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
  validate,
} from "./_validate.ts";

export const ROLLOUT_STRATEGIES = ["rolling", "canary", "blue-green"] as const;
export type RolloutStrategy = typeof ROLLOUT_STRATEGIES[number];

/**
 * - `Progressing`: the leader moves it on; `Paused`: an operator paused it, or a canary waits at a `pause`
 *   step without a duration until `promote`;
 * - `RollingBack`: traffic is back on the stable version; the new version is being retired;
 * - `Succeeded` (the new version is the slice's target at full count), `RolledBack`: finished.
 */
export const ROLLOUT_PHASES = ["Progressing", "Paused", "RollingBack", "Succeeded", "RolledBack"] as const;
export type RolloutPhase = typeof ROLLOUT_PHASES[number];

/** Finished rollouts: a new one may start. */
export function isRolloutFinished(phase: RolloutPhase): boolean {
  return phase === "Succeeded" || phase === "RolledBack";
}

/** What a canary (or blue-green preview) must show at each analysis to go on. */
export interface RolloutAnalysis {
  /** Fraction of the new version's calls that succeed over the step (0..1, default 0.99). */
  minSuccessRate: number;
  /** The new version's p99 may be at most this multiple of the stable version's (default 1.5). */
  maxP99Factor: number;
  /** An absolute p99 objective in ms; when set, it is used instead of the factor. */
  maxP99Ms?: number;
  /**
   * A p99 this close to the stable one never fails the factor check (ms, default 50): at a few ms, scheduling
   * noise on a busy machine alone doubles a p99 measured over a few hundred calls.
   */
  p99ToleranceMs?: number;
  /** Failed analyses that abort the rollout (default 1). */
  failureLimit: number;
  /** Fewer calls of the new version than this over a step give no verdict (the step is extended). */
  minRequests: number;
  /** Alert rules (runtime/control/alerts.ts) whose firing alert during a step fails that step's analysis. */
  alerts?: string[];
}

/** Most alert rules one analysis names. */
export const MAX_ANALYSIS_ALERTS = 16;

/** The outcome of one analysis. */
export interface RolloutVerdict {
  step: number;
  at: number;
  ok: boolean;
  /** What was measured against what, in words. */
  reason: string;
  requests?: number;
  successRate?: number;
  p99Ms?: number;
  stableP99Ms?: number;
}

/** At most this many verdicts are kept (the oldest goes first). */
export const MAX_ROLLOUT_VERDICTS = 32;
/** At most this many canary steps. */
export const MAX_ROLLOUT_STEPS = 64;

export interface RolloutRecord {
  strategy: RolloutStrategy;
  stableVersion: string;
  newVersion: string;
  phase: RolloutPhase;
  /** Canary steps (`"5%"`, `"pause 30s"`, `"pause"`); empty for the other strategies. */
  steps: string[];
  /** Index of the current canary step (rolling: batches done; blue-green: 0 preview, 1 switched). */
  step: number;
  stepStartedAt: number;
  /** Rolling: extra instances above the count, `"25%"` or `"1"`. */
  maxSurge: string;
  /** Rolling: instances that may be unavailable, `"0"` or `"10%"`. */
  maxUnavailable: string;
  /** Blue-green: how long the old version stays after the switch (an abort switches back at once). */
  scaleDownDelayMs: number;
  /** Blue-green: promote by itself once the preview analysis passed. */
  autoPromote: boolean;
  analysis: RolloutAnalysis;
  /** Failed analyses so far. */
  failures: number;
  verdicts: RolloutVerdict[];
  /** Set by the operator: the leader skips the remaining steps and pauses. */
  promote?: boolean;
  /** Set by the operator's pause; cleared by resume. */
  paused?: boolean;
  /** Blue-green: when traffic switched to the new version. */
  switchedAt?: number;
  /** Why it waits, why it rolled back, or how it ended. */
  reason?: string;
  /** The target's instance count when the rollout started (rolling batches are computed from it). */
  instances: number;
  startedAt: number;
  updatedAt: number;
  endedAt?: number;
}

const STEP = /^(?:(\d{1,3})%|pause(?: (\d{1,9})(ms|s|m))?)$/;

export type RolloutStep = { kind: "weight"; percent: number } | { kind: "pause"; durationMs?: number };

/** Parses a canary step; throws FieldError naming `path` and the accepted forms. */
export function parseRolloutStep(text: string, path = "step"): RolloutStep {
  const m = typeof text === "string" ? STEP.exec(text) : null;
  if (!m) {
    throw new FieldError(
      path,
      `${path}: ${
        JSON.stringify(text)
      } is not a step ("5%", "pause", "pause 30s", "pause 500ms", "pause 2m")`,
    );
  }
  if (m[1] !== undefined) {
    const percent = Number(m[1]);
    if (percent < 0 || percent > 100) throw new FieldError(path, `${path}: ${text} is not from 0% to 100%`);
    return { kind: "weight", percent };
  }
  if (m[2] === undefined) return { kind: "pause" };
  const unit = m[3] === "ms" ? 1 : m[3] === "s" ? 1000 : 60_000;
  return { kind: "pause", durationMs: Number(m[2]) * unit };
}

const SURGE = /^(?:\d{1,5}|\d{1,3}%)$/;
const surge = string({ pattern: SURGE, expectation: 'a count such as "1" or a percentage such as "25%"' });

export const rolloutAnalysisCheck: Check<RolloutAnalysis> = object({
  minSuccessRate: refine(finite(), (v, p) => {
    if (v < 0 || v > 1) throw new FieldError(p, `${p} must be from 0 to 1, got ${v}`);
  }),
  maxP99Factor: refine(finite(), (v, p) => {
    if (v < 1 || v > 1000) throw new FieldError(p, `${p} must be from 1 to 1000, got ${v}`);
  }),
  maxP99Ms: optional(integer(1, 3_600_000)),
  p99ToleranceMs: optional(integer(0, 3_600_000)),
  failureLimit: integer(1, 100),
  minRequests: integer(0, 1_000_000),
  alerts: optional(
    array(string({ pattern: ALERT_RULE_NAME, expectation: "an alert rule name" }), {
      max: MAX_ANALYSIS_ALERTS,
      unique: true,
    }),
  ),
});

const stepsCheck: Check<string[]> = refine(
  array(string({ maxLength: 32 }), { max: MAX_ROLLOUT_STEPS }),
  (steps, path) => steps.forEach((s, i) => parseRolloutStep(s, `${path}[${i}]`)),
);

export const rolloutCheck: Check<RolloutRecord> = refine(
  object({
    strategy: literal(ROLLOUT_STRATEGIES),
    stableVersion: version,
    newVersion: version,
    phase: literal(ROLLOUT_PHASES),
    steps: stepsCheck,
    step: integer(0, MAX_ROLLOUT_STEPS + 10_000),
    stepStartedAt: timestamp(),
    maxSurge: surge,
    maxUnavailable: surge,
    scaleDownDelayMs: integer(0, 86_400_000),
    autoPromote: boolean(),
    analysis: rolloutAnalysisCheck,
    failures: integer(0, 1_000_000),
    verdicts: array(
      object({
        step: integer(0, 1_000_000),
        at: timestamp(),
        ok: boolean(),
        reason: string({ maxLength: 1024 }),
        requests: optional(integer(0, Number.MAX_SAFE_INTEGER)),
        successRate: optional(finite()),
        p99Ms: optional(finite()),
        stableP99Ms: optional(finite()),
      }),
      { max: MAX_ROLLOUT_VERDICTS },
    ),
    promote: optional(boolean()),
    paused: optional(boolean()),
    switchedAt: optional(timestamp()),
    reason: optional(string({ maxLength: 2048 })),
    instances: integer(0, 10_000),
    startedAt: timestamp(),
    updatedAt: timestamp(),
    endedAt: optional(timestamp()),
  }),
  (value, path) => {
    if (value.stableVersion === value.newVersion) {
      const at = join(path, "newVersion");
      throw new FieldError(at, `${at} must differ from stableVersion (both ${value.newVersion})`);
    }
    if (value.strategy === "canary" && value.steps.length === 0) {
      const at = join(path, "steps");
      throw new FieldError(at, `${at}: a canary needs at least one step`);
    }
  },
);

/** The canary steps when none are given (Argo Rollouts' and Flagger's shape). */
export const DEFAULT_CANARY_STEPS: readonly string[] = Object.freeze([
  "5%",
  "pause 30s",
  "25%",
  "pause 30s",
  "50%",
  "pause 30s",
  "100%",
]);

export const DEFAULT_ANALYSIS: Readonly<RolloutAnalysis> = Object.freeze({
  minSuccessRate: 0.99,
  maxP99Factor: 1.5,
  failureLimit: 1,
  minRequests: 20,
  p99ToleranceMs: 50,
});

export const DEFAULT_SCALE_DOWN_DELAY_MS = 30_000;

export interface RolloutSpec {
  strategy: RolloutStrategy;
  steps?: string[];
  maxSurge?: string;
  maxUnavailable?: string;
  scaleDownDelayMs?: number;
  autoPromote?: boolean;
  analysis?: Partial<RolloutAnalysis>;
}

const SPEC_FIELDS = [
  "strategy",
  "steps",
  "maxSurge",
  "maxUnavailable",
  "scaleDownDelayMs",
  "autoPromote",
  "analysis",
];
const ANALYSIS_FIELDS = [
  "minSuccessRate",
  "maxP99Factor",
  "maxP99Ms",
  "p99ToleranceMs",
  "failureLimit",
  "minRequests",
  "alerts",
];

/** Checks a spec given as JSON (`where` names it in errors: "body", "blueprint slice x"). */
export function parseRolloutSpec(
  value: Record<string, unknown>,
  where: string,
  ignore: string[] = [],
): RolloutSpec {
  for (const name of Object.keys(value)) {
    if (!SPEC_FIELDS.includes(name) && !ignore.includes(name)) {
      throw bad(name, `${where}: unknown field "${name}" (expected ${SPEC_FIELDS.join(", ")})`);
    }
  }
  const strategy = value.strategy;
  if (typeof strategy !== "string" || !(ROLLOUT_STRATEGIES as readonly string[]).includes(strategy)) {
    throw bad(
      "strategy",
      `${where}: strategy must be one of ${ROLLOUT_STRATEGIES.join(", ")}, got ${JSON.stringify(strategy)}`,
    );
  }
  const spec: RolloutSpec = { strategy: strategy as RolloutStrategy };
  if (value.steps !== undefined) {
    if (!Array.isArray(value.steps) || value.steps.length === 0) {
      throw bad("steps", `${where}: steps must be a non-empty list such as ["5%", "pause 30s", "100%"]`);
    }
    value.steps.forEach((s, i) => {
      try {
        parseRolloutStep(s as string, `steps[${i}]`);
      } catch (e) {
        throw bad(`steps[${i}]`, `${where}: ${(e as Error).message}`);
      }
    });
    spec.steps = value.steps as string[];
  }
  for (const name of ["maxSurge", "maxUnavailable"] as const) {
    const v = value[name];
    if (v === undefined) continue;
    const text = typeof v === "number" ? String(v) : v;
    if (typeof text !== "string" || !/^(?:\d{1,5}|\d{1,3}%)$/.test(text)) {
      throw bad(
        name,
        `${where}: ${name} must be a count such as 1 or a percentage such as "25%", got ${JSON.stringify(v)}`,
      );
    }
    spec[name] = text;
  }
  if (value.scaleDownDelayMs !== undefined) {
    const v = value.scaleDownDelayMs;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 86_400_000) {
      throw bad(
        "scaleDownDelayMs",
        `${where}: scaleDownDelayMs must be whole milliseconds from 0 to 86400000`,
      );
    }
    spec.scaleDownDelayMs = v;
  }
  if (value.autoPromote !== undefined) {
    if (typeof value.autoPromote !== "boolean") {
      throw bad("autoPromote", `${where}: autoPromote must be true or false`);
    }
    spec.autoPromote = value.autoPromote;
  }
  if (value.analysis !== undefined) spec.analysis = parseAnalysis(value.analysis, where);
  return spec;
}

/** `analysis.alerts = ["rule", ...]`: distinct alert rule names, a bounded list. */
function parseAlertRules(value: unknown, where: string): string[] {
  const expected = `a list of up to ${MAX_ANALYSIS_ALERTS} alert rule names such as ["high-error-rate"]`;
  if (!Array.isArray(value) || value.length > MAX_ANALYSIS_ALERTS) {
    throw bad(
      "analysis.alerts",
      `${where}: analysis.alerts must be ${expected}, got ${JSON.stringify(value)}`,
    );
  }
  value.forEach((rule, i) => {
    if (typeof rule !== "string" || !ALERT_RULE_NAME.test(rule)) {
      throw bad(
        `analysis.alerts[${i}]`,
        `${where}: analysis.alerts[${i}] is not an alert rule name: ${JSON.stringify(rule)}`,
      );
    }
    if (value.indexOf(rule) !== i) {
      throw bad(`analysis.alerts[${i}]`, `${where}: analysis.alerts names ${rule} twice`);
    }
  });
  return [...value];
}

function parseAnalysis(value: unknown, where: string): Partial<RolloutAnalysis> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw bad("analysis", `${where}: analysis must be an object with ${ANALYSIS_FIELDS.join(", ")}`);
  }
  const out: Record<string, number | string[]> = {};
  for (const [name, v] of Object.entries(value)) {
    if (!ANALYSIS_FIELDS.includes(name)) {
      throw bad(
        `analysis.${name}`,
        `${where}: unknown field analysis.${name} (expected ${ANALYSIS_FIELDS.join(", ")})`,
      );
    }
    if (name === "alerts") {
      out.alerts = parseAlertRules(v, where);
      continue;
    }
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw bad(`analysis.${name}`, `${where}: analysis.${name} must be a number, got ${JSON.stringify(v)}`);
    }
    out[name] = v;
  }
  return out as Partial<RolloutAnalysis>;
}

/** The record a new rollout starts with; the record check names any value out of range. */
export function newRolloutRecord(
  spec: RolloutSpec,
  at: { stableVersion: string; newVersion: string; instances: number; nowMs: number },
): RolloutRecord {
  const record: RolloutRecord = {
    strategy: spec.strategy,
    stableVersion: at.stableVersion,
    newVersion: at.newVersion,
    phase: "Progressing",
    steps: spec.strategy === "canary" ? [...(spec.steps ?? DEFAULT_CANARY_STEPS)] : [],
    step: 0,
    stepStartedAt: at.nowMs,
    maxSurge: spec.maxSurge ?? "25%",
    maxUnavailable: spec.maxUnavailable ?? "0",
    scaleDownDelayMs: spec.scaleDownDelayMs ?? DEFAULT_SCALE_DOWN_DELAY_MS,
    autoPromote: spec.autoPromote ?? false,
    analysis: { ...DEFAULT_ANALYSIS, ...spec.analysis },
    failures: 0,
    verdicts: [],
    instances: at.instances,
    startedAt: at.nowMs,
    updatedAt: at.nowMs,
  };
  return validate(rolloutCheck, record, "rollout");
}

function bad(field: string, message: string): AetherError {
  return new AetherError("bad_request", message, { field });
}
