import { AetherError } from "./errors.ts";
import { randomHexId } from "./trace.ts";

/** A cluster member's id: lower-case letters, digits and dashes, starting with a letter or digit. */
export type NodeId = string;

const NODE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function isNodeId(value: string): boolean {
  return NODE_ID.test(value);
}

export function parseNodeId(value: string, where = "node id"): NodeId {
  if (!isNodeId(value)) {
    throw new AetherError(
      "bad_request",
      `${where}: "${value}" is not a valid node id (lower-case letters, digits and '-', at most 63 characters)`,
    );
  }
  return value;
}

/** Random hex id for request ids and nonces (not for simulated code paths). */
export function randomHex(bytes = 8): string {
  return randomHexId(bytes);
}
