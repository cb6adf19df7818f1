/**
 * The lock family (runtime/infra-host/lock_service.ts serves it): one lease record per held lock, written
 * through consensus. The fencing token is the record's createRevision: the KV revision of the acquiring write,
 * larger than every revision before it, so every later holder of any lock has a larger token.
 *
 * | key                      | record     | written by                                                 |
 * | ------------------------ | ---------- | ---------------------------------------------------------- |
 * | `locks/{group}/{name}`   | LockRecord | acquire (create), renew (CAS); release and the leader's     |
 * |                          |            | expiry remove it (delete on the record's modRevision)      |
 */

import { AetherError } from "../core/mod.ts";
import { nodeId } from "./_fields.ts";
import { type Check, integer, object, string, timestamp, validate } from "./_validate.ts";

export const LOCKS_PREFIX = "locks/";
/** The longest lease a holder may ask for. */
export const MAX_LOCK_TTL_MS = 3600_000;
/** The most locks held at once across the cluster (each is one consensus record). */
export const MAX_LOCKS = 10_000;
/** The longest lock name, in bytes of UTF-8. */
export const MAX_LOCK_NAME_BYTES = 128;

export interface LockRecord {
  /** The acquisition that wrote the lease (a random id), so an acquire whose answer was lost finds its own. */
  acquisition: string;
  /** The node that served the acquire (for `holder` and for operators). */
  node: string;
  /** The lease's length; expiry is judged by the leader from when it applied the last write (README). */
  ttlMs: number;
  /** Wall-clock time of the last acquire or renew, by the writing node's clock: informational only. */
  writtenAt: number;
}

export const lockRecordCheck: Check<LockRecord> = object({
  acquisition: string({ maxLength: 64 }),
  node: nodeId,
  ttlMs: integer(1, MAX_LOCK_TTL_MS),
  writtenAt: timestamp(),
});

const GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** `locks/{group}/{name}`; the group is the calling slice's artifact group, the name any non-empty text. */
export function lockKey(group: string, name: string): string {
  if (!GROUP.test(group)) {
    throw new AetherError(
      "bad_request",
      `lock key: group ${JSON.stringify(group)} is not an artifact group`,
      {
        field: "group",
      },
    );
  }
  if (name === "" || utf8.encode(name).byteLength > MAX_LOCK_NAME_BYTES) {
    throw new AetherError("bad_request", `lock key: name must be 1 to ${MAX_LOCK_NAME_BYTES} bytes`, {
      field: "name",
    });
  }
  return `${LOCKS_PREFIX}${group}/${name}`;
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function encodeLockRecord(record: LockRecord): Uint8Array {
  return utf8.encode(JSON.stringify(validate(lockRecordCheck, record, "lock record")));
}

export function decodeLockRecord(bytes: Uint8Array, where = "lock record"): LockRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Strict.decode(bytes));
  } catch (e) {
    throw new AetherError("bad_request", `${where}: not UTF-8 JSON (${(e as Error).message})`);
  }
  return validate(lockRecordCheck, parsed, where);
}
