/**
 * How a long-running process (a node, Forge) learns it should stop: Ctrl-C, SIGTERM, or the end of its
 * standard input when a parent pipes it. The last one is why no test or Forge run leaves orphans behind: a
 * parent that dies, even by kill -9, closes the pipe.
 */

import { fstatSync } from "node:fs";

/** Resolves with the reason on SIGINT, SIGTERM, or when standard input (if piped) closes. */
export function stopRequested(): Promise<string> {
  return new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(signal, () => resolve(signal));
    }
    if (stdinIsPipe()) {
      (async () => {
        try {
          for await (const _ of Deno.stdin.readable) { /* only the end matters */ }
        } catch { /* closed */ }
        resolve("standard input closed");
      })();
    }
  });
}

/** A parent that pipes our standard input owns us; /dev/null or a terminal does not. */
function stdinIsPipe(): boolean {
  try {
    const stat = fstatSync(0);
    return stat.isFIFO() || stat.isSocket();
  } catch {
    return false;
  }
}
