/**
 * What `GET /api/v1/slices`, `blueprint status` and `--wait` show: for every slice, its target and where its
 * instances are and in which state. Pure, from a deployment view and the mesh's connectivity.
 */

import type { NodeId } from "../core/ids.ts";
import type { LifecycleState } from "../kv/schema.ts";
import type { DeploymentView } from "./view.ts";

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
  /** Desired ACTIVE count reached and nothing else of the slice left (no other version, nothing in progress). */
  settled: boolean;
  /** Present while the slice backs off after failures (until it has been healthy for a while). */
  backoff?: { failures: number; retryAt: number; lastReason?: string };
  instances: InstanceStatus[];
}

export function sliceStatuses(view: DeploymentView, isConnected: (node: NodeId) => boolean): SliceStatus[] {
  const bases = new Set([...view.targets.keys(), ...view.instancesByBase.keys()]);
  return [...bases].sort().map((slice) => {
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
    const active = target
      ? instances.filter((i) => i.version === target.version && i.state === "ACTIVE" && i.connected).length
      : 0;
    const desired = target?.instances ?? 0;
    const settled = active === desired && instances.length === desired;
    return {
      slice,
      ...(target ? { version: target.version } : {}),
      desired,
      active,
      owners: target?.owners ?? [],
      settled,
      ...(target?.backoff
        ? {
          backoff: {
            failures: target.backoff.failures,
            retryAt: target.backoff.retryAt,
            ...(target.backoff.lastReason !== undefined ? { lastReason: target.backoff.lastReason } : {}),
          },
        }
        : {}),
      instances,
    };
  });
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
