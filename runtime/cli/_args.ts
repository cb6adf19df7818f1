import { parseArgs } from "node:util";
import { CliError, EXIT_USAGE } from "./client.ts";

type OptionSpec = Record<string, { type: "string" | "boolean"; short?: string }>;

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
