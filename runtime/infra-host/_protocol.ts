/**
 * The store's messages on the mesh channel `STORE_CHANNEL`, and their checks: a peer's message that fails its
 * check is dropped (and counted) by the receiver, never half-applied.
 *
 * | message | from → to | meaning |
 * | --- | --- | --- |
 * | `op` / `op-r` | any node → primary | a client's get, put, delete or add, and its answer |
 * | `rep` / `rep-r` | primary → owners | replicate entries (map epoch attached); the answer once durable |
 * | `pull` / `pull-r` | syncing node → owner | stream a partition's entries (in chunks, `more` until the last) |
 * | `dig` | primary → owners | anti-entropy: per partition, entry count and XOR of (key, version) hashes |
 * | `sum` | owner → primary | the owner's (key, version) list of a partition whose digest differed |
 * | `fix` | either way | entries the other side lacks or holds older |
 * | `want` | primary → owner | keys the primary holds older: send them |
 */

import { type ErrorCode, isErrorCode } from "../core/mod.ts";
import type { StoredEntry } from "./engine.ts";

export const STORE_CHANNEL = "st";

export type WireEntry = [
  key: string,
  value: string | null,
  version: number,
  origin: string,
  writtenAtMs: number,
  expiresAtMs: number,
];

export type OpKind = "get" | "put" | "del" | "add";

export type StoreMessage =
  | {
    t: "op";
    id: number;
    s: string;
    p: number;
    op: OpKind;
    key: string;
    value?: string;
    ttlMs?: number;
    ifVersion?: number;
    /** add: the number added, the floor the result must not go below, and the add's id (idempotence). */
    delta?: number;
    min?: number;
    addId?: string;
  }
  | {
    t: "op-r";
    id: number;
    ok: true;
    entry?: WireEntry | null;
    version?: number;
    existed?: boolean;
    /** add: the number after it. */
    n?: number;
  }
  | {
    t: "op-r";
    id: number;
    ok: false;
    code: ErrorCode;
    message: string;
    /** The request was refused before anything was applied: the client may send it again. */
    retry: boolean;
    current?: number;
    /** add: why it was refused ("BelowMinimum", "NotANumber") and the number the key holds. */
    name?: string;
    n?: number;
  }
  | { t: "rep"; id: number; s: string; p: number; epoch: number; e: WireEntry[] }
  | { t: "rep-r"; id: number; ok: boolean; reason?: string }
  | { t: "pull"; id: number; s: string; p: number; epoch: number }
  | { t: "pull-r"; id: number; ok: boolean; reason?: string; e?: WireEntry[]; more?: boolean }
  | { t: "dig"; s: string; epoch: number; d: number[] }
  | { t: "sum"; s: string; p: number; k: [string, number, string][] }
  | { t: "fix"; s: string; p: number; e: WireEntry[] }
  | { t: "want"; s: string; p: number; k: string[] };

export function toWire(e: StoredEntry): WireEntry {
  return [e.key, e.value, e.version, e.origin, e.writtenAtMs, e.expiresAtMs];
}

export function fromWire(w: WireEntry): StoredEntry {
  return { key: w[0], value: w[1], version: w[2], origin: w[3], writtenAtMs: w[4], expiresAtMs: w[5] };
}

/** Approximate wire size of an entry (chunking bound). */
export function wireBytes(e: StoredEntry): number {
  return e.key.length + (e.value?.length ?? 0) + e.origin.length + 48;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
const isStr = (v: unknown): v is string => typeof v === "string";
const isFiniteNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function isWireEntry(v: unknown): v is WireEntry {
  return Array.isArray(v) && v.length === 6 && isStr(v[0]) && (v[1] === null || isStr(v[1])) && isInt(v[2]) &&
    isStr(v[3]) && isInt(v[4]) && isInt(v[5]);
}

const entries = (v: unknown): v is WireEntry[] => Array.isArray(v) && v.every(isWireEntry);

/** The message, or a string saying what is wrong with it. */
export function parseStoreMessage(m: unknown): StoreMessage | string {
  if (!isObject(m) || !isStr(m.t)) return "not a store message";
  const base = (fields: Record<string, (v: unknown) => boolean>): string | undefined => {
    for (const [name, ok] of Object.entries(fields)) {
      if (!ok(m[name])) return `${m.t}: bad field ${name}`;
    }
    return undefined;
  };
  const optional = (check: (v: unknown) => boolean) => (v: unknown) => v === undefined || check(v);
  let problem: string | undefined;
  switch (m.t) {
    case "op":
      problem = base({
        id: isInt,
        s: isStr,
        p: isInt,
        op: (v) => v === "get" || v === "put" || v === "del" || v === "add",
        key: isStr,
        value: optional(isStr),
        ttlMs: optional(isInt),
        ifVersion: optional(isInt),
        delta: m.op === "add" ? isFiniteNumber : optional(isFiniteNumber),
        min: optional(isFiniteNumber),
        addId: optional((v) => isStr(v) && v.length > 0 && v.length <= 64),
      });
      break;
    case "op-r":
      problem = m.ok === true
        ? base({
          id: isInt,
          entry: optional((v) => v === null || isWireEntry(v)),
          version: optional(isInt),
          existed: optional((v) => typeof v === "boolean"),
          n: optional(isFiniteNumber),
        })
        : base({
          id: isInt,
          code: isErrorCode,
          message: isStr,
          retry: (v) => typeof v === "boolean",
          current: optional(isInt),
          name: optional(isStr),
          n: optional(isFiniteNumber),
        });
      break;
    case "rep":
      problem = base({ id: isInt, s: isStr, p: isInt, epoch: isInt, e: entries });
      break;
    case "rep-r":
      problem = base({ id: isInt, ok: (v) => typeof v === "boolean", reason: optional(isStr) });
      break;
    case "pull":
      problem = base({ id: isInt, s: isStr, p: isInt, epoch: isInt });
      break;
    case "pull-r":
      problem = base({
        id: isInt,
        ok: (v) => typeof v === "boolean",
        reason: optional(isStr),
        e: optional(entries),
        more: optional((v) => typeof v === "boolean"),
      });
      break;
    case "dig":
      problem = base({
        s: isStr,
        epoch: isInt,
        d: (v) => Array.isArray(v) && v.length % 3 === 0 && v.every(isInt),
      });
      break;
    case "sum":
      problem = base({
        s: isStr,
        p: isInt,
        k: (v) =>
          Array.isArray(v) && v.every((x) => Array.isArray(x) && isStr(x[0]) && isInt(x[1]) && isStr(x[2])),
      });
      break;
    case "fix":
      problem = base({ s: isStr, p: isInt, e: entries });
      break;
    case "want":
      problem = base({ s: isStr, p: isInt, k: (v) => Array.isArray(v) && v.every(isStr) });
      break;
    default:
      return `unknown store message type ${JSON.stringify(m.t)}`;
  }
  return problem ?? (m as unknown as StoreMessage);
}
