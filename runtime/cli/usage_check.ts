/**
 * Checks an `aether` command line the way running it would check it before it talks to any node — the global
 * flags, the command's words, its flags (unknown ones, a missing value, integer ranges) and how many arguments
 * it takes — without running it. The documentation test holds every `aether` line of the docs to this, so a
 * line in a block the test cannot run (a long load, a placeholder slice) still cannot name a command or a flag
 * that does not exist. `forge` and `node` start processes of their own and are checked by their own parsers.
 */

import { CliError } from "./client.ts";
import type { CliCommand } from "./command.ts";
import { normalizeArgs } from "./_args.ts";
import { cliCommands, groupNames } from "./main.ts";

/** Global flags that take a value (as runtime/cli/main.ts reads them). */
const GLOBAL_VALUE_FLAGS = new Set(["--connect", "-c", "--token", "--ca", "--timeout"]);
const GLOBAL_BOOLEAN_FLAGS = new Set(["--json"]);
const HELP_FLAGS = new Set(["--help", "-h"]);

/** Words that run a process rather than a CLI command (checked elsewhere). */
export const PROCESS_COMMAND_WORDS = ["node", "forge"] as const;
/** `aether node <these>` are CLI commands, not the node process (runtime/main.ts). */
const NODE_CLI_SUBCOMMANDS = new Set(["list", "cordon", "drain", "uncordon"]);

/** What a command line is, once the global flags are set aside. */
export type CheckedLine =
  | { kind: "ok" }
  | { kind: "process"; command: "node" | "forge"; args: string[] }
  | { kind: "problem"; message: string };

/** The global flags before the command, set aside as parseGlobal does; the rest are the command's words. */
function withoutGlobals(args: string[]): string[] | string {
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (GLOBAL_VALUE_FLAGS.has(arg)) {
      if (args[i + 1] === undefined || args[i + 1].startsWith("--")) return `${arg}: needs a value`;
      i++;
    } else if (/^--(connect|token|ca|timeout)=/.test(arg) || GLOBAL_BOOLEAN_FLAGS.has(arg)) continue;
    else if (arg.startsWith("-") && !HELP_FLAGS.has(arg)) return `unknown global flag ${arg.split("=")[0]}`;
    else break;
  }
  return args.slice(i);
}

function longestCommand(words: string[]): { command: CliCommand; args: string[] } | null {
  let best: { command: CliCommand; args: string[] } | null = null;
  for (const command of cliCommands()) {
    const name = command.name.split(" ");
    if (
      name.every((w, i) => words[i] === w) && (!best || name.length > best.command.name.split(" ").length)
    ) {
      best = { command, args: words.slice(name.length) };
    }
  }
  return best;
}

/** Arguments that are not flags (after normalizeArgs every flag is one word; `--` ends the flags). */
function positionalCount(normalized: string[]): number {
  const end = normalized.indexOf("--");
  const head = end < 0 ? normalized : normalized.slice(0, end);
  const tail = end < 0 ? [] : normalized.slice(end + 1);
  return head.filter((w) => !w.startsWith("--") || w === "-").length + tail.length;
}

/** Checks the words after `aether` (as a shell would split them) without running anything. */
export function checkCommandLine(args: string[]): CheckedLine {
  const rest = withoutGlobals(args);
  if (typeof rest === "string") return { kind: "problem", message: rest };
  let words = rest;
  if (words.length === 0 || HELP_FLAGS.has(words[0])) return { kind: "ok" };
  if (words[0] === "help") words = [...words.slice(1), "--help"];
  if (words[0] === "forge" || (words[0] === "node" && !NODE_CLI_SUBCOMMANDS.has(words[1]))) {
    return { kind: "process", command: words[0], args: words.slice(1) };
  }
  const wantsHelp = words.some((w) => HELP_FLAGS.has(w));
  const cleaned = words.filter((w) => !HELP_FLAGS.has(w) && w !== "--json");
  // `--token T` after the command's name is the global flag (runtime/cli/main.ts takeTokenFlag).
  const at = cleaned.indexOf("--token");
  if (at >= 0) cleaned.splice(at, 2);
  const found = longestCommand(cleaned.filter((w) => !w.startsWith("--token=")));
  if (!found) {
    if (groupNames().has(cleaned[0]) && (cleaned.length === 1 || wantsHelp)) return { kind: "ok" };
    return { kind: "problem", message: `unknown command "${cleaned.slice(0, 2).join(" ")}"` };
  }
  if (wantsHelp) return { kind: "ok" };
  try {
    const normalized = normalizeArgs(found.command, found.args);
    const limits = found.command.positionals;
    const count = positionalCount(normalized);
    if (limits && (count < limits.min || count > limits.max)) {
      return {
        kind: "problem",
        message: `${found.command.name}: ${count} argument(s); it takes ${found.command.args || "none"}`,
      };
    }
  } catch (e) {
    if (e instanceof CliError) return { kind: "problem", message: e.message };
    throw e;
  }
  return { kind: "ok" };
}
