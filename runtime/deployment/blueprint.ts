/**
 * Blueprint TOML: what an operator declares should run.
 *
 * ```toml
 * id = "org.example:shop:1.0.0"
 *
 * [[slices]]
 * artifact = "org.example:orders:1.2.0"
 * instances = 3          # default 1
 * min = 2                # optional autoscaling bounds: min <= instances <= max
 * max = 6
 * requires = ["cache"]   # infrastructure services (validated here, resolved by a later issue)
 * rollout = { strategy = "canary", steps = ["10%", "pause 30s", "100%"] }  # how a version change rolls out
 * minAvailable = 2       # disruption budget: a count, or a share such as "50%" (rollouts, scale down)
 * placement = { spread = "zone", require = { disk = "ssd" } }  # node labels: spread over, required
 *                        # also nodeSelector (= require), affinity = ["g:a"] (only beside g:a),
 *                        # antiAffinity = ["g:a"] (never beside g:a, both ways)
 * trusted = true         # may run in worker isolation (default false: a process of its own)
 * cpuSoftShare = 0.5     # sandbox CPU limits over the node's defaults (runtime/sandbox/README.md):
 * cpuHardShare = 0.9     #   shares of one core over cpuWindowMs (0 = off), and one call's CPU time
 * cpuWindowMs = 10000
 * callCpuMs = 2000
 * ```
 *
 * Every problem is reported with its line and column (syntax errors from smol-toml, semantic ones located in
 * the source by `_toml_locate.ts`) as an `AetherError("bad_request")` whose `extra` holds `line`, `column`,
 * `field` of the first problem and `problems` (all of them).
 */

import { parse, TomlDate, TomlError } from "smol-toml";
import { AetherError, baseOf, parseCoordinates } from "../core/mod.ts";
import {
  LABEL_PATTERN,
  MAX_AFFINITY_SLICES,
  parseRolloutSpec,
  type PlacementRule,
  type RolloutSpec,
} from "../model/mod.ts";
import { formatPath, locate, type Located, type Segment, type SourcePosition } from "./_toml_locate.ts";
import { SANDBOX_KEYS, sandboxSettings } from "./_blueprint_sandbox.ts";
import type { SliceSandboxSettings } from "../sandbox/mod.ts";

export const MAX_BLUEPRINT_BYTES = 256 * 1024;
export const MAX_BLUEPRINT_SLICES = 1_000;
export const MAX_INSTANCES = 10_000;
const SERVICE = /^[a-z][a-z0-9-]{0,62}$/;

const TOP_LEVEL_KEYS = ["id", "slices"] as const;
const SLICE_KEYS = [
  "artifact",
  "instances",
  "min",
  "max",
  "requires",
  "rollout",
  "minAvailable",
  "placement",
  ...SANDBOX_KEYS,
] as const;

/** One `[[slices]]` entry as the operator wrote it (defaults applied). */
export interface BlueprintSliceSpec {
  /** `group:artifact:version`. */
  artifact: string;
  instances: number;
  min?: number;
  max?: number;
  requires: string[];
  /** How a change of its version rolls out (runtime/control/rollout.ts); absent: the new version at once. */
  rollout?: RolloutSpec;
  /** Disruption budget: `"2"` or `"50%"` (runtime/model/targets.ts). */
  minAvailable?: string;
  /** Placement rules over node labels (runtime/model/nodes.ts). */
  placement?: PlacementRule;
  /** `trusted` and the CPU limits (`cpuSoftShare`, ...), when any is given (_blueprint_sandbox.ts). */
  sandbox?: SliceSandboxSettings;
}

export interface ParsedBlueprint {
  /** `group:artifact:version`. */
  id: string;
  slices: BlueprintSliceSpec[];
  /** The TOML as given. */
  source: string;
}

export interface BlueprintProblem extends SourcePosition {
  /** The field the problem is about (`slices[1].instances`), empty for the document itself. */
  field: string;
  message: string;
}

