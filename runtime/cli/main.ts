/**
 * The `aether` CLI: batch mode (`aether [--connect host:port] <command> ...`, non-zero exit on failure) and an
 * interactive shell when no command is given. The command modules import only light code at the top; what is
 * heavy (the bundler, the load generator) each command loads when it runs, so `aether status` starts fast.
 */

import {
  ApiClient,
  CliError,
  type ConnectSource,
  EXIT_CONNECTION,
  EXIT_FAILED,
  EXIT_OK,
  EXIT_USAGE,
} from "./client.ts";
import type { CliCommand, CliContext } from "./command.ts";
import { normalizeArgs } from "./_args.ts";
import { commandHelp, groupHelp, type ListedCommand, terminalWidth, topHelp } from "./_help.ts";
import { didYouMean } from "./_suggest.ts";
import { findForgeFile, forgeApiAddresses } from "./forge_file.ts";
import { chooseToken } from "./credentials.ts";
import { accessCommands } from "./commands/access.ts";
import { clusterCommands } from "./commands/cluster.ts";
import { kvCommands } from "./commands/kv.ts";
import { loadCommands } from "./commands/load.ts";
import { deploymentCommands } from "./commands/deployment.ts";
import { artifactCommands } from "./commands/artifact.ts";
import { sliceCommands } from "./commands/slice.ts";
import { invokeCommands } from "./commands/invoke.ts";
import { logsCommands } from "./commands/logs.ts";
import { traceCommands } from "./commands/trace.ts";
import { metricsCommands } from "./commands/metrics.ts";
import { rolloutCommands } from "./commands/rollout.ts";
import { controllerCommands } from "./commands/controller.ts";
import { eventsCommands } from "./commands/events.ts";
import { alertsCommands } from "./commands/alerts.ts";
import { configCommands } from "./commands/config.ts";
import { secretCommands } from "./commands/secret.ts";
import { rateLimitCommands } from "./commands/ratelimit.ts";
import { infraCommands } from "./commands/infra.ts";
import { jobsCommands } from "./commands/jobs.ts";
import { dbCommands } from "./commands/db.ts";
import { topicsCommands } from "./commands/topics.ts";
import { nodeCommands } from "./commands/node.ts";
import { restartCommands } from "./commands/restart.ts";
import { aspectCommands } from "./commands/aspect.ts";

const COMMANDS: CliCommand[] = [
  ...clusterCommands,
  ...kvCommands,
  ...sliceCommands,
  ...artifactCommands,
  ...deploymentCommands,
  ...invokeCommands,
  ...loadCommands,
  ...logsCommands,
  ...traceCommands,
  ...metricsCommands,
  ...rolloutCommands,
  ...controllerCommands,
  ...eventsCommands,
  ...alertsCommands,
  ...configCommands,
  ...secretCommands,
  ...rateLimitCommands,
  ...infraCommands,
  ...jobsCommands,
  ...dbCommands,
  ...topicsCommands,
  ...nodeCommands,
  ...restartCommands,
  ...aspectCommands,
  ...accessCommands,
];

export function registerCommands(commands: CliCommand[]): void {
  COMMANDS.push(...commands);
}

/** Every command of the CLI (for help, completion and tests). */
export function cliCommands(): readonly CliCommand[] {
  return COMMANDS;
}

/** Top-level words runtime/main.ts handles before the CLI; listed in help and did-you-mean all the same. */
const PROCESS_COMMANDS: ListedCommand[] = [
  { name: "node", summary: "run a cluster member (aether node --help)", group: "processes" },
  {
    name: "forge",
    summary: "a local cluster: nodes, example, chaos (aether forge --help)",
    group: "processes",
  },
];

