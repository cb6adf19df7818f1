/**
 * Infrastructure services as slices (seed 004, "Infrastructure Services ARE Slices"): the bundled service slices
 * of infra/ are published into the cluster's artifact repository and deployed like any slice when `requires`
 * names them, and `ctx.infra` calls then reach their instances through the ordinary invoker (retries,
 * deadlines, failover, request ids, per-method metrics, traces).
 *
 * Bootstrap of one service (`ensure`), on whichever node handles the request that requires it:
 *   1. reuse: a target for `aether.infra:<name>` at the bundled version exists → wait until one instance is
 *      ACTIVE (at another version, e.g. after a runtime upgrade: publish and deploy the bundled version, with
 *      the target's instance count, like a new version of any slice);
 *   2. publish: the bundled artifact is pushed into the repository unless the same digest is there (another
 *      digest under the same coordinates is refused: a cluster never runs an infra artifact the node does not
 *      trust);
 *   3. deploy: one instance per member (capped at MAX_INSTANCES), so every node has a local instance and the
 *      invoker's local-first choice keeps a cache hit on the node that took the request; the leader places
 *      them like any slice's;
 *   4. wait until every desired instance is ACTIVE (at least one by the deadline), then the caller continues
 *      with the application's change.
 * Two nodes bootstrapping at once: the deploy is a compare-and-set on the target record, the loser finds the
 * target and reuses it.
 */

import { AetherError, type Logger, type NodeId } from "../core/mod.ts";
import type { KvCommand } from "../kv/mod.ts";
import {
  type KvReader,
  MAX_INSTANCES,
  planDeploy,
  type SliceStatus,
  sliceStatuses,
  ViewReader,
} from "../deployment/mod.ts";
import type { SliceManifest } from "../../slices/host.ts";
import { decodeValue, kvKeys } from "../model/mod.ts";
import { type BundledRepository, type BundledService, readBundledRepository } from "./bundled.ts";

export interface ServiceSlicesOptions {
  /** The bundled repository (read at node start). */
  bundled: Promise<BundledRepository>;
  state(): KvReader;
  write(command: KvCommand): Promise<{ revision: number; succeeded?: boolean }>;
  members(): readonly NodeId[];
  isConnected(node: NodeId): boolean;
  nowMs(): number;
  /** The repository: publish a bundled artifact, and what is published under some coordinates. */
  publish(manifest: SliceManifest, bundle: Uint8Array): Promise<unknown>;
  published(coordinates: string): { sha256: string } | undefined;
  log: Logger;
}

/** What `aether infra status` shows of a service slice. */
export interface ServiceSliceStatus {
  artifact: string;
  sha256: string;
  /** The bundled artifact is in the cluster's repository (with this digest). */
  published: boolean;
  /** Deployed: a target exists. */
  deployed: boolean;
  desired: number;
  active: number;
  instances: Array<{ node: string; state: string }>;
}

/** How often a bootstrap looks at the instances' states while it waits. */
const POLL_MS = 100;

export class ServiceSlices {
  readonly #o: ServiceSlicesOptions;
  readonly #views = new ViewReader();
  #repository: BundledRepository | undefined;
  /** Bootstraps in progress on this node, by service: concurrent `requires` of one service share one. */
  readonly #ensuring = new Map<string, Promise<void>>();
  /** The version of each service's target, by the record's modRevision (read on every call). */
  readonly #targetVersions = new Map<string, { modRevision: number; version: string | undefined }>();

  constructor(options: ServiceSlicesOptions) {
    this.#o = options;
    options.bundled.then((repository) => {
      this.#repository = repository;
      for (const problem of repository.problems) {
        options.log.warn("bundled infrastructure service not usable; the node serves it itself", { problem });
      }
    }, (e) => options.log.warn("bundled infrastructure repository unreadable", { error: String(e) }));
  }

  /** The bundled slice of a service, once the repository was read. */
  bundledFor(name: string): BundledService | undefined {
    return this.#repository?.services.get(name);
  }

