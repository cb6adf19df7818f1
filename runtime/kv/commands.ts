/**
 * Commands of the replicated KV state machine and their results.
 *
 * Every mutating command that changes something takes the next global revision; a transaction takes one
 * revision for all its operations. Values are raw bytes; the cluster's typed records (runtime/model) are encoded
 * as UTF-8 JSON above this layer.
 */

export const DEFAULT_MAX_VALUE_BYTES = 1024 * 1024;
export const MAX_KEY_BYTES = 1024;

export type KvOp =
  | { op: "put"; key: string; value: Uint8Array }
  | { op: "delete"; key: string }
  | { op: "deletePrefix"; prefix: string };

/** A condition on a key's modRevision; 0 means "the key must not exist". */
export interface KvCompare {
  key: string;
  modRevision: number;
}

export type KvCommand =
  /** `ifRevision` makes it a compare-and-set on the key's modRevision (0 = create only). */
  | { type: "put"; key: string; value: Uint8Array; ifRevision?: number }
  | { type: "delete"; key: string; ifRevision?: number }
  /** All compares hold: apply `success`; otherwise apply `failure` (may be empty). */
  | { type: "txn"; compare: KvCompare[]; success: KvOp[]; failure: KvOp[] }
  /** Changes nothing; its position in the log is a linearizable read point. */
  | { type: "barrier" };

export type KvResult =
  | {
    ok: true;
    /** The store revision after the command (unchanged when nothing changed). */
    revision: number;
    /** For a txn: whether the compares held. */
    succeeded?: boolean;
    /** Number of keys removed by a delete or deletePrefix. */
    deleted?: number;
  }
  | {
    ok: false;
    code: "compare_failed" | "too_large" | "invalid";
    message: string;
    revision: number;
    /** For a failed compare-and-set: the key's modRevision now (0 when absent). */
    currentRevision?: number;
  };

export interface KvEntry {
  key: string;
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  /** Number of puts since the key was created. */
  version: number;
}

/** One change, delivered to watchers in revision order. */
export interface KvEvent {
  type: "put" | "delete";
  key: string;
  /** Present for put. */
  value?: Uint8Array;
  revision: number;
}

export function utf8Length(text: string): number {
  // Fast path: ASCII keys are the norm.
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Approximate encoded size, used to bound batches and queues. */
export function commandSize(command: KvCommand): number {
  switch (command.type) {
    case "put":
      return 32 + command.key.length + command.value.byteLength;
    case "delete":
      return 32 + command.key.length;
    case "barrier":
      return 16;
    case "txn": {
      let size = 32;
      for (const c of command.compare) size += 16 + c.key.length;
      for (const op of [...command.success, ...command.failure]) {
        size += 16 + (op.op === "deletePrefix" ? op.prefix.length : op.key.length);
        if (op.op === "put") size += op.value.byteLength;
      }
      return size;
    }
  }
}