/** The groups of the top-level help, in order; each command belongs to the first whose test it passes. */
const HELP_GROUPS: [string, (name: string) => boolean][] = [
  [
    "cluster",
    (n) =>
      ["status", "health", "logs", "trace"].includes(n) || n.startsWith("cluster ") || n.startsWith("node "),
  ],
  ["deployment", (n) => /^(blueprint |deploy$|scale$|undeploy$|slices$|rollout )/.test(n)],
  ["artifacts and slice projects", (n) => /^(artifact |slice )/.test(n)],
  ["routing and calls", (n) => /^(routes|routing|timeout|invoke)/.test(n)],
  ["key-value store", (n) => n.startsWith("kv ")],
  ["load", (n) => n === "load"],
  ["autoscaling", (n) => n.startsWith("controller ") || n === "forecast"],
  ["observability", (n) => /^(metrics$|invocations$|top$|events$|alerts$|alert )/.test(n)],
  [
    "services, config, secrets",
    (n) => /^(infra |config |secret |ratelimit |aspect |outbound$|jobs |sm |db |topics )/.test(n),
  ],
  ["access", (n) => /^(login$|whoami$|token |audit$)/.test(n)],
];

function listed(): ListedCommand[] {
  const group = (name: string) => HELP_GROUPS.find(([, test]) => test(name))?.[0] ?? "other";
  return [
    ...COMMANDS.map((c) => ({ name: c.name, summary: c.summary, group: group(c.name) })),
    ...PROCESS_COMMANDS,
  ];
}

export function usage(width = terminalWidth()): string {
  return topHelp(listed(), [...HELP_GROUPS.map(([g]) => g), "processes", "other"], width);
}

/** First words of multi-word commands that are not commands themselves: `kv`, `blueprint`, `artifact`. */
export function groupNames(): Set<string> {
  const singles = new Set(COMMANDS.filter((c) => !c.name.includes(" ")).map((c) => c.name));
  return new Set(
    COMMANDS.filter((c) => c.name.includes(" ")).map((c) => c.name.split(" ")[0]).filter((w) =>
      !singles.has(w)
    ),
  );
}

function groupMembers(word: string): CliCommand[] {
  return COMMANDS.filter((c) => c.name.startsWith(`${word} `));
}

interface GlobalOptions {
  connect: string[];
  /** --token, when given. */
  token?: string;
  source: ConnectSource;
  json: boolean;
  timeoutMs: number;
  /** --ca, else AETHER_CA: the cluster CA (PEM file) HTTPS nodes are checked against. */
  caFile?: string;
  rest: string[];
}

const GLOBAL_FLAGS = ["connect", "token", "json", "timeout", "ca", "help"];

function parseGlobal(args: string[], cwd: string): GlobalOptions {
  let connect: string | undefined;
  const options = {
    json: false,
    timeoutMs: 30_000,
    rest: [] as string[],
    token: undefined as string | undefined,
    caFile: Deno.env.get("AETHER_CA") || undefined,
  };
  let i = 0;
  for (; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--connect" || arg === "-c") connect = requireValue(args, ++i, arg);
    else if (arg.startsWith("--connect=")) connect = arg.slice("--connect=".length);
    else if (arg === "--token") options.token = requireValue(args, ++i, arg);
    else if (arg.startsWith("--token=")) options.token = arg.slice("--token=".length);
    else if (arg === "--json") options.json = true;
    else if (arg === "--ca") options.caFile = requireValue(args, ++i, arg);
    else if (arg.startsWith("--ca=")) options.caFile = arg.slice("--ca=".length);
    else if (arg === "--timeout") {
      const text = requireValue(args, ++i, arg);
      if (!/^\d+$/.test(text)) {
        throw new CliError(`--timeout: "${text}" is not a number of milliseconds`, EXIT_USAGE);
      }
      options.timeoutMs = Number(text);
    } else if (arg.startsWith("-") && arg !== "-h" && arg !== "--help") {
      const name = arg.replace(/^-+/, "").split("=")[0];
      throw new CliError(
        `unknown flag ${arg.split("=")[0]}${
          didYouMean(name, GLOBAL_FLAGS, (s) => `--${s}`) ||
          " (the global flags: --connect, --token, --json, --timeout, --ca)"
        }; see "aether --help"`,
        EXIT_USAGE,
      );
    } else break;
  }
  return { ...options, ...chooseNodes(connect, cwd), rest: args.slice(i) };
}

