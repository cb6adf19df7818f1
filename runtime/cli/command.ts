import type { ApiClient } from "./client.ts";

export interface CliContext {
  api: ApiClient;
  /** Print machine-readable JSON instead of tables. */
  json: boolean;
  out(text: string): void;
  /** Aborted when the user presses Ctrl-C during a long-running command (watch, --wait). */
  signal: AbortSignal;
}

/**
 * One flag of a command. Help, the did-you-mean of a mistyped flag, range errors and the REPL's completion all
 * come from this one description.
 */
export interface CliFlag {
  /** Without the dashes: "instances". */
  name: string;
  /** The value's placeholder in help ("N", "FILE"); absent for a boolean flag. */
  value?: string;
  description: string;
  /** An integer flag: its value is checked against this range before the command runs. */
  int?: { min: number; max: number };
  /** May be given more than once (the values are collected). */
  multiple?: boolean;
}

export interface CliCommand {
  /** One or more words, e.g. "kv get". */
  name: string;
  /**
   * The positional arguments after the name, e.g. "<key> [prefix]". Commands without `flags` metadata may also
   * list their flags here (the usage line then shows this text as is).
   */
  args: string;
  /** One short line for the command list. */
  summary: string;
  /** Longer text for `aether <command> --help` (the summary when absent). */
  description?: string;
  /** The command's flags; when present, unknown flags and out-of-range integers are refused before `run`. */
  flags?: CliFlag[];
  /** How many positional arguments the command takes (checked with `flags`). */
  positionals?: { min: number; max: number };
  /** Examples shown by --help, each as a user types it. */
  examples?: string[];
  run(ctx: CliContext, args: string[]): Promise<void>;
}
