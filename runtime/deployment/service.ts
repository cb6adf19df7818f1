/**
 * What the deployment feature offers the features built on it (invocation, HTTP routing), as the node service
 * `"deployment"`:
 *
 * ```ts
 * const deployment = ctx.services.use<DeploymentService>(DEPLOYMENT_SERVICE);
 * const [endpoint] = deployment.endpoints.lookup("org.example:inventory", "reserve", deployment.isConnected);
 * if (endpoint.node === ctx.self) {
 *   await deployment.executor.invoke(deployment.instanceIdOf(endpoint), "reserve", request, { requestId });
 * }
 * deployment.setOutboundCallHandler((call) => invoker.call(call));
 * ```
 */

import type { NodeId } from "../core/ids.ts";
import type { OutboundCallHandler, SliceExecutor, SliceLogEntry } from "../sandbox/mod.ts";
import type { Endpoint, EndpointRegistry } from "./endpoints.ts";

export const DEPLOYMENT_SERVICE = "deployment";

export interface DeploymentService {
  /**
   * The node's sandbox executor. `invoke(instanceId, method, request, options)` calls an ACTIVE local instance;
   * `get(instanceId)` / `list()` show what runs here. Lifecycle commands belong to the deployment feature:
   * do not `submit` to it.
   */
  readonly executor: SliceExecutor;
  /** Every ACTIVE instance's methods in the cluster, current with this node's applied state. */
  readonly endpoints: EndpointRegistry;
  /** The executor's instance id of an endpoint (`g:a:v/n`; meaningful on `endpoint.node`). */
  instanceIdOf(endpoint: Endpoint): string;
  /** This node, or a peer the mesh reaches now: pass to `endpoints.lookup` to skip departed nodes at once. */
  isConnected(node: NodeId): boolean;
  /** Called after endpoints changed (an applied batch touched `endpoints/`, or a snapshot replaced the state). */
  onEndpointsChanged(listener: () => void): () => void;
  /**
   * Installs the handler for calls that local slices make to other slices (undefined removes it). Until one is
   * installed such calls fail with 503 "no invoker is installed".
   */
  setOutboundCallHandler(handler: OutboundCallHandler | undefined): void;
  /** Installs where local slices' log lines go (undefined: the node's log, with the request id). */
  setLogHandler(handler: ((entry: SliceLogEntry) => void) | undefined): void;
}

/** `g:a:v/n`, the id the node's executor knows an instance by. */
export function instanceIdOf(endpoint: Pick<Endpoint, "artifact" | "n">): string {
  return `${endpoint.artifact}/${endpoint.n}`;
}
