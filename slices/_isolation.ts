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

import type { LogLevel } from "./_types.ts";
import type { RuntimeMessage } from "./protocol.ts";

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

/**
 * Worker isolation only: a slice Worker may not start Workers of its own. A nested Worker is a thread and a
 * heap in the node's process that the host neither sees nor bounds (126 of them took a node from 0.3 to 1.6
 * GB): `Worker` is replaced by a constructor that throws. In process isolation nested Workers stay: they live
 * in the sandbox's own process, under its memory limit.
 */
export function closeNestedWorkers(): void {
  const refuseWorker = function Worker(): never {
    throw new DOMException(
      "Worker is not available to slices in worker isolation: a nested Worker would take the node's memory " +
        "and threads without bound (run the slice in process isolation to use Workers)",
      "NotSupportedError",
    );
  };
  Object.defineProperty(globalThis, "Worker", { value: refuseWorker, writable: false, configurable: false });
}

function forget(owner: Record<string, unknown>, name: string): void {
  try {
    delete owner[name];
  } catch {
    // Not configurable: make sure it holds nothing usable instead.
    Object.defineProperty(owner, name, { value: undefined });
  }
}

/** A writer in place of `Deno.stdout` or `Deno.stderr`: each write becomes a log line of the slice. */
function logLineWriter(level: LogLevel, send: (message: RuntimeMessage) => void) {
  const decoder = new TextDecoder();
  const line = (bytes: Uint8Array) => {
    const message = decoder.decode(bytes).replace(/\n$/, "");
    if (message !== "") {
      try {
        send({ t: "log", level, message, ts: Date.now() });
      } catch {
        // Nothing sensible to do with a line that cannot be sent.
      }
    }
    return bytes.byteLength;
  };
  return {
    rid: -1,
    writeSync: line,
    write: (bytes: Uint8Array) => Promise.resolve(line(bytes)),
    writable: new WritableStream<Uint8Array>({ write: (bytes) => void line(bytes) }),
    isTerminal: () => false,
    close: () => {},
  };
}

/** The standard descriptors: stdin, stdout, stderr. */
const STDIO_DESCRIPTORS = [0, 1, 2] as const;

/**
 * Makes `Deno.stdout` and `Deno.stderr` log lines of the slice (stdout at INFO, stderr at WARN), like its
 * console output. `closeDescriptor` (worker isolation: `node:fs`'s `closeSync`) also closes the isolate's
 * own handles to the standard streams first: a Worker shares the node's stdin (its parent's lifeline), stdout
 * (its ready line) and stderr (its log). `Deno.stdout.close()` alone leaves `node:fs`'s descriptors open, and
 * `fs.writeSync(1, ...)` reached the node's stdout; closing descriptors 0-2 through `node:fs` closes this
 * isolate's entries only (the node's own stay open), so `fs.writeSync(1, ...)`, `process.stdout` and other
 * writers fail with EBADF there. A process sandbox keeps its handles: its stdout is the protocol pipe the
 * entry module took before, its stderr is read by the host.
 */
export function stdioAsLogLines(
  send: (message: RuntimeMessage) => void,
  closeDescriptor?: (fd: number) => void,
): void {
  if (closeDescriptor) {
    for (const fd of STDIO_DESCRIPTORS) {
      try {
        closeDescriptor(fd);
      } catch {
        // Not open in this isolate.
      }
    }
  }
  for (const [name, level] of [["stdout", "info"], ["stderr", "warn"]] as const) {
    if (closeDescriptor) {
      try {
        Deno[name].close();
      } catch {
        // Already closed (with its descriptor above).
      }
    }
    Object.defineProperty(Deno, name, {
      value: logLineWriter(level, send),
      writable: false,
      configurable: false,
    });
  }
}
