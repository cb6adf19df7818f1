import { operatorWriteError } from "../model/mod.ts";

/**
 * Operators may write only under `app/` (403 elsewhere: every other prefix belongs to the runtime), and only
 * keys the `app/` schema allows (400: an empty name, control characters, longer than the store takes).
 */
export function operatorWriteProblem(key: string): void {
  const problem = operatorWriteError(key);
  if (problem) throw problem;
}
