/** Help text: the command list and each command's own help, wrapped to the terminal's width. */

import type { CliCommand, CliFlag } from "./command.ts";

/** Width when standard output is not a terminal (pipes, files, tests). */
export const DEFAULT_HELP_WIDTH = 100;
/** Narrower terminals still get this much, so the flag column stays readable. */
const MIN_HELP_WIDTH = 40;

export function terminalWidth(): number {
  try {
    if (Deno.stdout.isTerminal()) return Math.max(MIN_HELP_WIDTH, Deno.consoleSize().columns);
  } catch {
    // No console size (not a terminal after all): the default.
  }
  return DEFAULT_HELP_WIDTH;
}

/**
 * Wraps `text` at spaces so no line is longer than `width`: the first line starts after `firstPrefix`, the
 * others after `indent` spaces. A word longer than a line is cut.
 */
export function wrap(text: string, width: number, firstPrefix = "", indent = firstPrefix.length): string[] {
  const lines: string[] = [];
  let line = firstPrefix;
  let empty = true;
  const room = () => width - line.length;
  for (let word of text.split(/\s+/).filter(Boolean)) {
    if (!empty && word.length + 1 > room()) {
      lines.push(line.trimEnd());
      line = " ".repeat(indent);
      empty = true;
    }
    while (word.length > room() - (empty ? 0 : 1) && room() > 1) {
      const cut = room() - (empty ? 0 : 1);
      line += (empty ? "" : " ") + word.slice(0, cut);
      lines.push(line);
      word = word.slice(cut);
      line = " ".repeat(indent);
      empty = true;
    }
    line += (empty ? "" : " ") + word;
    empty = false;
  }
  lines.push(line.trimEnd());
  return lines;
}

/** `--instances N` or `--dry-run`. */
function flagLabel(flag: CliFlag): string {
  return flag.value === undefined ? `--${flag.name}` : `--${flag.name} ${flag.value}`;
}

/** The usage line: `aether deploy <group:artifact:version> [--instances N] [--dry-run]`. */
export function usageLine(command: CliCommand): string {
  const flags = (command.flags ?? []).map((f) => `[${flagLabel(f)}]${f.multiple ? "..." : ""}`);
  return ["aether", command.name, command.args, ...flags].filter(Boolean).join(" ");
}

/** Keeps a bracketed flag on one line when wrapping (the marker stands for a space that does not break). */
const KEEP = "\u0001";

function usageLines(command: CliCommand, width: number): string[] {
  const glued = usageLine(command).replace(/\[[^\]]*\]/g, (group) => group.replaceAll(" ", KEEP));
  return wrap(glued, width, "usage: ", 9).map((line) => line.replaceAll(KEEP, " "));
}

/** A command's own help: usage, description, flags, examples. */
export function commandHelp(command: CliCommand, width: number): string {
  const out: string[] = [];
  out.push(...usageLines(command, width));
  out.push("");
  out.push(...wrap(command.description ?? command.summary, width));
  const flags = command.flags ?? [];
  if (flags.length > 0) {
    out.push("", "flags:");
    const column = Math.min(Math.max(...flags.map((f) => flagLabel(f).length)) + 4, Math.floor(width / 3));
    for (const flag of flags) {
      const label = `  ${flagLabel(flag)}`;
      const range = flag.int ? ` (an integer from ${flag.int.min} to ${flag.int.max})` : "";
      const text = flag.description + range;
      if (label.length + 2 > column) {
        out.push(...wrap(label, width, "", 4));
        out.push(...wrap(text, width, " ".repeat(column), column));
      } else out.push(...wrap(text, width, label.padEnd(column), column));
    }
  }
  if (command.examples && command.examples.length > 0) {
    out.push("", "examples:");
    for (const example of command.examples) out.push(...wrap(example, width, "  ", 4));
  }
  out.push("", ...wrap(GLOBAL_NOTE, width));
  return out.join("\n");
}

const GLOBAL_NOTE =
  'global flags: --connect HOST:PORT, --token TOKEN, --json, --timeout MS, --ca FILE (see "aether --help")';