/** Parses and validates a blueprint; throws AetherError("bad_request") locating every problem. */
export function parseBlueprint(source: string): ParsedBlueprint {
  if (typeof source !== "string") throw blueprintError([problemAt("", "a blueprint must be TOML text")]);
  const bytes = new TextEncoder().encode(source).byteLength;
  if (bytes > MAX_BLUEPRINT_BYTES) {
    throw blueprintError([
      problemAt("", `the blueprint is ${bytes} bytes; the limit is ${MAX_BLUEPRINT_BYTES}`),
    ]);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parse(source, { integersAsBigInt: true, unsafeKeyBehaviour: "throw" }) as Record<string, unknown>;
  } catch (e) {
    if (e instanceof TomlError) {
      const what = e.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      throw blueprintError([{ field: "", message: `TOML syntax: ${what}`, line: e.line, column: e.column }]);
    }
    throw e;
  }
  const checker = new Checker(source);
  const blueprint = checker.check(doc);
  if (checker.problems.length > 0) throw blueprintError(checker.problems);
  return blueprint!;
}

/** Like parseBlueprint, but returns the problems instead of throwing (for `blueprint validate`). */
export function validateBlueprint(
  source: string,
): { ok: true; blueprint: ParsedBlueprint } | { ok: false; problems: BlueprintProblem[] } {
  try {
    return { ok: true, blueprint: parseBlueprint(source) };
  } catch (e) {
    if (e instanceof AetherError && Array.isArray(e.extra.problems)) {
      return { ok: false, problems: e.extra.problems as BlueprintProblem[] };
    }
    throw e;
  }
}

function problemAt(
  field: string,
  message: string,
  at: SourcePosition = { line: 1, column: 1 },
): BlueprintProblem {
  return { field, message, line: at.line, column: at.column };
}

function baseOrUndefined(coordinates: string): string | undefined {
  try {
    return baseOf(coordinates);
  } catch {
    return undefined;
  }
}

function blueprintError(unsorted: BlueprintProblem[]): AetherError {
  const problems = [...unsorted].sort((a, b) => a.line - b.line || a.column - b.column);
  const first = problems[0];
  const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : "";
  return new AetherError(
    "bad_request",
    `blueprint line ${first.line}, column ${first.column}: ${first.message}${more}`,
    { line: first.line, column: first.column, field: first.field, problems },
  );
}

