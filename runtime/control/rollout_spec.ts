/**
 * Operators' actions on a rollout (pause, resume, promote, abort) as a pure change of its record; the spec
 * parsing and the new record live in the model (runtime/model/rollouts.ts) so blueprints can use them too.
 */

import { AetherError } from "../core/mod.ts";
import { parseRolloutStep, type RolloutRecord } from "../model/mod.ts";

export {
  DEFAULT_ANALYSIS,
  DEFAULT_CANARY_STEPS,
  DEFAULT_SCALE_DOWN_DELAY_MS,
  newRolloutRecord,
  parseRolloutSpec,
  type RolloutSpec,
} from "../model/mod.ts";

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
