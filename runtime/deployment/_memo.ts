/**
 * Memoized decoding. Keys are immutable strings and the store keeps each value's bytes as one object that is
 * never changed after it is written, so the same key or value decodes to the same thing every time: decoding it
 * once per process instead of once per reader (the leader's view, the node manager, the registry) is safe. The
 * memo is bounded; values are held weakly.
 */

import { decodeValue, type ParsedKey, parseKey, type RecordFamily, type RecordTypes } from "../model/mod.ts";

const MAX_KEYS = 50_000;
const keys = new Map<string, ParsedKey>();
const values = new WeakMap<Uint8Array, { family: RecordFamily; value: unknown }>();

/** `parseKey`, memoized. Throws like `parseKey` (failures are not memoized). */
export function parseKeyMemo(key: string): ParsedKey {
  let parsed = keys.get(key);
  if (parsed === undefined) {
    parsed = parseKey(key);
    if (keys.size >= MAX_KEYS) keys.clear();
    keys.set(key, parsed);
  }
  return parsed;
}

/** `decodeValue`, memoized by the bytes object. Throws like `decodeValue` (failures are not memoized). */
export function decodeValueMemo<F extends RecordFamily>(
  family: F,
  bytes: Uint8Array,
  where?: string,
): RecordTypes[F] {
  const hit = values.get(bytes);
  if (hit && hit.family === family) return hit.value as RecordTypes[F];
  const value = decodeValue(family, bytes, where);
  values.set(bytes, { family, value });
  return value;
}