function describe(value: unknown): string {
  if (typeof value === "bigint") return `the integer ${value}`;
  if (typeof value === "number") return `the float ${value}`;
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.length > 60 ? value.slice(0, 60) + "..." : value)}`;
  }
  if (typeof value === "boolean") return `the boolean ${value}`;
  if (value instanceof TomlDate) return `the date ${value.toISOString()}`;
  if (Array.isArray(value)) return "an array";
  return "a table";
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof TomlDate);
}

/** Validates the parsed document, collecting every problem with its position. */
class Checker {
  readonly problems: BlueprintProblem[] = [];
  readonly #source: string;
  #positions: Map<string, Located> | undefined;

  constructor(source: string) {
    this.#source = source;
  }

  /** Where `path` is: its value (or key), else the nearest enclosing thing that was found, else 1:1. */
  #where(path: Segment[], part: "key" | "value" = "value"): SourcePosition {
    this.#positions ??= locate(this.#source);
    for (let n = path.length; n > 0; n--) {
      const found = this.#positions.get(formatPath(path.slice(0, n)));
      if (found) return n === path.length ? found[part] : found.key;
    }
    return { line: 1, column: 1 };
  }

  #problem(path: Segment[], message: string, part: "key" | "value" = "value"): void {
    const field = formatPath(path);
    this.problems.push(problemAt(field, `${field}: ${message}`, this.#where(path, part)));
  }

  #unknownKeys(table: Record<string, unknown>, known: readonly string[], path: Segment[]): void {
    for (const key of Object.keys(table)) {
      if (!known.includes(key)) {
        const where = path.length === 0 ? "at the top level" : `in ${formatPath(path)}`;
        this.#problem(
          [...path, key],
          `unknown key "${key}" ${where} (known keys: ${known.join(", ")})`,
          "key",
        );
      }
    }
  }

  check(doc: Record<string, unknown>): ParsedBlueprint | undefined {
    this.#unknownKeys(doc, TOP_LEVEL_KEYS, []);
    const id = this.#coordinates(doc.id, ["id"], "the blueprint id");
    const slices = this.#slices(doc.slices);
    if (this.problems.length > 0 || id === undefined || slices === undefined) return undefined;
    return { id, slices, source: this.#source };
  }

  #coordinates(value: unknown, path: Segment[], what: string): string | undefined {
    if (value === undefined) {
      this.#problem(path, `is missing: ${what} must be "group:artifact:version"`, "key");
      return undefined;
    }
    if (typeof value !== "string") {
      this.#problem(path, `must be a string "group:artifact:version", got ${describe(value)}`);
      return undefined;
    }
    try {
      parseCoordinates(value, formatPath(path));
      return value;
    } catch (e) {
      this.#problem(path, (e as Error).message.replace(/^[^:]*: /, ""));
      return undefined;
    }
  }

  #slices(value: unknown): BlueprintSliceSpec[] | undefined {
    if (value === undefined) {
      this.#problem(["slices"], "is missing: a blueprint needs at least one [[slices]] table", "key");
      return undefined;
    }
    if (!Array.isArray(value) || value.some((v) => !isTable(v))) {
      this.#problem(["slices"], `must be an array of tables ([[slices]]), got ${describe(value)}`);
      return undefined;
    }
    if (value.length === 0) {
      this.#problem(["slices"], "must list at least one slice");
      return undefined;
    }
    if (value.length > MAX_BLUEPRINT_SLICES) {
      this.#problem(["slices"], `lists ${value.length} slices; the limit is ${MAX_BLUEPRINT_SLICES}`);
      return undefined;
    }
    const out: BlueprintSliceSpec[] = [];
    const seen = new Map<string, number>();
    value.forEach((table: Record<string, unknown>, i) => {
      const spec = this.#slice(table, ["slices", i]);
      if (spec) out.push(spec);
      const base = typeof table.artifact === "string" ? baseOrUndefined(table.artifact) : undefined;
      if (base === undefined) return;
      const first = seen.get(base);
      if (first !== undefined) {
        this.#problem(
          ["slices", i, "artifact"],
          `${base} is already listed in slices[${first}] (a blueprint runs one version of each slice)`,
        );
      } else seen.set(base, i);
    });
    return out;
  }

  #slice(table: Record<string, unknown>, path: Segment[]): BlueprintSliceSpec | undefined {
    const before = this.problems.length;
    this.#unknownKeys(table, SLICE_KEYS, path);
    const artifact = this.#coordinates(table.artifact, [...path, "artifact"], "every slice's artifact");
    const instances = this.#integer(table.instances, [...path, "instances"], 1, MAX_INSTANCES) ?? 1;
    const min = this.#integer(table.min, [...path, "min"], 0, MAX_INSTANCES);
    const max = this.#integer(table.max, [...path, "max"], 1, MAX_INSTANCES);
    const requires = this.#services(table.requires, [...path, "requires"]);
    const rollout = this.#rollout(table.rollout, [...path, "rollout"]);
    const minAvailable = this.#budget(table.minAvailable, [...path, "minAvailable"]);
    const placement = this.#placement(table.placement, [...path, "placement"]);
    const sandbox = sandboxSettings(table, (key, message) => this.#problem([...path, key], message));
    if (min !== undefined && max !== undefined && min > max) {
      this.#problem([...path, "min"], `min (${min}) must not exceed max (${max})`);
    } else if (min !== undefined && instances < min) {
      const at = table.instances === undefined ? "min" : "instances";
      this.#problem([...path, at], `instances (${instances}) is below min (${min})`);
    } else if (max !== undefined && instances > max) {
      const at = table.instances === undefined ? "max" : "instances";
      this.#problem([...path, at], `instances (${instances}) is above max (${max})`);
    }
    if (this.problems.length > before || artifact === undefined) return undefined;
    const spec: BlueprintSliceSpec = { artifact, instances, requires };
    if (min !== undefined) spec.min = min;
    if (max !== undefined) spec.max = max;
    if (rollout !== undefined) spec.rollout = rollout;
    if (minAvailable !== undefined) spec.minAvailable = minAvailable;
    if (placement !== undefined) spec.placement = placement;
    if (sandbox !== undefined) spec.sandbox = sandbox;
    return spec;
  }

  /**
   * `placement = { spread = "zone", require = { disk = "ssd" } }`: label names and values checked.
   * `nodeSelector` is the issue's (and Kubernetes') spelling of `require`; one of the two, not both.
   */
  #placement(value: unknown, path: Segment[]): PlacementRule | undefined {
    if (value === undefined) return undefined;
    if (!isTable(value)) {
      this.#problem(path, `must be a table such as { spread = "zone" }, got ${describe(value)}`);
      return undefined;
    }
    const rule: PlacementRule = {};
    if ("require" in value && "nodeSelector" in value) {
      this.#problem([...path, "nodeSelector"], "is another name for require: give one of them, not both");
    }
    for (const [key, v] of Object.entries(value)) {
      const isRequire = key === "require" || key === "nodeSelector";
      if (key === "spread" && typeof v === "string" && LABEL_PATTERN.test(v)) rule.spread = v;
      else if (isRequire && isTable(v)) {
        const require: Record<string, string> = {};
        for (const [name, label] of Object.entries(v)) {
          if (LABEL_PATTERN.test(name) && typeof label === "string" && LABEL_PATTERN.test(label)) {
            require[name] = label;
          } else {
            this.#problem([...path, key, name], `must be a label = "value" (a-z, 0-9, '.', '_', '-')`);
          }
        }
        rule.require = require;
      } else if (key === "affinity" || key === "antiAffinity") {
        const slices = this.#affinity(v, [...path, key]);
        if (slices !== undefined) rule[key] = slices;
      } else if (key === "spread") {
        this.#problem([...path, key], `must be a label name such as "zone", got ${describe(v)}`);
      } else if (isRequire) {
        this.#problem([...path, key], `must be a table such as { disk = "ssd" }, got ${describe(v)}`);
      } else {
        this.#problem(
          [...path, key],
          `is not a placement rule (spread, require, nodeSelector, affinity, antiAffinity)`,
        );
      }
    }
    return rule;
  }

  /** `affinity = ["g:a"]` / `antiAffinity = ["g:a"]`: distinct "group:artifact" names, a bounded list. */
  #affinity(value: unknown, path: Segment[]): string[] | undefined {
    if (!Array.isArray(value) || value.length > MAX_AFFINITY_SLICES) {
      this.#problem(path, `must be a list of up to ${MAX_AFFINITY_SLICES} slices such as ["org.example:db"]`);
      return undefined;
    }
    const slices: string[] = [];
    value.forEach((item, i) => {
      if (typeof item !== "string" || !/^[^:\s]+:[^:\s]+$/.test(item) || item.length > 256) {
        this.#problem([...path, i], `must be a slice "group:artifact" (no version), got ${describe(item)}`);
      } else if (slices.includes(item)) this.#problem([...path, i], `names ${item} twice`);
      else slices.push(item);
    });
    return slices;
  }

  /** `minAvailable = 2` or `minAvailable = "50%"`, kept as text. */
  #budget(value: unknown, path: Segment[]): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value === "bigint" && value >= 0n && value <= BigInt(MAX_INSTANCES)) return String(value);
    if (typeof value === "string" && /^\d{1,3}%$/.test(value) && Number(value.slice(0, -1)) <= 100) {
      return value;
    }
    this.#problem(
      path,
      `must be a count from 0 to ${MAX_INSTANCES} or a percentage such as "50%", got ${describe(value)}`,
    );
    return undefined;
  }

  /** `rollout = { strategy = "...", ... }`: the API's rollout spec (its integers as TOML integers). */
  #rollout(value: unknown, path: Segment[]): RolloutSpec | undefined {
    if (value === undefined) return undefined;
    if (!isTable(value)) {
      this.#problem(path, `must be a table such as { strategy = "canary" }, got ${describe(value)}`);
      return undefined;
    }
    const plain = (v: unknown): unknown =>
      typeof v === "bigint"
        ? Number(v)
        : Array.isArray(v)
        ? v.map(plain)
        : isTable(v)
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
        : v;
    try {
      return parseRolloutSpec(plain(value) as Record<string, unknown>, formatPath(path));
    } catch (e) {
      if (!(e instanceof AetherError)) throw e;
      const field = String(e.extra.field ?? "");
      const at = field === "" ? path : [...path, ...field.split(".")];
      this.problems.push(problemAt(formatPath(at), e.message, this.#where(at)));
      return undefined;
    }
  }

  #integer(value: unknown, path: Segment[], min: number, max: number): number | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "bigint" || value < BigInt(min) || value > BigInt(max)) {
      this.#problem(path, `must be an integer from ${min} to ${max}, got ${describe(value)}`);
      return undefined;
    }
    return Number(value);
  }

  #services(value: unknown, path: Segment[]): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      this.#problem(path, `must be an array of service names such as ["cache"], got ${describe(value)}`);
      return [];
    }
    const out: string[] = [];
    value.forEach((item, i) => {
      const at = [...path, i];
      if (typeof item !== "string" || !SERVICE.test(item)) {
        this.#problem(
          at,
          `must be a service name (lower-case letters, digits and '-'), got ${describe(item)}`,
        );
      } else if (out.includes(item)) {
        this.#problem(at, `"${item}" is listed twice`);
      } else out.push(item);
    });
    return out;
  }
}
