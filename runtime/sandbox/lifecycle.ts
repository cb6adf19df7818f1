/**
 * The slice instance lifecycle: one transition table, and the pure reducer that the node's executor runs.
 *
 *   LOAD → LOADING → LOADED → ACTIVATE → ACTIVATING → ACTIVE → DEACTIVATE → DEACTIVATING → LOADED
 *   LOADED | FAILED → UNLOAD → UNLOADING → (removed)
 *
 * Command states (LOAD, ACTIVATE, DEACTIVATE, UNLOAD) are written by the leader, the others by the node.
 * FAILED can follow every state but FAILED itself: from an in-progress state when its work fails or passes
 * its deadline, and also from LOADED and ACTIVE (and a command state the node has not taken up yet) because a
 * sandbox can crash or be killed for its memory while idle; that must be recorded, or a dead instance would
 * keep being routed to. From FAILED the only way is UNLOAD.
 *
 * The reducer takes the time as an input and has no timers or IO, so it is tested exhaustively and can run in
 * the simulator; `executor.ts` is the shell that carries out its effects.
 */

import { LIFECYCLE_STATES, type LifecycleState } from "../model/mod.ts";

/** The states as the KV schema records them: one list for the runtime and the store. */
export const SLICE_STATES = LIFECYCLE_STATES;
export type SliceState = LifecycleState;
export type LifecycleCommand = "LOAD" | "ACTIVATE" | "DEACTIVATE" | "UNLOAD";
export type InProgressState = "LOADING" | "ACTIVATING" | "DEACTIVATING" | "UNLOADING";

/** Reported when UNLOADING finishes: the instance (and its KV key) is gone. */
export const REMOVED = "REMOVED";
export type Removed = typeof REMOVED;

/** The one transition table. */
export const TRANSITIONS: Readonly<Record<SliceState, readonly SliceState[]>> = Object.freeze({
  LOAD: ["LOADING", "FAILED"],
  LOADING: ["LOADED", "FAILED"],
  LOADED: ["ACTIVATE", "UNLOAD", "FAILED"],
  ACTIVATE: ["ACTIVATING", "FAILED"],
  ACTIVATING: ["ACTIVE", "FAILED"],
  ACTIVE: ["DEACTIVATE", "FAILED"],
  DEACTIVATE: ["DEACTIVATING", "FAILED"],
  DEACTIVATING: ["LOADED", "FAILED"],
  FAILED: ["UNLOAD"],
  UNLOAD: ["UNLOADING", "FAILED"],
  UNLOADING: ["FAILED"],
});

