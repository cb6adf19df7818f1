/**
 * The `aether` CLI: batch mode (`aether [--connect host:port] <command> ...`, non-zero exit on failure) and an
 * interactive REPL when no command is given.
 */

import { ApiClient, CliError, EXIT_CONNECTION, EXIT_FAILED, EXIT_OK, EXIT_USAGE } from "./client.ts";
import type { CliCommand, CliContext } from "./command.ts";
import { clusterCommands } from "./commands/cluster.ts";
import { kvCommands } from "./commands/kv.ts";
import { loadCommands } from "./commands/load.ts";
import { deploymentCommands } from "./commands/deployment.ts";
import { artifactCommands } from "./commands/artifact.ts";
import { sliceCommands } from "./commands/slice.ts";
import { invokeCommands } from "./commands/invoke.ts";

const COMMANDS: CliCommand[] = [
  ...clusterCommands,
  ...kvCommands,
  ...sliceCommands,
  ...artifactCommands,
  ...deploymentCommands,
  ...invokeCommands,
  ...loadCommands,
];

export function registerCommands(commands: CliCommand[]): void {
  COMMANDS.push(...commands);
}

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => `${c.name} ${c.args}`.length));
  const lines = COMMANDS.map((c) => `  ${`${c.name} ${c.args}`.padEnd(width)}  ${c.summary}`);
  return [
    "usage: aether [--connect HOST:PORT] [--json] [--timeout MS] <command> [args]",
    "       aether [--connect HOST:PORT]            (interactive shell)",
    "",
    "  --connect   management API of any node (default $AETHER_CONNECT or 127.0.0.1:8080)",
    "  --json      machine-readable output",
    "",
    "commands:",
    ...lines,
    "",
    "exit codes: 0 ok, 1 the command failed, 2 bad usage, 3 no connection",
  ].join("\n");
}

interface GlobalOptions {
  connect: string;
  json: boolean;
  timeoutMs: number;
  rest: string[];
}

function parseGlobal(args: string[]): GlobalOptions {
  const options: GlobalOptions = {
    connect: Deno.env.get("AETHER_CONNECT") ?? "127.0.0.1:8080",
    json: false,
    timeoutMs: 30_000,
    rest: [],
  };
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--connect" || arg === "-c") options.connect = requireValue(args, ++i, arg);
    else if (arg.startsWith("--connect=")) options.connect = arg.slice("--connect=".length);
    else if (arg === "--json") options.json = true;
    else if (arg === "--timeout") {
      const text = requireValue(args, ++i, arg);
      if (!/^\d+$/.test(text)) {
        throw new CliError(`--timeout: "${text}" is not a number of milliseconds`, EXIT_USAGE);
      }
      options.timeoutMs = Number(text);
    } else break;
  }
  options.rest = args.slice(i);
  return options;
}

function requireValue(args: string[], index: number, flag: string): string {
  const value = args[index];
  if (value === undefined || value.startsWith("--")) throw new CliError(`${flag}: needs a value`, EXIT_USAGE);
  return value;
}

/** Finds the command whose words start the argument list (longest match). */
function findCommand(words: string[]): { command: CliCommand; args: string[] } | null {
  let best: { command: CliCommand; args: string[] } | null = null;
  for (const command of COMMANDS) {
    const name = command.name.split(" ");
    if (
      name.every((w, i) => words[i] === w) && (!best || name.length > best.command.name.split(" ").length)
    ) {
      best = { command, args: words.slice(name.length) };
    }
  }
  return best;
}

async function runOne(options: GlobalOptions, words: string[], signal: AbortSignal): Promise<void> {
  if (words.length === 0 || words[0] === "help" || words[0] === "--help" || words[0] === "-h") {
    console.log(usage());
    return;
  }
  // The command's own --json after its name works too.
  const json = options.json || words.includes("--json");
  const found = findCommand(words.filter((w) => w !== "--json"));
  if (!found) throw new CliError(`unknown command "${words.join(" ")}"; try "help"`, EXIT_USAGE);
  const ctx: CliContext = {
    api: new ApiClient(options.connect, options.timeoutMs),
    json,
    out: (text) => console.log(text),
    signal,
  };
  await found.command.run(ctx, found.args);
}

function report(e: unknown): number {
  if (e instanceof CliError) {
    console.error(`error: ${e.message}`);
    return e.exitCode;
  }
  console.error(`error: ${(e as Error)?.stack ?? e}`);
  return EXIT_FAILED;
}

/** Splits a REPL line into words, honouring single and double quotes. */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of line.matchAll(pattern)) words.push(m[1]?.replace(/\\(.)/g, "$1") ?? m[2] ?? m[3]);
  return words;
}

async function repl(options: GlobalOptions): Promise<number> {
  const encoder = new TextEncoder();
  const prompt = () => Deno.stdout.writeSync(encoder.encode("aether> "));
  console.log(`connected to ${options.connect}; "help" lists commands, "exit" leaves`);
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
          await runOne(options, splitWords(line), controller.signal);
          lastCode = EXIT_OK;
        } catch (e) {
          lastCode = report(e);
        } finally {
          Deno.removeSignalListener("SIGINT", onInterrupt);
        }
      }
      prompt();
    }
  }
  return lastCode;
}

export async function runCli(args: string[]): Promise<number> {
  let options: GlobalOptions;
  try {
    // `deno task cli -- status` passes the "--" through to the program.
    options = parseGlobal(args[0] === "--" ? args.slice(1) : args);
  } catch (e) {
    return report(e);
  }
  if (options.rest.length === 0) return await repl(options);
  const controller = new AbortController();
  const onInterrupt = () => controller.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    await runOne(options, options.rest, controller.signal);
    return EXIT_OK;
  } catch (e) {
    return report(e);
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

export { EXIT_CONNECTION };
