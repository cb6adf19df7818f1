/**
 * `app/{name}`: the operator namespace. Operators (management API, CLI) write only keys under `app/`, whose
 * values are their raw bytes; every other family belongs to the runtime.
 */

import { AetherError } from "../core/mod.ts";
import { appText, checkedKey } from "./_names.ts";
import { KEY_PREFIXES } from "./keys.ts";
import { LEADER_KEY } from "./leader.ts";

export const OPERATOR_PREFIX = KEY_PREFIXES.app;

/** Whether an operator (management API, CLI) may write `key`: only keys under `app/` are theirs. */
export function isOperatorWritable(key: string): boolean {
  return operatorWriteError(key) === undefined;
}

/** The 403 for an operator write outside `app/` (or a 400 for a malformed app key); undefined when allowed. */
export function operatorWriteError(key: string): AetherError | undefined {
  if (typeof key === "string" && key.startsWith(OPERATOR_PREFIX)) {
    try {
      checkedKey(key);
      appText(key.slice(OPERATOR_PREFIX.length), `key "${key}"`);
      return undefined;
    } catch (e) {
      return e as AetherError;
    }
  }
  const namespace = typeof key === "string"
    ? [...Object.values(KEY_PREFIXES), LEADER_KEY].find((p) => key === p || key.startsWith(p))
    : undefined;
  const owner = namespace
    ? `belongs to the runtime (namespace "${namespace}")`
    : "is outside the operator namespace";
  return new AetherError(
    "forbidden",
    `key "${key}" ${owner}; operators may write only keys under "${OPERATOR_PREFIX}"`,
    { key },
  );
}

/** Like operatorWriteError, for a prefix delete: the prefix must lie inside `app/`. */
export function operatorPrefixWriteError(prefix: string): AetherError | undefined {
  if (typeof prefix === "string" && prefix.startsWith(OPERATOR_PREFIX)) return undefined;
  return new AetherError(
    "forbidden",
    `prefix "${prefix}" reaches outside the operator namespace; operators may write only keys under ` +
      `"${OPERATOR_PREFIX}"`,
    { prefix },
  );
}
