/**
 * What `GET /api/v1/slices`, `blueprint status` and `--wait` show: for every slice, its target and where its
 * instances are and in which state. Pure, from a deployment view and the mesh's connectivity.
 */

import type { NodeId } from "../core/mod.ts";
import type { CrashReport, LifecycleState, TargetBackoff } from "../model/mod.ts";
import { type DeploymentView, routedVersion } from "./view.ts";

export interface InstanceStatus {
  node: NodeId;
  n: number;
  version: string;
  state: LifecycleState;
  /** Whether this node can reach the instance's node now. */
  connected: boolean;
  updatedAt: number;
  reason?: string;
}

export interface SliceStatus {
  /** `group:artifact`. */
  slice: string;
  /** Target version; undefined for a slice that is being removed (no target). */
  version?: string;
  desired: number;
  /** ACTIVE instances of the target version on connected nodes. */
  active: number;
  owners: string[];
  /**
   * Desired ACTIVE count reached (of the target version, and of the routed version when there is one) and
   * nothing else of the slice left (no other version, nothing in progress).
   */
  settled: boolean;
  /** Present while the slice backs off after failures (until it has been healthy for a while). */
  backoff?: BackoffStatus;
  /**
   * While `routing/` names the target version and another one: that other version, which runs next to the
   * target's at the same desired count (see cluster_manager.ts), with its ACTIVE count and its own backoff.
   */
  routed?: { version: string; desired: number; active: number; backoff?: BackoffStatus };
  /** Requests during which instances crashed (request id, instances crashed), most recent last. */
  crashes?: CrashReport[];
  /** The version weights of `routing/`, by version, while a record exists. */
  weights?: Record<string, number>;
  /** Every instance of every version. */
  instances: InstanceStatus[];
  /**
   * Why instances of the slice cannot be placed now (no node fits its placement rules, every node cordoned,
   * ...): the leader's placement reasons naming this slice. Absent when nothing is pending.
   */
  pending?: string[];
}

export interface BackoffStatus {
  failures: number;
  retryAt: number;
  lastReason?: string;
}

export function sliceStatuses(
  view: DeploymentView,
  isConnected: (node: NodeId) => boolean,
  placementWaiting: readonly string[] = [],
): SliceStatus[] {
  const bases = new Set([...view.targets.keys(), ...view.instancesByBase.keys()]);
  return [...bases].sort().map((slice) => {
    const pending = pendingReasons(slice, placementWaiting);
    const target = view.targets.get(slice)?.record;
    const instances: InstanceStatus[] = (view.instancesByBase.get(slice) ?? []).map((i) => ({
      node: i.node,
      n: i.n,
      version: i.version,
      state: i.record.state,
      connected: isConnected(i.node),
      updatedAt: i.record.updatedAt,
      ...(i.record.reason !== undefined ? { reason: i.record.reason } : {}),
    }));
    const activeOf = (version: string) =>
      instances.filter((i) => i.version === version && i.state === "ACTIVE" && i.connected).length;
    const active = target ? activeOf(target.version) : 0;
    const desired = target?.instances ?? 0;
    const routing = view.routing.get(slice)?.record;
    const routedTo = target ? routedVersion(target.version, routing) : undefined;
    const routedBackoff = target?.routedBackoff?.version === routedTo ? target?.routedBackoff : undefined;
    const routed = routedTo === undefined ? undefined : {
      version: routedTo,
      desired,
      active: activeOf(routedTo),
      ...(routedBackoff ? { backoff: backoffStatus(routedBackoff) } : {}),
    };
    const settled = active === desired && (routed === undefined || routed.active === desired) &&
      instances.length === desired * (routed ? 2 : 1);
    return {
      slice,
      ...(target ? { version: target.version } : {}),
      desired,
      active,
      owners: target?.owners ?? [],
      settled,
      ...(target?.backoff ? { backoff: backoffStatus(target.backoff) } : {}),
      ...(routed ? { routed } : {}),
      ...(target?.crashes?.length ? { crashes: target.crashes.map((c) => ({ ...c })) } : {}),
      ...(routing
        ? { weights: { [routing.oldVersion]: routing.oldWeight, [routing.newVersion]: routing.newWeight } }
        : {}),
      instances,
      ...(pending.length > 0 ? { pending } : {}),
    };
  });
}

/**
 * The placement reasons (cluster_manager.ts `waiting` lines: `g:a:1.0.0: cannot place 2 instance(s): ...`,
 * `g:a: cannot move off n2 (...): ...`) about slice `g:a`, without the slice's name in front.
 */
export function pendingReasons(slice: string, waiting: readonly string[]): string[] {
  const reasons: string[] = [];
  for (const line of waiting) {
    if (!/: cannot (place|move off) /.test(line)) continue;
    const subject = line.slice(0, line.indexOf(": cannot "));
    if (subject === slice || subject.startsWith(`${slice}:`)) {
      const version = subject === slice ? "" : `${subject.slice(slice.length + 1)}: `;
      reasons.push(version + line.slice(subject.length + 2));
    }
  }
  return reasons;
}

function backoffStatus(backoff: TargetBackoff): BackoffStatus {
  return {
    failures: backoff.failures,
    retryAt: backoff.retryAt,
    ...(backoff.lastReason !== undefined ? { lastReason: backoff.lastReason } : {}),
  };
}

/** The slices a blueprint owns, and whether all of them settled. */
export function blueprintStatus(
  view: DeploymentView,
  blueprint: string,
  isConnected: (node: NodeId) => boolean,
): { blueprint: string; settled: boolean; slices: SliceStatus[] } {
  const slices = sliceStatuses(view, isConnected).filter((s) => s.owners.includes(blueprint));
  return { blueprint, settled: slices.length > 0 && slices.every((s) => s.settled), slices };
}
