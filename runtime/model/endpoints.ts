/** `endpoints/{group}:{artifact}:{version}/{method}/{node}/{n}`: the callable methods of active instances. */

import { type Check, object, timestamp } from "./_validate.ts";

/** `endpoints/{g}:{a}:{v}/{method}/{node}/{n}`: a callable method of an active instance (the key says which). */
export interface EndpointRecord {
  registeredAt: number;
}

export const endpointCheck: Check<EndpointRecord> = object({ registeredAt: timestamp() });
