import { parseArgs } from "node:util";
import { CliError, EXIT_USAGE } from "./client.ts";
import type { CliCommand, CliFlag } from "./command.ts";
import { didYouMean } from "./_suggest.ts";

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }>;

/** parseArgs with usage errors that name the command and the flag. */
export function parseCommandArgs<T extends OptionSpec>(
  command: string,
  args: string[],
  options: T,
  positionals: { min: number; max: number; names: string },
) {
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new CliError(`${command}: ${(e as Error).message}`, EXIT_USAGE);
  }
  const count = parsed.positionals.length;
  if (count < positionals.min || count > positionals.max) {
    throw new CliError(`${command}: expected ${positionals.names}`, EXIT_USAGE);
  }
  return parsed;
}

export function parseIntFlag(command: string, flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) {
    throw new CliError(`${command}: --${flag} "${text}" is not a non-negative integer`, EXIT_USAGE);
  }
  return Number(text);
}

/** Flags every command accepts (main.ts handles them before the command sees its arguments). */
export const UNIVERSAL_FLAGS = ["help", "json"];

/** A negative number is a value, not a short option. */
const NEGATIVE_NUMBER = /^-\d+(\.\d+)?$/;

/**
 * Checks a command's arguments against its flag metadata before it runs: unknown flags (with a did-you-mean),
 * a value flag without its value, integers out of range. Returns the arguments with each value joined to its
 * flag (`--instances=-1`), so parseArgs never reads a negative number as an option.
 */
export function normalizeArgs(command: CliCommand, args: string[]): string[] {
  if (!command.flags) return args;
  const byName = new Map(command.flags.map((f) => [f.name, f]));
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (!arg.startsWith("-") || arg === "-" || NEGATIVE_NUMBER.test(arg)) {
      out.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.startsWith("--") ? arg.slice(2, eq < 0 ? undefined : eq) : arg.slice(1);
    const flag = byName.get(name);
    if (!flag || !arg.startsWith("--")) throw unknownFlag(command, arg, name);
    if (flag.value === undefined) {
      if (eq >= 0) throw new CliError(`${command.name}: --${name} takes no value`, EXIT_USAGE);
      out.push(arg);
      continue;
    }
    let value: string;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      const next = args[i + 1];
      if (next === undefined || (next.startsWith("--") && next.length > 2)) {
        throw new CliError(`${command.name}: --${name} needs a value (--${name} ${flag.value})`, EXIT_USAGE);
      }
      value = next;
      i++;
    }
    checkInt(command, flag, value);
    out.push(`--${name}=${value}`);
  }
  return out;
}

function unknownFlag(command: CliCommand, arg: string, name: string): CliError {
  const names = [...command.flags!.map((f) => f.name), ...UNIVERSAL_FLAGS];
  const hint = didYouMean(name, names, (s) => `--${s}`);
  const known = command.flags!.length > 0
    ? ` (its flags: ${command.flags!.map((f) => `--${f.name}`).join(", ")})`
    : " (it takes no flags)";
  return new CliError(
    `${command.name}: unknown flag ${arg.split("=")[0]}${
      hint || known
    } (see "aether ${command.name} --help")`,
    EXIT_USAGE,
  );
}

function checkInt(command: CliCommand, flag: CliFlag, value: string): void {
  if (!flag.int) return;
  const { min, max } = flag.int;
  const expected = `expected an integer from ${min} to ${max}`;
  if (!/^-?\d+$/.test(value)) {
    throw new CliError(
      `${command.name}: --${flag.name}: "${value}" is not an integer; ${expected}`,
      EXIT_USAGE,
    );
  }
  const n = Number(value);
  if (n < min || n > max) {
    throw new CliError(`${command.name}: --${flag.name}: ${value} is out of range; ${expected}`, EXIT_USAGE);
  }
}

/** A command's parsed arguments, read through its flag metadata. */
export interface ParsedArgs {
  positionals: string[];
  string(name: string): string | undefined;
  boolean(name: string): boolean;
  int(name: string): number | undefined;
  strings(name: string): string[];
}

/**
 * Parses arguments with the command's own flag metadata (normalizing them first, so it also works when the
 * command is called directly) and checks the number of positionals against `positionals`.
 */
export function parseFor(command: CliCommand, args: string[]): ParsedArgs {
  const flags = command.flags ?? [];
  const options: OptionSpec = {};
  for (const f of flags) {
    options[f.name] = { type: f.value === undefined ? "boolean" : "string", multiple: f.multiple ?? false };
  }
  const limits = command.positionals ?? { min: 0, max: 0 };
  const parsed = parseCommandArgs(command.name, normalizeArgs(command, args), options, {
    ...limits,
    names: limits.max === 0 ? "no arguments" : command.args,
  });
  const values = parsed.values as Record<string, string | boolean | string[] | undefined>;
  const known = (name: string) => {
    if (!(name in options)) throw new Error(`${command.name} has no flag --${name} in its metadata`);
    return values[name];
  };
  return {
    positionals: parsed.positionals,
    string: (name) => known(name) as string | undefined,
    boolean: (name) => known(name) === true,
    int: (name) => {
      const text = known(name) as string | undefined;
      return text === undefined ? undefined : Number(text);
    },
    strings: (name) => (known(name) as string[] | undefined) ?? [],
  };
}
