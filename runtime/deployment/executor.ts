/**
 * The executor the NodeDeploymentManager drives: the node-side lifecycle of slice instances. The sandbox's
 * `SliceExecutor` is the real one; the node's glue adapts it to this interface (fetching the artifact for
 * `load`), and the simulator has its own model of it.
 *
 * Contract:
 * - every call settles (resolves on success, rejects with an Error saying why on failure) within the deadline
 *   of its in-progress state, which the executor enforces itself;
 * - `load` on an instance id already present and `activate`/`deactivate` out of order reject;
 * - `unload` releases everything of the instance (worker, timers, ports), from LOADED or after a failure, and
 *   may be called for an instance whose `load` failed;
 * - an instance that fails on its own (a crashed worker, a killed sandbox) is reported to the NDM as a crash.
 */

export type ExecutorOp = "load" | "activate" | "deactivate" | "unload";

export interface ExecutorAction {
  op: ExecutorOp;
  /** `group:artifact:version/n`: unique on the node. */
  instanceId: string;
  /** `group:artifact:version`. */
  artifact: string;
}

export type ExecutorOutcome =
  | { instanceId: string; op: ExecutorOp; ok: true }
  | { instanceId: string; op: ExecutorOp; ok: false; reason: string };

/** An instance that failed on its own, outside any operation. */
export interface ExecutorCrash {
  instanceId: string;
  reason: string;
  /** The request ids of the method calls in flight when it crashed, if any (a crash during a call). */
  requestIds?: string[];
}

export interface LifecycleExecutor {
  load(instanceId: string, artifact: string): Promise<void>;
  activate(instanceId: string): Promise<void>;
  deactivate(instanceId: string): Promise<void>;
  unload(instanceId: string): Promise<void>;
}

/** Carries out one action; never rejects: a failure becomes an outcome with its reason. */
export async function perform(executor: LifecycleExecutor, action: ExecutorAction): Promise<ExecutorOutcome> {
  try {
    switch (action.op) {
      case "load":
        await executor.load(action.instanceId, action.artifact);
        break;
      case "activate":
        await executor.activate(action.instanceId);
        break;
      case "deactivate":
        await executor.deactivate(action.instanceId);
        break;
      case "unload":
        await executor.unload(action.instanceId);
        break;
    }
    return { instanceId: action.instanceId, op: action.op, ok: true };
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    return { instanceId: action.instanceId, op: action.op, ok: false, reason };
  }
}
