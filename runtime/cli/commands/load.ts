/**
 * `aether load`: open-loop HTTP load against the application port of one or more nodes (the library is
 * `runtime/loadgen/`). Prints a progress line every second and a summary at the end; `--json` prints the
 * report as JSON (progress goes to stderr then). Ctrl-C stops sending and still prints the summary.
 */

import { parseArgs } from "node:util";
import type { LoadOptions } from "../../loadgen/mod.ts";
import { CliError, EXIT_USAGE } from "../client.ts";
import { findForgeFile } from "../forge_file.ts";
import type { CliCommand } from "../command.ts";

/** The load generator and the core errors, loaded when `load` runs (a plain `aether status` need not). */
const loadgen = () => import("../../loadgen/mod.ts");
const core = () => import("../../core/mod.ts");

/** The success rate below which `load` exits 1, in percent (`--min-success`). */
export const DEFAULT_MIN_SUCCESS_PERCENT = 99;

/** Forge's first node; `$AETHER_APP_URL` or `--url` say otherwise. */
export const DEFAULT_APP_URL = "http://127.0.0.1:8071";

const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/;

export interface LoadCommandOptions {
  load: Omit<LoadOptions, "signal" | "onProgress">;
  /** Fail (exit 1) when the success rate ends below this percentage. */
  minSuccessPercent: number;
}

function usage(message: string): CliError {
  return new CliError(`load: ${message}`, EXIT_USAGE);
}

/** Reads a flag through one of the library's parsers, turning its error into a usage error. */
async function flagReader(): Promise<<T>(parse: () => T) => T> {
  const { AetherError } = await core();
  return (parse) => {
    try {
      return parse();
    } catch (e) {
      if (e instanceof AetherError) throw usage(e.message);
      throw e;
    }
  };
}

