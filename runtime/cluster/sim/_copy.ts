/** A deep copy of plain data (objects, arrays, bytes, primitives): what a value looks like after a wire or a disk. */
export function copyOf<T>(value: T): T {
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof Uint8Array) return value.slice() as T;
  if (Array.isArray(value)) return value.map(copyOf) as T;
  const out: Record<string, unknown> = {};
  for (const key in value) out[key] = copyOf((value as Record<string, unknown>)[key]);
  return out as T;
}
