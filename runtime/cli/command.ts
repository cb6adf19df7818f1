import type { ApiClient } from "./client.ts";

export interface CliContext {
  api: ApiClient;
  /** Print machine-readable JSON instead of tables. */
  json: boolean;
  out(text: string): void;
  /** Aborted when the user presses Ctrl-C during a long-running command (watch, --wait). */
  signal: AbortSignal;
}

export interface CliCommand {
  /** One or more words, e.g. "kv get". */
  name: string;
  /** Arguments after the name, e.g. "<key> [--consistent]". */
  args: string;
  summary: string;
  run(ctx: CliContext, args: string[]): Promise<void>;
}