function required(value: string | undefined, name: string, example: string, hint = ""): string {
  if (value === undefined || value.trim() === "") {
    throw usage(`--${name} is required (for example --${name} ${example})${hint}`);
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

/** `--rate` with `--duration`, or a shape (`--shape` or `--shape-file`): what the load's schedule is. */
async function scheduleFlags(
  values: { rate?: string; duration?: string; shape?: string; "shape-file"?: string },
  flag: <T>(parse: () => T) => T,
): Promise<Pick<LoadOptions, "ratePerSecond" | "durationMs" | "shape">> {
  const { parseDuration, parseRate, parseShape } = await loadgen();
  const file = values["shape-file"];
  if (values.shape === undefined && file === undefined) {
    const rate = flag(() => parseRate(required(values.rate, "rate", "200/s", SHAPE_HINT), "--rate"));
    const durationMs = flag(() =>
      parseDuration(required(values.duration, "duration", "30s", SHAPE_HINT), "--duration")
    );
    return { ratePerSecond: rate, durationMs };
  }
  if (values.shape !== undefined && file !== undefined) {
    throw usage("give --shape or --shape-file, not both");
  }
  if (values.rate !== undefined || values.duration !== undefined) {
    throw usage(
      `--${values.shape === undefined ? "shape-file" : "shape"} sets the rate and the duration: ` +
        "leave out --rate and --duration",
    );
  }
  if (values.shape !== undefined) return { shape: flag(() => parseShape(values.shape!, "--shape")) };
  let text: string;
  try {
    text = await Deno.readTextFile(file!);
  } catch (e) {
    throw usage(`--shape-file: cannot read ${file}: ${(e as Error).message}`);
  }
  return { shape: flag(() => parseShape(text, `--shape-file ${file}`, { file: true })) };
}

const SHAPE_HINT = ', or give --shape "ramp 10..400/s over 60s"';

/** Parses and checks every flag; reads the body file. Throws CliError (exit 2) naming the flag. */
export async function parseLoadArgs(
  args: string[],
  env: { appUrl?: string; forgeAppUrls?: string[] } = {},
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
        shape: { type: "string" },
        "shape-file": { type: "string" },
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
  const flag = await flagReader();
  const { parseDuration, parseTarget, parseUrls } = await loadgen();
  const schedule = await scheduleFlags(values, flag);
  const target = required(values.target, "target", '"POST /api/v1/orders"');
  flag(() => parseTarget(target, "--target"));
  const fallback = env.forgeAppUrls && env.forgeAppUrls.length > 0
    ? env.forgeAppUrls.join(",")
    : DEFAULT_APP_URL;
  const urls = flag(() => parseUrls(values.url ?? env.appUrl ?? fallback, "--url"));
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
  let minSuccessPercent = DEFAULT_MIN_SUCCESS_PERCENT;
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
    ...schedule,
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

/** The application URLs of the Forge cluster of this directory (running nodes), if there is one. */
function forgeAppUrls(): string[] | undefined {
  try {
    const found = findForgeFile(Deno.cwd());
    return found?.forge.nodes.filter((n) => n.running !== false && typeof n.app === "string").map((n) =>
      n.app!
    );
  } catch {
    return undefined; // a damaged file: the default URL (other commands report the damage)
  }
}

export const loadCommands: CliCommand[] = [
  {
    name: "load",
    args: "",
    summary: "open-loop HTTP load on the application port(s)",
    description: "Open-loop HTTP load on the application port(s) of the cluster, at a constant rate or " +
      "following a shape (steps, ramps, a sine cycle, spikes): a progress line every second with the " +
      "current target rate, then a summary. Exit 1 when the success rate ends below --min-success. Ctrl-C stops sending " +
      "and still prints the summary.",
    flags: [
      {
        name: "rate",
        value: "RATE",
        description: "requests per second, e.g. 200/s or 6000/m (required unless --shape or --shape-file)",
      },
      {
        name: "duration",
        value: "TIME",
        description: "how long to send, e.g. 30s or 5m (required with --rate)",
      },
      {
        name: "shape",
        value: '"SEGMENT, ..."',
        description: 'a rate that changes over time, instead of --rate and --duration: segments "RATE for ' +
          'TIME", "ramp A..B/s over TIME", "sine A..B/s period TIME for TIME", "spike RATE for TIME", ' +
          '"idle for TIME", separated by , or ;',
      },
      {
        name: "shape-file",
        value: "FILE",
        description: "the shape from a file: one segment a line, # starts a comment",
      },
      {
        name: "target",
        value: '"METHOD /path"',
        description: 'what to call, e.g. "POST /api/v1/orders" (required)',
      },
      {
        name: "body",
        value: "FILE",
        description: "the request body; ${seq}, ${seq:N} and ${rand:A-B} in it vary per request",
      },
      {
        name: "url",
        value: "URL,...",
        description:
          "the application base URL(s), requests spread over them (default $AETHER_APP_URL, else every " +
          `node of the Forge cluster in .forge/forge.json, else ${DEFAULT_APP_URL})`,
      },
      {
        name: "concurrency",
        value: "N",
        description: "at most N requests in flight (beyond that requests are dropped)",
        int: { min: 1, max: 100_000 },
      },
      {
        name: "timeout",
        value: "TIME",
        description: "a request that takes longer fails (default 5s, at most 10m)",
      },
      { name: "header", value: '"Name: value"', description: "an extra request header", multiple: true },
      {
        name: "seed",
        value: "N",
        description: "seed of the random values",
        int: { min: 0, max: 0xffff_ffff },
      },
      { name: "failover", description: "a refused connection goes to the next URL" },
      {
        name: "min-success",
        value: "PERCENT",
        description: `exit 1 when the success rate ends below this (default ${DEFAULT_MIN_SUCCESS_PERCENT})`,
      },
    ],
    examples: [
      'aether load --rate 200/s --duration 30s --target "POST /api/v1/orders" --body order.json',
      'aether load --shape "10/s for 10s, ramp 10..200/s over 30s, sine 50..150/s period 60s for 2m, ' +
      'spike 500/s for 5s" --target "GET /api/v1/products"',
      'aether load --shape-file shape.txt --target "POST /api/v1/orders" --body order.json',
    ],
    async run(ctx, args) {
      const { load, minSuccessPercent } = await parseLoadArgs(args, {
        appUrl: Deno.env.get("AETHER_APP_URL"),
        forgeAppUrls: forgeAppUrls(),
      });
      const { formatProgress, formatReport, startLoad } = await loadgen();
      const { AetherError } = await core();
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
      const percent = (report.successRate * 100).toFixed(2);
      if (report.requests === 0 || report.successRate * 100 < minSuccessPercent) {
        throw new CliError(
          report.requests === 0
            ? `no request completed, so the success rate is below --min-success ${minSuccessPercent}%`
            : `the success rate ${percent}% is below --min-success ${minSuccessPercent}%`,
        );
      }
      if (!ctx.json) ctx.out(`ok: the success rate ${percent}% meets --min-success ${minSuccessPercent}%`);
    },
  },
];
