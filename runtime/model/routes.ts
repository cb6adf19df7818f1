/** `routes/{METHOD}{path}`: the application HTTP route table, as slices' manifests declare it. */

import type { NodeId } from "../core/mod.ts";
import { baseField, nodes, sliceMethod } from "./_fields.ts";
import { type Check, object } from "./_validate.ts";

export { HTTP_METHODS, type HttpMethod, isRoutePath } from "./_names.ts";

/** `routes/{METHOD}{path}`: which slice method serves an HTTP route, and on which nodes. */
export interface RouteRecord {
  /** `group:artifact`; the version follows `routing/` weights or the target. */
  slice: string;
  method: string;
  nodes: NodeId[];
}

export const routeCheck: Check<RouteRecord> = object({ slice: baseField, method: sliceMethod, nodes });