export function canTransition(from: SliceState, to: SliceState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isCommand(state: SliceState): state is LifecycleCommand {
  return state === "LOAD" || state === "ACTIVATE" || state === "DEACTIVATE" || state === "UNLOAD";
}

/** As the original defines it: every state but LOADED, ACTIVE and FAILED (these block autoscaling). */
export function isInProgress(state: SliceState): boolean {
  return state !== "LOADED" && state !== "ACTIVE" && state !== "FAILED";
}

/** UNLOADING is the last state: when it finishes the instance is removed. */
export function isTerminal(state: SliceState): boolean {
  return state === "UNLOADING";
}

const IN_PROGRESS_OF: Record<LifecycleCommand, InProgressState> = {
  LOAD: "LOADING",
  ACTIVATE: "ACTIVATING",
  DEACTIVATE: "DEACTIVATING",
  UNLOAD: "UNLOADING",
};

const RESULT_OF: Record<InProgressState, SliceState | Removed> = {
  LOADING: "LOADED",
  ACTIVATING: "ACTIVE",
  DEACTIVATING: "LOADED",
  UNLOADING: REMOVED,
};

const OPERATION_OF: Record<InProgressState, Operation> = {
  LOADING: "load",
  ACTIVATING: "start",
  DEACTIVATING: "stop",
  UNLOADING: "unload",
};

export function inProgressOf(command: LifecycleCommand): InProgressState {
  return IN_PROGRESS_OF[command];
}

export interface LifecycleDeadlines {
  loadingMs: number;
  activatingMs: number;
  deactivatingMs: number;
  unloadingMs: number;
  /** The start and stop hooks (enforced by the host, inside ACTIVATING and DEACTIVATING). */
  hookMs: number;
}

export const DEFAULT_DEADLINES: LifecycleDeadlines = Object.freeze({
  loadingMs: 120_000,
  activatingMs: 60_000,
  deactivatingMs: 30_000,
  unloadingMs: 120_000,
  hookMs: 5_000,
});

export function deadlineOf(state: InProgressState, deadlines: LifecycleDeadlines): number {
  switch (state) {
    case "LOADING":
      return deadlines.loadingMs;
    case "ACTIVATING":
      return deadlines.activatingMs;
    case "DEACTIVATING":
      return deadlines.deactivatingMs;
    case "UNLOADING":
      return deadlines.unloadingMs;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Reducer

export type Operation = "load" | "start" | "stop" | "unload";

export interface InstanceRecord {
  readonly instanceId: string;
  readonly state: SliceState;
  /** When the current state was entered (ms). */
  readonly sinceMs: number;
  /** When the current in-progress state fails unless its operation finished (ms). */
  readonly deadlineAtMs?: number;
  /** Increases with every operation, so the completion of an abandoned one is recognised and ignored. */
  readonly epoch: number;
  /** Why the instance failed. */
  readonly reason?: string;
}

export type LifecycleEvent =
  | { type: "command"; command: LifecycleCommand }
  /** The operation started at `epoch` finished. */
  | { type: "completed"; epoch: number }
  /** The operation started at `epoch` failed; without an epoch: the sandbox failed on its own. */
  | { type: "failed"; epoch?: number; reason: string }
  /** Time passed: check the deadline. */
  | { type: "tick" };

export type LifecycleEffect =
  | { type: "report"; from: SliceState; to: SliceState | Removed; reason?: string }
  | { type: "run"; operation: Operation; epoch: number }
  /** Terminate the sandbox now and release it (failure or deadline). */
  | { type: "abort" }
  /** Wake the executor at this time (ms) to check a deadline. */
  | { type: "schedule"; atMs: number }
  /** The instance is gone: drop its record. */
  | { type: "forget" };

export interface StepResult {
  record: InstanceRecord | undefined;
  effects: LifecycleEffect[];
  /** Set when a command is refused; record and effects are then unchanged / empty. */
  rejected?: string;
}

function refuse(record: InstanceRecord | undefined, message: string): StepResult {
  return { record, effects: [], rejected: message };
}

function fail(record: InstanceRecord, nowMs: number, reason: string): StepResult {
  return {
    record: {
      instanceId: record.instanceId,
      state: "FAILED",
      sinceMs: nowMs,
      epoch: record.epoch + 1,
      reason,
    },
    effects: [{ type: "report", from: record.state, to: "FAILED", reason }, { type: "abort" }],
  };
}

function command(
  record: InstanceRecord | undefined,
  instanceId: string,
  cmd: LifecycleCommand,
  nowMs: number,
  deadlines: LifecycleDeadlines,
): StepResult {
  if (cmd === "LOAD" && record !== undefined) {
    return refuse(
      record,
      `instance ${instanceId} already exists (${record.state}); LOAD needs a new instance`,
    );
  }
  if (cmd !== "LOAD" && record === undefined) return refuse(record, `instance ${instanceId} does not exist`);
  if (record !== undefined && !canTransition(record.state, cmd)) {
    const from = TRANSITIONS[record.state].filter(isCommand);
    const needs = SLICE_STATES.filter((s) => canTransition(s, cmd)).filter((s) => !isCommand(s));
    return refuse(
      record,
      `cannot ${cmd} instance ${instanceId}: it is ${record.state} (${cmd} needs ${needs.join(" or ")}` +
        `${from.length ? `; from ${record.state} the commands are ${from.join(", ")}` : ""})`,
    );
  }
  const state = inProgressOf(cmd);
  const epoch = (record?.epoch ?? 0) + 1;
  const deadlineAtMs = nowMs + deadlineOf(state, deadlines);
  return {
    record: { instanceId, state, sinceMs: nowMs, deadlineAtMs, epoch },
    effects: [
      { type: "report", from: cmd, to: state },
      { type: "run", operation: OPERATION_OF[state], epoch },
      { type: "schedule", atMs: deadlineAtMs },
    ],
  };
}

/**
 * One step of an instance's lifecycle. `record` is undefined for an instance the node does not have.
 * Pure: the same inputs give the same outputs.
 */
export function step(
  record: InstanceRecord | undefined,
  instanceId: string,
  event: LifecycleEvent,
  nowMs: number,
  deadlines: LifecycleDeadlines = DEFAULT_DEADLINES,
): StepResult {
  switch (event.type) {
    case "command":
      return command(record, instanceId, event.command, nowMs, deadlines);
    case "completed": {
      if (!record || event.epoch !== record.epoch || !isInProgress(record.state) || isCommand(record.state)) {
        return { record, effects: [] }; // Abandoned operation (the instance failed or moved on meanwhile).
      }
      const to = RESULT_OF[record.state as InProgressState];
      if (to === REMOVED) {
        return {
          record: undefined,
          effects: [{ type: "report", from: record.state, to }, { type: "forget" }],
        };
      }
      return {
        record: { instanceId, state: to, sinceMs: nowMs, epoch: record.epoch },
        effects: [{ type: "report", from: record.state, to }],
      };
    }
    case "failed": {
      if (!record || record.state === "FAILED") return { record, effects: [] };
      if (event.epoch !== undefined && event.epoch !== record.epoch) return { record, effects: [] };
      // The sandbox dying while it is being unloaded is what unloading does; only the unload itself can fail.
      if (record.state === "UNLOADING" && event.epoch === undefined) return { record, effects: [] };
      return fail(record, nowMs, event.reason);
    }
    case "tick": {
      if (!record || record.deadlineAtMs === undefined) return { record, effects: [] };
      // Timers may fire a little early against the clock: wake again at the deadline.
      if (nowMs < record.deadlineAtMs) {
        return { record, effects: [{ type: "schedule", atMs: record.deadlineAtMs }] };
      }
      const limit = record.deadlineAtMs - record.sinceMs;
      return fail(record, nowMs, `${record.state} did not finish within its deadline of ${limit} ms`);
    }
  }
}
