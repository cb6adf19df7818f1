/**
 * The interactive shell. On a terminal: line editing (arrows, Home/End, Ctrl-A/E/U/K/W, Backspace), history
 * across sessions (Up/Down, kept in a file) and Tab completion of commands and their flags, all from
 * node:readline. When standard input is not a terminal (a pipe, a file) lines are read one by one, as before.
 */

import { join } from "node:path";
import type { ApiClient } from "./client.ts";
import { EXIT_OK } from "./client.ts";
import { cliCommands, type GlobalOptions, groupNames, runLine, splitWords } from "./main.ts";

/** How many lines the history file keeps (the oldest go first). */
export const HISTORY_LIMIT = 1000;
const PROMPT = "aether> ";

/** `$XDG_STATE_HOME/aether/history`, else `~/.local/state/aether/history`; undefined when neither is known. */
export function historyPath(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string | undefined {
  const state = env("XDG_STATE_HOME") || (env("HOME") ? join(env("HOME")!, ".local", "state") : undefined);
  return state ? join(state, "aether", "history") : undefined;
}

/** The history, newest first (readline's order), from a file that holds it oldest first. */
export function loadHistory(path: string | undefined): string[] {
  if (!path) return [];
  try {
    const lines = Deno.readTextFileSync(path).split("\n").filter((l) => l.trim() !== "");
    return lines.slice(-HISTORY_LIMIT).reverse();
  } catch {
    return [];
  }
}

/** Writes the history (newest first in memory) oldest first, bounded to HISTORY_LIMIT lines. */
export function saveHistory(path: string | undefined, newestFirst: readonly string[]): void {
  if (!path) return;
  try {
    Deno.mkdirSync(join(path, ".."), { recursive: true });
    const lines = newestFirst.slice(0, HISTORY_LIMIT).toReversed();
    Deno.writeTextFileSync(path, lines.length > 0 ? `${lines.join("\n")}\n` : "");
  } catch {
    // No permission to write (or a read-only home): history stays in memory for this session.
  }
}

/** Completions of `line` (command names, then the flags of the command typed). */
export function complete(line: string): [string[], string] {
  const commands = cliCommands();
  const words = [...groupNames(), ...commands.map((c) => c.name), "help", "exit"];
  const trimmed = line.replace(/^\s+/, "");
  const command = commands
    .filter((c) => trimmed.startsWith(`${c.name} `))
    .sort((a, b) => b.name.length - a.name.length)[0];
  if (command) {
    const last = trimmed.slice(trimmed.lastIndexOf(" ") + 1);
    if (!last.startsWith("-")) return [[], line];
    const flags = [...(command.flags ?? []).map((f) => `--${f.name}`), "--json", "--help"];
    return [flags.filter((f) => f.startsWith(last)), last];
  }
  const hits = [...new Set(words)].filter((w) => w.startsWith(trimmed)).sort();
  return [hits, trimmed];
}

export async function repl(options: GlobalOptions, api: ApiClient): Promise<number> {
  console.log(`connected to ${api.baseUrl}; "help" lists commands, "exit" leaves`);
  return Deno.stdin.isTerminal() ? await terminalRepl(options, api) : await lineRepl(options, api);
}

/** Standard input is a pipe or a file: read it line by line and echo the prompt. */
async function lineRepl(options: GlobalOptions, api: ApiClient): Promise<number> {
  const encoder = new TextEncoder();
  const prompt = () => Deno.stdout.writeSync(encoder.encode(PROMPT));
  prompt();
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  let buffer = "";
  let lastCode = EXIT_OK;
  for await (const chunk of lines) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line === "exit" || line === "quit") return lastCode;
      if (line !== "") {
        const controller = new AbortController();
        const onInterrupt = () => controller.abort();
        Deno.addSignalListener("SIGINT", onInterrupt);
        try {
          lastCode = await runLine(options, api, splitWords(line), controller);
        } finally {
          Deno.removeSignalListener("SIGINT", onInterrupt);
        }
      }
      prompt();
    }
  }
  return lastCode;
}

/** A terminal: node:readline does the editing, history and completion. */
async function terminalRepl(options: GlobalOptions, api: ApiClient): Promise<number> {
  const { createInterface } = await import("node:readline");
  const { default: process } = await import("node:process");
  const path = historyPath();
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: true,
    history: loadHistory(path),
    historySize: HISTORY_LIMIT,
    removeHistoryDuplicates: true,
    completer: complete,
    prompt: PROMPT,
  });
  let running: AbortController | null = null;
  rl.on("SIGINT", () => {
    // Ctrl-C stops the command that runs; at the prompt it drops the line typed so far, as shells do.
    if (running) return running.abort();
    rl.write(null, { ctrl: true, name: "u" });
    process.stdout.write("^C\n");
    rl.prompt();
  });
  let lastCode = EXIT_OK;
  rl.prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    if (line === "exit" || line === "quit") break;
    if (line !== "") {
      saveHistory(path, (rl as unknown as { history: string[] }).history);
      running = new AbortController();
      try {
        lastCode = await runLine(options, api, splitWords(line), running);
      } finally {
        running = null;
      }
    }
    rl.prompt();
  }
  rl.close();
  return lastCode;
}
