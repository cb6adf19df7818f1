/**
 * The node's real lifecycle executor: the sandbox's `SliceExecutor` behind the `LifecycleExecutor` interface
 * that the NodeDeploymentManager drives.
 *
 * - `load` resolves the artifact (manifest at once, bundle fetched inside LOADING so the executor's deadline
 *   covers the fetch) and runs LOAD; every operation resolves on success and rejects with the executor's
 *   reason when it ends in FAILED.
 * - A crash (the sandbox died, ran out of memory, a call wedged it while no operation ran on the instance) is
 *   what the SliceExecutor reports as one (its host reports the exit, its lifecycle decides it is a crash):
 *   it is handed on to `onCrash` for the NDM, nothing here infers it.
 * - `unload` of an instance the executor no longer has (a LOAD that was refused) succeeds: there is nothing
 *   left to release, which is what the NDM asks for.
 * - Calls that slices make to other slices go to `onOutboundCall`, given at construction (the node passes one
 *   that reaches its invoker); without one they fail with 503.
 */

import { AetherError } from "../core/mod.ts";
import {
  type ArtifactSource,
  type OutboundCallHandler,
  SliceExecutor,
  type SliceExecutorOptions,
  type SliceLogEntry,
  type SliceSandboxSettings,
  type StateChange,
} from "../sandbox/mod.ts";
import type { ExecutorCrash, ExecutorOp, LifecycleExecutor } from "./executor.ts";

export interface SandboxExecutorOptions {
  /** The artifact for `g:a:v`: its manifest now, its bundle (or a way to fetch it) for LOADING. */
  resolveArtifact(coordinates: string): ArtifactSource | Promise<ArtifactSource>;
  /** The slice's sandbox settings (trusted, CPU limits) from its blueprint; none: the node's defaults. */
  resolveSettings?(coordinates: string): SliceSandboxSettings | undefined;
  /** The configuration values an instance loads with (set at run time); none: the schema's defaults. */
  resolveConfig?(coordinates: string): Record<string, unknown>;
  /** An instance failed on its own, outside any operation. */
  onCrash(crash: ExecutorCrash): void;
  /** Every state change the executor makes (for logs). */
  onStateChange?(change: StateChange): void;
  /** Where slice log lines go (none: dropped). */
  onLog?(entry: SliceLogEntry): void;
  /** Where calls that slices make to other slices go (none: they fail with 503). */
  onOutboundCall?: OutboundCallHandler;
  /** Passed to the SliceExecutor (policy, deadlines, host timeouts and limits, warm processes, clock). */
  sandbox?: Omit<SliceExecutorOptions, "onStateChange" | "onCrash" | "onOutboundCall" | "onLog">;
}

export class SandboxExecutor implements LifecycleExecutor {
  /** The sandbox executor itself: `invoke`, `get`, `list` for the invocation layer. */
  readonly slices: SliceExecutor;
  readonly #options: SandboxExecutorOptions;
  /** Instance id -> the operation this adapter is running on it. */
  readonly #busy = new Map<string, ExecutorOp>();

  constructor(options: SandboxExecutorOptions) {
    this.#options = options;
    this.slices = new SliceExecutor({
      ...options.sandbox,
      onStateChange: (change) => options.onStateChange?.(change),
      onCrash: (crash) =>
        options.onCrash({
          instanceId: crash.instanceId,
          reason: crash.reason,
          ...(crash.requestIds ? { requestIds: crash.requestIds } : {}),
        }),
      onOutboundCall: options.onOutboundCall,
      onLog: (entry) => options.onLog?.(entry),
    });
  }

  load(instanceId: string, artifact: string): Promise<void> {
    return this.#track(instanceId, "load", async () => {
      const source = await this.#options.resolveArtifact(artifact);
      if (source.manifest.coordinates !== artifact) {
        throw new AetherError(
          "internal",
          `the artifact resolved for ${artifact} is ${source.manifest.coordinates}`,
        );
      }
      const settings = this.#options.resolveSettings?.(artifact);
      const config = this.#options.resolveConfig?.(artifact);
      await this.slices.run({
        type: "LOAD",
        instanceId,
        artifact: source,
        ...(settings ? { settings } : {}),
        ...(config ? { config } : {}),
      });
    });
  }

  activate(instanceId: string): Promise<void> {
    return this.#track(instanceId, "activate", () => this.slices.run({ type: "ACTIVATE", instanceId }));
  }

  deactivate(instanceId: string): Promise<void> {
    return this.#track(instanceId, "deactivate", () => this.slices.run({ type: "DEACTIVATE", instanceId }));
  }

  unload(instanceId: string): Promise<void> {
    return this.#track(instanceId, "unload", async () => {
      if (!this.slices.get(instanceId)) return;
      await this.slices.run({ type: "UNLOAD", instanceId });
    });
  }

  /** Unloads everything and releases every sandbox (node shutdown). */
  close(): Promise<void> {
    return this.slices.close();
  }

  async #track(instanceId: string, op: ExecutorOp, work: () => Promise<void>): Promise<void> {
    const running = this.#busy.get(instanceId);
    if (running) {
      throw new AetherError("conflict", `${op} ${instanceId}: ${running} is still running`, { instanceId });
    }
    this.#busy.set(instanceId, op);
    try {
      await work();
    } finally {
      this.#busy.delete(instanceId);
    }
  }
}
