/**
 * Closes the sandbox's doors to storage and channels it would share with other slices. Every process sandbox
 * runs the same entry module, so Deno gives them all one origin: `localStorage` and the Cache API would be one
 * store for every slice on the machine, kept on disk under Deno's cache directory after the slice is gone
 * (and written without any write permission). In worker isolation `BroadcastChannel` and `navigator.locks`
 * reach every other slice Worker of the node. A slice keeps only what its manifest declares, so these go
 * before the slice's code loads: the globals are removed and the methods of their classes, which other
 * modules (`node:worker_threads`) still hand out, throw.
 *
 * `indexedDB` and `Deno.openKv` do not exist without `--unstable-kv` and similar flags, which sandboxes never
 * get; they are removed anyway should a future Deno add them by default.
 */

/** Globals through which one slice could keep or see data shared with another. */
export const SHARED_STATE_GLOBALS: readonly string[] = [
  "caches",
  "CacheStorage",
  "Cache",
  "localStorage",
  "sessionStorage",
  "Storage",
  "indexedDB",
  "IDBFactory",
  "BroadcastChannel",
];

function refuse(what: string): never {
  throw new DOMException(
    `${what} is not available to slices: it would share state with other slices (keep state in the KV store ` +
      `or a service the manifest declares)`,
    "NotSupportedError",
  );
}

/** Makes every method of `proto` throw (instances others hand out are dead ends). */
function disableMethods(proto: object | undefined, what: string, methods: readonly string[]): void {
  if (!proto) return;
  for (const method of methods) {
    Object.defineProperty(proto, method, {
      value: () => refuse(`${what}.${method}`),
      writable: false,
      configurable: false,
    });
  }
}

export function closeSharedState(): void {
  const scope = globalThis as Record<string, unknown>;
  const channel = scope.BroadcastChannel as { prototype?: object } | undefined;
  disableMethods(channel?.prototype, "BroadcastChannel", ["postMessage"]);
  const navigatorLocks = (globalThis.navigator as { locks?: object } | undefined)?.locks;
  if (navigatorLocks) {
    disableMethods(Object.getPrototypeOf(navigatorLocks), "navigator.locks", ["request", "query"]);
  }
  for (const name of SHARED_STATE_GLOBALS) forget(scope, name);
  forget(Deno as unknown as Record<string, unknown>, "openKv");
}

function forget(owner: Record<string, unknown>, name: string): void {
  try {
    delete owner[name];
  } catch {
    // Not configurable: make sure it holds nothing usable instead.
    Object.defineProperty(owner, name, { value: undefined });
  }
}