  /** Names and versions of the bundled services (after the repository was read). */
  async names(): Promise<string[]> {
    return [...(await this.#o.bundled).services.keys()];
  }

  /**
   * True when the service has a bundled slice deployed at the bundled version: calls go to its instances
   * through the invoker. Another version (a runtime upgraded since the service was deployed) is not called:
   * its instances would be refused the engine (another digest), so the nodes serve the service until
   * `requires` or `aether infra install` moves it to the bundled version.
   */
  deployed(name: string): boolean {
    const bundled = this.bundledFor(name);
    return bundled !== undefined && this.#targetVersion(bundled) === bundled.version;
  }

  #targetVersion(bundled: BundledService): string | undefined {
    const entry = this.#o.state().get(kvKeys.target(baseOf(bundled)));
    if (!entry) return undefined;
    const known = this.#targetVersions.get(bundled.name);
    if (known?.modRevision === entry.modRevision) return known.version;
    let version: string | undefined;
    try {
      version = decodeValue("target", entry.value, entry.key).version;
    } catch {
      version = undefined;
    }
    this.#targetVersions.set(bundled.name, { modRevision: entry.modRevision, version });
    return version;
  }

  /** Publishes, deploys and waits for the service's slice (see the file comment); no-op without a bundle. */
  async ensure(name: string, timeoutMs: number): Promise<void> {
    const bundled = (await this.#o.bundled).services.get(name);
    if (!bundled) return;
    let running = this.#ensuring.get(name);
    if (!running) {
      running = this.#bootstrap(bundled, Date.now() + timeoutMs).finally(() => this.#ensuring.delete(name));
      this.#ensuring.set(name, running);
    }
    await running;
  }

  status(name: string): ServiceSliceStatus | undefined {
    const bundled = this.bundledFor(name);
    if (!bundled) return undefined;
    const slice = this.#slice(bundled);
    return {
      artifact: bundled.coordinates,
      sha256: bundled.sha256,
      published: this.#o.published(bundled.coordinates)?.sha256 === bundled.sha256,
      deployed: this.#targetVersion(bundled) === bundled.version,
      desired: slice?.desired ?? 0,
      active: slice?.active ?? 0,
      instances: (slice?.instances ?? []).map((i) => ({ node: i.node, state: i.state })),
    };
  }

  async #bootstrap(bundled: BundledService, deadlineMs: number): Promise<void> {
    const log = this.#o.log.with({ service: bundled.name, artifact: bundled.coordinates });
    // Reuse a running service at the bundled version; deploy it when absent or at another version.
    if (this.#targetVersion(bundled) !== bundled.version) {
      await this.#publish(bundled, log);
      const created = await this.#deploy(bundled);
      if (created) log.info("infrastructure service deployed from the bundled repository");
    }
    await this.#waitActive(bundled, deadlineMs);
  }

  async #publish(bundled: BundledService, log: Logger): Promise<void> {
    const published = this.#o.published(bundled.coordinates);
    if (published?.sha256 === bundled.sha256) return;
    if (published) {
      throw new AetherError(
        "conflict",
        `${bundled.coordinates} in the cluster's repository has sha-256 ${published.sha256}, not the bundled ` +
          `${bundled.sha256}: the runtime deploys only the infrastructure artifacts it ships`,
        { service: bundled.name },
      );
    }
    await this.#o.publish(bundled.manifest, bundled.bundle);
    log.info("bundled infrastructure service published into the repository", { sha256: bundled.sha256 });
  }

  /**
   * Creates the target (one instance per member) or moves it to the bundled version (keeping its instance
   * count); false when another node did it first.
   */
  async #deploy(bundled: BundledService): Promise<boolean> {
    const perMember = Math.max(1, Math.min(MAX_INSTANCES, this.#o.members().length));
    for (let attempt = 1; attempt <= 3; attempt++) {
      const state = this.#o.state();
      if (this.#targetVersion(bundled) === bundled.version) return false;
      const current = state.get(kvKeys.target(baseOf(bundled)));
      const instances = current ? decodeValue("target", current.value, current.key).instances : perMember;
      const planned = planDeploy(state, bundled.coordinates, Math.max(1, instances), this.#o.nowMs());
      const outcome = await this.#o.write(planned.command);
      if (outcome.succeeded !== false) return true;
    }
    return false;
  }

  /** Waits until every desired instance is ACTIVE; at the deadline one ACTIVE instance is enough. */
  async #waitActive(bundled: BundledService, deadlineMs: number): Promise<void> {
    for (;;) {
      const slice = this.#slice(bundled);
      const active = slice?.active ?? 0;
      if (slice && active >= Math.max(1, slice.desired)) return;
      if (Date.now() >= deadlineMs) {
        if (active >= 1) return;
        const states = (slice?.instances ?? []).map((i) =>
          `${i.node}: ${i.state}${i.reason ? ` (${i.reason})` : ""}`
        );
        throw new AetherError(
          "timeout",
          `infrastructure service ${bundled.name} (${bundled.coordinates}) has no ACTIVE instance yet` +
            (states.length > 0 ? `; instances: ${states.join(", ")}` : "; no instance placed yet"),
          { service: bundled.name },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  #slice(bundled: BundledService): SliceStatus | undefined {
    const base = baseOf(bundled);
    return sliceStatuses(this.#views.read(this.#o.state()), this.#o.isConnected).find((s) =>
      s.slice === base
    );
  }
}

function baseOf(bundled: BundledService): string {
  return `aether.infra:${bundled.name}`;
}

/** What the node hands `startServiceSlices`: its core pieces and the repository feature. */
export interface ServiceSlicesCore {
  state(): KvReader;
  kv: { write(command: KvCommand): Promise<{ revision: number; succeeded?: boolean }> };
  members: readonly NodeId[];
  isConnected(node: NodeId): boolean;
  clock: { now(): number };
  log: Logger;
  repository: {
    publishBundled(manifest: SliceManifest, bundle: Uint8Array): Promise<unknown>;
    published(coordinates: string): { sha256: string } | undefined;
  };
}

/** The node's service slices, reading the bundled repository (infra/dist) shipped with the runtime. */
export function startServiceSlices(core: ServiceSlicesCore, dir?: URL): ServiceSlices {
  return new ServiceSlices({
    bundled: readBundledRepository(dir),
    state: () => core.state(),
    write: (command) => core.kv.write(command),
    members: () => core.members,
    isConnected: (node) => core.isConnected(node),
    nowMs: () => Math.floor(core.clock.now()),
    publish: (manifest, bundle) => core.repository.publishBundled(manifest, bundle),
    published: (coordinates) => core.repository.published(coordinates),
    log: core.log.with({ component: "infra-slices" }),
  });
}