/**
 * The forge.json whose admin token the CLI may use: the one it found its nodes through, or the one of this
 * directory when --connect or AETHER_CONNECT names one of that Forge's nodes.
 */
function forgeOf(source: ConnectSource, endpoints: readonly string[], cwd: string): string | undefined {
  if (source.kind === "forge") return source.path;
  let found;
  try {
    found = findForgeFile(cwd);
  } catch {
    return undefined;
  }
  if (!found) return undefined;
  const url = (address: string) =>
    (/^https?:\/\//.test(address) ? address : `http://${address}`).replace(/\/$/, "");
  const forgeNodes = new Set(found.forge.nodes.map((n) => url(n.api)));
  return endpoints.some((e) => forgeNodes.has(e)) ? found.path : undefined;
}

/** --connect, else AETHER_CONNECT, else the Forge cluster of this directory, else 127.0.0.1:8080. */
function chooseNodes(flag: string | undefined, cwd: string): { connect: string[]; source: ConnectSource } {
  // Several nodes may be named, comma-separated: each request goes to the first that accepts it.
  const list = (text: string) => text.split(",").map((s) => s.trim()).filter(Boolean);
  if (flag !== undefined) {
    if (list(flag).length === 0) throw new CliError("--connect: needs HOST:PORT", EXIT_USAGE);
    return { connect: list(flag), source: { kind: "--connect" } };
  }
  const env = Deno.env.get("AETHER_CONNECT");
  if (env && list(env).length > 0) return { connect: list(env), source: { kind: "AETHER_CONNECT" } };
  let found;
  try {
    found = findForgeFile(cwd);
  } catch (e) {
    throw new CliError(`${(e as Error).message} (or choose a node with --connect HOST:PORT)`, EXIT_USAGE);
  }
  if (found && found.forge.nodes.length > 0) {
    return { connect: forgeApiAddresses(found.forge), source: { kind: "forge", path: found.path } };
  }
  return { connect: ["127.0.0.1:8080"], source: { kind: "default" } };
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

/** `unknown command "blueprint aply"; did you mean "blueprint apply"?` */
function unknownCommand(words: string[]): CliError {
  const groups = groupNames();
  if (groups.has(words[0]) && words.length > 1) {
    const typed = `${words[0]} ${words[1]}`;
    const hint = didYouMean(typed, groupMembers(words[0]).map((c) => c.name)) ||
      `; the "${words[0]}" commands: ${groupMembers(words[0]).map((c) => c.name.split(" ")[1]).join(", ")}`;
    return new CliError(`unknown command "${typed}"${hint}`, EXIT_USAGE);
  }
  const topWords = new Set([
    ...COMMANDS.map((c) => c.name.split(" ")[0]),
    ...PROCESS_COMMANDS.map((c) => c.name),
    "help",
  ]);
  const hint = didYouMean(words[0], topWords);
  return new CliError(`unknown command "${words[0]}"${hint} ("aether help" lists the commands)`, EXIT_USAGE);
}

/** `--token TOKEN` after the command's name works like the global flag (it is never a command's own flag). */
function takeTokenFlag(api: ApiClient, words: string[]): { words: string[] } {
  const head = beforeTerminator(words);
  const at = head.findIndex((w) => w === "--token" || w.startsWith("--token="));
  if (at < 0) return { words };
  const inline = head[at].startsWith("--token=");
  const token = inline ? head[at].slice("--token=".length) : requireValue(head, at + 1, "--token");
  api.token = { token, source: "--token" };
  return { words: [...words.slice(0, at), ...words.slice(at + (inline ? 1 : 2))] };
}

/** Words before a `--` terminator (what follows it is the command's, never a flag of ours). */
function beforeTerminator(words: string[]): string[] {
  const end = words.indexOf("--");
  return end < 0 ? words : words.slice(0, end);
}

async function runOne(
  options: GlobalOptions,
  api: ApiClient,
  words: string[],
  signal: AbortSignal,
): Promise<void> {
  const out = (text: string) => console.log(text);
  if (words.length === 0 || words[0] === "--help" || words[0] === "-h") return out(usage());
  if (words[0] === "help") {
    return words.length === 1
      ? out(usage())
      : await runOne(options, api, [...words.slice(1), "--help"], signal);
  }
  ({ words } = takeTokenFlag(api, words));
  const head = beforeTerminator(words);
  const wantsHelp = head.includes("--help") || head.includes("-h");
  // The command's own --json after its name works too.
  const json = options.json || head.includes("--json");
  const strip = new Set(["--json", "--help", "-h"]);
  const cleaned = [...head.filter((w) => !strip.has(w)), ...words.slice(head.length)];
  const found = findCommand(cleaned);
  if (!found && PROCESS_COMMANDS.some((c) => c.name === cleaned[0])) {
    // runtime/main.ts starts these before the CLI; here (the shell, or after a global flag) they cannot run.
    throw new CliError(
      `"${cleaned[0]}" starts a process of its own: run "aether ${cleaned[0]} ..." as the first word ` +
        `("aether ${cleaned[0]} --help" shows its flags)`,
      EXIT_USAGE,
    );
  }
  if (!found) {
    if (groupNames().has(cleaned[0]) && (cleaned.length === 1 || wantsHelp)) {
      return out(groupHelp(cleaned[0], groupMembers(cleaned[0]), terminalWidth()));
    }
    throw unknownCommand(cleaned);
  }
  if (wantsHelp) return out(commandHelp(found.command, terminalWidth()));
  const args = normalizeArgs(found.command, found.args);
  const ctx: CliContext = { api, json, out, signal };
  await found.command.run(ctx, args);
}

export function report(e: unknown): number {
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

/** Runs one command line with Ctrl-C aborting it; returns its exit code. */
export async function runLine(
  options: GlobalOptions,
  api: ApiClient,
  words: string[],
  controller = new AbortController(),
): Promise<number> {
  try {
    await runOne(options, api, words, controller.signal);
    return EXIT_OK;
  } catch (e) {
    return report(e);
  }
}

export type { GlobalOptions };

export async function runCli(args: string[]): Promise<number> {
  let options: GlobalOptions;
  let api: ApiClient;
  try {
    // `deno task cli -- status` passes the "--" through to the program.
    options = parseGlobal(args[0] === "--" ? args.slice(1) : args, Deno.cwd());
    api = new ApiClient(options.connect, options.timeoutMs, options.source);
    if (options.caFile !== undefined) api.trustCa(readCa(options.caFile));
    api.token = chooseToken(options.token, api.endpoints, forgeOf(options.source, api.endpoints, Deno.cwd()));
  } catch (e) {
    return report(e);
  }
  if (options.rest.length === 0) {
    const { repl } = await import("./_repl.ts");
    return await repl(options, api);
  }
  const controller = new AbortController();
  const onInterrupt = () => controller.abort();
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    return await runLine(options, api, options.rest, controller);
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/** The cluster CA named by --ca or AETHER_CA; a file that cannot be read is a usage error naming it. */
function readCa(path: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new CliError(`--ca/AETHER_CA: cannot read "${path}": ${(e as Error).message}`, EXIT_USAGE);
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new CliError(`--ca/AETHER_CA: "${path}" holds no PEM certificate`, EXIT_USAGE);
  }
  return text;
}

export { EXIT_CONNECTION };
