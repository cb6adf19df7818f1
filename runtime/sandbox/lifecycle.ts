/**
 * The slice instance lifecycle on a node: one transition table, and the pure reducer that the node's executor
 * runs. Its states are the cluster's lifecycle vocabulary, the one the `instances/` records in KV use
 * (`LifecycleState`): there is no second list of instance states.
 *
 *   LOAD → LOADING → LOADED → ACTIVATE → ACTIVATING → ACTIVE → DEACTIVATE → DEACTIVATING → LOADED
 *   LOADED | FAILED → UNLOAD → UNLOADING → (removed)
 *
 * Who moves an instance along which edge (one owner per transition):
 * - the leader writes the command states (LOAD, ACTIVATE, DEACTIVATE, UNLOAD) to KV;
 * - this reducer, run by the node's SliceExecutor, takes a command into its in-progress state, the in-progress
 *   state to its result (or FAILED when its operation fails or passes its deadline), and a resting instance
 *   (LOADED, ACTIVE) to FAILED when its sandbox exits on its own (a crash: reported as an effect);
 * - the node's deployment manager copies these states into KV; it decides none of them.
 * The sandbox host's own state (`SandboxState`: idle, booting, running, exited) is a different thing: the
 * host reports its sandbox's end as an event (`exited`), and the reducer decides what it means here.
 *
 * FAILED can follow every state but FAILED itself: from an in-progress state when its work fails or passes
 * its deadline, and also from LOADED and ACTIVE (and a command state the node has not taken up yet) because a
 * sandbox can crash or be killed for its memory while idle; that must be recorded, or a dead instance would
 * keep being routed to. From FAILED the only way is UNLOAD.
 *
 * The reducer takes the time as an input and has no timers or IO, so it is tested exhaustively and can run in
 * the simulator; `executor.ts` is the shell that carries out its effects.
 */

import { LIFECYCLE_STATES, type LifecycleState } from "../model/mod.ts";

export { LIFECYCLE_STATES, type LifecycleState };
export type LifecycleCommand = "LOAD" | "ACTIVATE" | "DEACTIVATE" | "UNLOAD";
export type InProgressState = "LOADING" | "ACTIVATING" | "DEACTIVATING" | "UNLOADING";

/** Reported when UNLOADING finishes: the instance (and its KV key) is gone. */
export const REMOVED = "REMOVED";
export type Removed = typeof REMOVED;

/** The one transition table. */
export const TRANSITIONS: Readonly<Record<LifecycleState, readonly LifecycleState[]>> = Object.freeze({
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

export function canTransition(from: LifecycleState, to: LifecycleState): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isCommand(state: LifecycleState): state is LifecycleCommand {
  return state === "LOAD" || state === "ACTIVATE" || state === "DEACTIVATE" || state === "UNLOAD";
}

/** As the original defines it: every state but LOADED, ACTIVE and FAILED (these block autoscaling). */
export function isInProgress(state: LifecycleState): boolean {
  return state !== "LOADED" && state !== "ACTIVE" && state !== "FAILED";
}

/** UNLOADING is the last state: when it finishes the instance is removed. */
export function isTerminal(state: LifecycleState): boolean {
  return state === "UNLOADING";
}

const IN_PROGRESS_OF: Record<LifecycleCommand, InProgressState> = {
  LOAD: "LOADING",
  ACTIVATE: "ACTIVATING",
  DEACTIVATE: "DEACTIVATING",
  UNLOAD: "UNLOADING",
};

const RESULT_OF: Record<InProgressState, LifecycleState | Removed> = {
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

/** The executor's record of one instance on this node (the KV `ExecutorRecord` is the cluster's copy). */
export interface ExecutorRecord {
  readonly instanceId: string;
  readonly state: LifecycleState;
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
  /** The operation started at `epoch` failed. */
  | { type: "failed"; epoch: number; reason: string }
  /** The host reports that its sandbox exited on its own (crashed, was killed, failed a hook or its load). */
  | { type: "exited"; reason: string }
  /** Time passed: check the deadline. */
  | { type: "tick" };

export type LifecycleEffect =
  | { type: "report"; from: LifecycleState; to: LifecycleState | Removed; reason?: string }
  | { type: "run"; operation: Operation; epoch: number }
  /** Terminate the sandbox now and release it (failure or deadline). */
  | { type: "abort" }
  /** The sandbox of a resting instance (LOADED, ACTIVE) exited outside any operation: report the crash. */
  | { type: "crashed"; reason: string }
  /** Wake the executor at this time (ms) to check a deadline. */
  | { type: "schedule"; atMs: number }
  /** The instance is gone: drop its record. */
  | { type: "forget" };

export interface StepResult {
  record: ExecutorRecord | undefined;
  effects: LifecycleEffect[];
  /** Set when a command is refused; record and effects are then unchanged / empty. */
  rejected?: string;
}

function refuse(record: ExecutorRecord | undefined, message: string): StepResult {
  return { record, effects: [], rejected: message };
}

function fail(record: ExecutorRecord, nowMs: number, reason: string): StepResult {
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
  record: ExecutorRecord | undefined,
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
    const needs = LIFECYCLE_STATES.filter((s) => canTransition(s, cmd)).filter((s) => !isCommand(s));
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
  record: ExecutorRecord | undefined,
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
      if (!record || record.state === "FAILED" || event.epoch !== record.epoch) {
        return { record, effects: [] };
      }
      return fail(record, nowMs, event.reason);
    }
    case "exited": {
      if (!record || record.state === "FAILED") return { record, effects: [] };
      // The sandbox dying while it is being unloaded is what unloading does; only the unload itself can fail.
      if (record.state === "UNLOADING") return { record, effects: [] };
      const failed = fail(record, nowMs, event.reason);
      // Inside an operation the exit is that operation's failure (its caller hears it); otherwise a crash.
      if (isInProgress(record.state) && !isCommand(record.state)) return failed;
      return { ...failed, effects: [...failed.effects, { type: "crashed", reason: event.reason }] };
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
