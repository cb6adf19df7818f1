/** Helpers for the sandbox tests: fixtures built once per test process, and counters for leaked sandboxes. */

import { fileURLToPath } from "node:url";
import { buildSlice, type BuiltSlice } from "../authoring/mod.ts";
import type { IsolationMode } from "./policy.ts";

export const MODES: readonly IsolationMode[] = ["worker", "process"];

export type FixtureName =
  | "pricing"
  | "order"
  | "hostile"
  | "fetcher"
  | "hooks"
  | "echo"
  | "isolation"
  | "resources";

export function fixturePath(file: string): string {
  return fileURLToPath(new URL(`./fixtures/${file}`, import.meta.url));
}

const built = new Map<string, Promise<BuiltSlice>>();

/** Builds `fixtures/<name>.ts` (once per test process). */
export function fixture(name: FixtureName): Promise<BuiltSlice> {
  let result = built.get(name);
  if (!result) built.set(name, result = buildSlice(fixturePath(`${name}.ts`)));
  return result;
}

/** Is process `pid` still alive (not yet reaped)? */
export function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * Worker threads alive in this process. Process-wide: `deno test --parallel` runs other test modules in this
 * process too, so only tests that run alone (tests/integration) can count on it. (Deno names them `worker-N`). */
export function workerThreads(): number {
  let count = 0;
  for (const task of Deno.readDirSync("/proc/self/task")) {
    try {
      if (Deno.readTextFileSync(`/proc/self/task/${task.name}/comm`).startsWith("worker-")) count++;
    } catch {
      // The thread ended while we looked.
    }
  }
  return count;
}

/** Child processes of this process (process-wide, like `workerThreads`). */
export function childProcesses(): number[] {
  const children: number[] = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    try {
      const text = Deno.readTextFileSync(`/proc/self/task/${task.name}/children`).trim();
      if (text) children.push(...text.split(/\s+/).map(Number));
    } catch {
      // The thread ended while we looked.
    }
  }
  return children;
}

/** Polls `condition` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what} (${workerThreads()} worker threads, ` +
          `children ${childProcesses().join(",") || "none"})`,
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}
