/** The link between a SliceHost and its sandbox, the same for a Worker and a child process. */

import type { HostMessage, RuntimeMessage } from "../../slices/host.ts";

/**
 * Why a sandbox ended without being asked to. `cpu`: over the hard CPU share or a call's CPU budget (killed at
 * once); `retired`: over the soft CPU share (ended after its current calls, so that it is replaced).
 */
export type FailureKind =
  | "load"
  | "hook"
  | "deadline"
  | "crash"
  | "exit"
  | "memory"
  | "cpu"
  | "retired"
  | "protocol";

export interface ChannelEvents {
  message(message: RuntimeMessage): void;
  /** The sandbox ended on its own (crash, memory limit, exit, garbage on the wire). Called at most once. */
  ended(kind: FailureKind, message: string): void;
  /** A message sent earlier could not be serialized (batched channels find out after `send` returned). */
  undeliverable(message: HostMessage, error: Error): void;
}

export interface SandboxChannel {
  /** The sandbox's process id (process isolation only). */
  readonly pid?: number;
  /**
   * Process isolation: the CPU time (ms, every thread) the sandbox process has used, as its watchdog last
   * reported it; undefined before the first report. Worker isolation has no such count.
   */
  cpuMs?(): number | undefined;
  /** May throw when the message cannot be serialized, or report it later through `undeliverable`. */
  send(message: HostMessage): void;
  /** Ends the sandbox at once; resolves when its worker or process and every stream are released. */
  close(): Promise<void>;
}
