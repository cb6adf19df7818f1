/** `config/{name}` and `config/node/{node}/{name}`: dynamic configuration, for the cluster or one node. */

import { type Check, json, type JsonValue, object, timestamp } from "./_validate.ts";

export type { JsonValue } from "./_validate.ts";

/** `config/...`: one dynamic configuration value. */
export interface ConfigRecord {
  value: JsonValue;
  updatedAt: number;
}

export const configCheck: Check<ConfigRecord> = object({ value: json(), updatedAt: timestamp() });