/** One entry of the top-level list: a command or a top-level word handled elsewhere (node, forge). */
export interface ListedCommand {
  name: string;
  summary: string;
  group: string;
}

/** Command groups with at least this many subcommands take one line in the top-level help (`aether rollout`). */
export const COLLAPSED_GROUP_MIN = 3;

/**
 * The top-level help's lines of one section: a command per line, except that the subcommands of a group with
 * COLLAPSED_GROUP_MIN or more (`rollout start`, `rollout status`, ...) share one line naming them
 * (`rollout ...  start, status, list, ...`); `aether rollout` lists them with their summaries.
 */
export function listedLines(members: ListedCommand[]): { name: string; summary: string }[] {
  const firstWord = (c: ListedCommand) => c.name.split(" ")[0];
  const subcommands = (word: string) => members.filter((c) => c.name.startsWith(`${word} `));
  const lines: { name: string; summary: string }[] = [];
  const collapsed = new Set<string>();
  for (const c of members) {
    const word = firstWord(c);
    const group = subcommands(word);
    if (group.length < COLLAPSED_GROUP_MIN || !c.name.startsWith(`${word} `)) {
      lines.push(c);
    } else if (!collapsed.has(word)) {
      collapsed.add(word);
      lines.push({
        name: `${word} ...`,
        summary: group.map((g) => g.name.slice(word.length + 1)).join(", "),
      });
    }
  }
  return lines;
}

/** The short top-level help: usage, then the commands by group, one line each (large groups collapsed). */
export function topHelp(commands: ListedCommand[], groups: string[], width: number): string {
  const column = Math.min(Math.max(...commands.map((c) => c.name.length)) + 4, Math.floor(width / 3));
  const out: string[] = [
    ...wrap(
      "usage: aether [--connect HOST:PORT] [--token TOKEN] [--json] [--timeout MS] [--ca FILE] <command> " +
        "[args]",
      width,
      "",
      14,
    ),
    ...wrap("aether (an interactive shell: history, line editing, Tab completes)", width, "       ", 14),
    ...wrap("aether <command> --help (its flags and examples)", width, "       ", 14),
  ];
  for (const group of groups) {
    const members = commands.filter((c) => c.group === group);
    if (members.length === 0) continue;
    out.push("", `${group}:`);
    for (const entry of listedLines(members)) {
      // One line each: a summary that does not fit is cut (the command's --help has all of it).
      const line = `  ${entry.name.padEnd(column - 2)}${entry.summary}`;
      out.push(line.length > width ? `${line.slice(0, width - 3).trimEnd()}...` : line);
    }
  }
  out.push(
    "",
    ...wrap(
      "--connect: the management API of any node, or several comma-separated (default: $AETHER_CONNECT, " +
        "else the Forge cluster of " +
        "this directory (.forge/forge.json), else 127.0.0.1:8080). Exit codes: 0 ok, 1 the command failed, " +
        "2 bad usage, 3 no connection.",
      width,
    ),
    ...wrap(
      "--token: the API token (default: $AETHER_TOKEN, else .forge/admin-token of the Forge cluster found, " +
        "else the one `aether login` saved for these nodes).",
      width,
    ),
    ...wrap(
      "--ca: the cluster CA (PEM) to check HTTPS nodes against (default: $AETHER_CA); with it, HOST:PORT " +
        "means https://HOST:PORT.",
      width,
    ),
  );
  return out.join("\n");
}

/** `aether kv`: the subcommands of a group, one line each. */
export function groupHelp(group: string, commands: CliCommand[], width: number): string {
  const column = Math.min(
    Math.max(...commands.map((c) => c.name.length)) + 4,
    Math.floor(width / 3),
  );
  const out = [`"${group}" is a group of commands:`];
  for (const c of commands) {
    const line = `  ${c.name.padEnd(column - 2)}${c.summary}`;
    out.push(line.length > width ? `${line.slice(0, width - 3).trimEnd()}...` : line);
  }
  out.push("", ...wrap(`"aether ${commands[0]?.name ?? group} --help" shows a command's flags.`, width));
  return out.join("\n");
}
