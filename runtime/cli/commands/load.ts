/**
 * `aether load`: open-loop HTTP load against the application port of one or more nodes (the library is
 * `runtime/loadgen/`). Prints a progress line every second and a summary at the end; `--json` prints the
 * report as JSON (progress goes to stderr then). Ctrl-C stops sending and still prints the summary.
 */

import { parseArgs } from "node:util";
import { AetherError } from "../../core/mod.ts";
import {
  formatProgress,
  formatReport,
  type LoadOptions,
  parseDuration,
  parseRate,
  parseTarget,
  parseUrls,
  startLoad,
} from "../../loadgen/mod.ts";
import { CliError, EXIT_USAGE } from "../client.ts";
import type { CliCommand } from "../command.ts";

/** Forge's first node; `$AETHER_APP_URL` or `--url` say otherwise. */
export const DEFAULT_APP_URL = "http://127.0.0.1:8071";

const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/;

export interface LoadCommandOptions {
  load: Omit<LoadOptions, "signal" | "onProgress">;
  /** Fail (exit 1) when the success rate ends below this percentage. */
  minSuccessPercent?: number;
}

function usage(message: string): CliError {
  return new CliError(`load: ${message}`, EXIT_USAGE);
}

/** Reads a flag through one of the library's parsers, turning its error into a usage error. */
function flag<T>(parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof AetherError) throw usage(e.message);
    throw e;
  }
}

function required(value: string | undefined, name: string, example: string): string {
  if (value === undefined || value.trim() === "") {
    throw usage(`--${name} is required (for example --${name} ${example})`);
  }
  return value;
}

function integerFlag(text: string | undefined, name: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw usage(`--${name} "${text}" is not an integer from ${min} to ${max}`);
  }
  return Number(text);
}

/** Parses and checks every flag; reads the body file. Throws CliError (exit 2) naming the flag. */
export async function parseLoadArgs(
  args: string[],
  env: { appUrl?: string } = {},
): Promise<LoadCommandOptions> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        rate: { type: "string" },
        duration: { type: "string" },
        target: { type: "string" },
        body: { type: "string" },
        url: { type: "string" },
        concurrency: { type: "string" },
        timeout: { type: "string" },
        header: { type: "string", multiple: true },
        seed: { type: "string" },
        "min-success": { type: "string" },
        failover: { type: "boolean" },
      },
    }));
  } catch (e) {
    throw usage((e as Error).message);
  }
  const rate = flag(() => parseRate(required(values.rate, "rate", "200/s"), "--rate"));
  const durationMs = flag(() => parseDuration(required(values.duration, "duration", "30s"), "--duration"));
  const target = required(values.target, "target", '"POST /api/v1/orders"');
  flag(() => parseTarget(target, "--target"));
  const urls = flag(() => parseUrls(values.url ?? env.appUrl ?? DEFAULT_APP_URL, "--url"));
  const timeoutMs = values.timeout === undefined
    ? undefined
    : flag(() => parseDuration(values.timeout!, "--timeout"));
  if (timeoutMs !== undefined && timeoutMs > 600_000) {
    throw usage(`--timeout "${values.timeout}" must be at most 10m`);
  }

  const headers: Record<string, string> = {};
  for (const header of values.header ?? []) {
    const m = HEADER.exec(header);
    if (!m) throw usage(`--header "${header}" is not "Name: value"`);
    headers[m[1].toLowerCase()] = m[2];
  }

  let body: string | undefined;
  if (values.body !== undefined) {
    try {
      body = await Deno.readTextFile(values.body);
    } catch (e) {
      throw usage(`--body: cannot read ${values.body}: ${(e as Error).message}`);
    }
  }
  let minSuccessPercent: number | undefined;
  if (values["min-success"] !== undefined) {
    const text = values["min-success"].replace(/%$/, "");
    minSuccessPercent = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || minSuccessPercent > 100) {
      throw usage(`--min-success "${values["min-success"]}" is not a percentage from 0 to 100`);
    }
  }
  const load: LoadCommandOptions["load"] = {
    target,
    urls,
    ratePerSecond: rate,
    durationMs,
    body,
    bodyLabel: values.body === undefined ? undefined : `--body ${values.body}`,
    headers,
    concurrency: integerFlag(values.concurrency, "concurrency", 1, 100_000),
    timeoutMs,
    seed: integerFlag(values.seed, "seed", 0, 0xffff_ffff),
    failover: values.failover ?? false,
  };
  return { load, minSuccessPercent };
}

export const loadCommands: CliCommand[] = [
  {
    name: "load",
    args:
      '--rate 200/s --duration 30s --target "POST /path" [--body FILE] [--url URL,...] [--concurrency N] ' +
      '[--timeout 5s] [--header "Name: value"]... [--seed N] [--failover] [--min-success 99.9]',
    summary: "open-loop HTTP load on the application port(s): progress every second, then a summary",
    async run(ctx, args) {
      const { load, minSuccessPercent } = await parseLoadArgs(args, {
        appUrl: Deno.env.get("AETHER_APP_URL"),
      });
      const progressLine = (text: string) => ctx.json ? console.error(text) : ctx.out(text);
      let run;
      try {
        run = startLoad({ ...load, signal: ctx.signal, onProgress: (p) => progressLine(formatProgress(p)) });
      } catch (e) {
        if (e instanceof AetherError) throw usage(e.message);
        throw e;
      }
      const report = await run.finished;
      ctx.out(ctx.json ? JSON.stringify(report, null, 2) : `\n${formatReport(report)}`);
      if (minSuccessPercent !== undefined && report.successRate * 100 < minSuccessPercent) {
        throw new CliError(
          `the success rate ${
            (report.successRate * 100).toFixed(2)
          }% is below --min-success ${minSuccessPercent}%`,
        );
      }
    },
  },
];
