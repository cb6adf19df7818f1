/**
 * A rollout as an operator asks for it (API body, CLI flags, blueprint): checked field by field with errors
 * that name the field, defaults filled in, and turned into the record the leader drives.
 */

import { AetherError } from "../core/mod.ts";
import {
  parseRolloutStep,
  ROLLOUT_STRATEGIES,
  type RolloutAnalysis,
  type RolloutRecord,
  type RolloutStrategy,
  validateRecord,
} from "../model/mod.ts";

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
const ANALYSIS_FIELDS = ["minSuccessRate", "maxP99Factor", "maxP99Ms", "failureLimit", "minRequests"];

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

function parseAnalysis(value: unknown, where: string): Partial<RolloutAnalysis> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw bad("analysis", `${where}: analysis must be an object with ${ANALYSIS_FIELDS.join(", ")}`);
  }
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(value)) {
    if (!ANALYSIS_FIELDS.includes(name)) {
      throw bad(
        `analysis.${name}`,
        `${where}: unknown field analysis.${name} (expected ${ANALYSIS_FIELDS.join(", ")})`,
      );
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
  return validateRecord("rollout", record, "rollout");
}

function bad(field: string, message: string): AetherError {
  return new AetherError("bad_request", message, { field });
}

export const ROLLOUT_ACTIONS = ["pause", "resume", "promote", "abort"] as const;
export type RolloutAction = typeof ROLLOUT_ACTIONS[number];

/** What an operator's action changes; the leader acts on it in its next step. */
export function applyRolloutAction(
  record: RolloutRecord,
  action: RolloutAction,
  nowMs: number,
): RolloutRecord {
  const next: RolloutRecord = { ...record, updatedAt: nowMs };
  switch (action) {
    case "pause":
      next.paused = true;
      break;
    case "resume": {
      delete next.paused;
      const step = next.steps[next.step];
      // Resuming at an open-ended "pause" step passes it.
      if (next.phase === "Paused" && step !== undefined) {
        const parsed = parseRolloutStep(step);
        if (parsed.kind === "pause" && parsed.durationMs === undefined) next.step++;
      }
      if (next.phase === "Paused") next.phase = "Progressing";
      next.stepStartedAt = nowMs;
      break;
    }
    case "promote":
      if (record.phase === "RollingBack") {
        throw new AetherError("conflict", `the rollout to ${record.newVersion} is rolling back`);
      }
      delete next.paused;
      next.promote = true;
      if (next.phase === "Paused") next.phase = "Progressing";
      break;
    case "abort":
      delete next.paused;
      delete next.promote;
      next.phase = "RollingBack";
      next.reason = "aborted by an operator";
      break;
  }
  return next;
}
