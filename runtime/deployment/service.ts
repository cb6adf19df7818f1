/**
 * What the deployment feature offers the features built on it (invocation, HTTP routing); the node passes
 * these to them as arguments:
 *
 * ```ts
 * const [endpoint] = deployment.endpoints.lookup("org.example:inventory", "reserve", isConnected);
 * if (endpoint.node === self) {
 *   await deployment.executor.invoke(deployment.instanceIdOf(endpoint), "reserve", request, { requestId });
 * }
 * ```
 */

import type { SliceExecutor } from "../sandbox/mod.ts";
import type { Endpoint, EndpointRegistry } from "./endpoints.ts";

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
}

/** `g:a:v/n`, the id the node's executor knows an instance by. */
export function instanceIdOf(endpoint: Pick<Endpoint, "artifact" | "n">): string {
  return `${endpoint.artifact}/${endpoint.n}`;
}
