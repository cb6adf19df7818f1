/**
 * Dynamic configuration in the consensus KV, changed at run time without restarts:
 *
 * - per slice: `config/slices/{group}:{artifact}/{field}` (ConfigRecord), checked against the schema the
 *   slice's manifest declares. An instance runs with the schema's defaults overlaid by these values; when one
 *   changes, every node sends the new configuration to its running instances of that slice (their
 *   `ctx.config` changes and `ctx.onConfigChange` listeners run), right after the change is applied there.
 * - per cluster: `config/settings/{name}` for the node settings that are safe to change live (NODE_SETTINGS).
 *   Precedence: a node's flag gives the value until the cluster sets one; `unset` returns to the flag.
 */

import { AetherError, compareVersions, type NodeId, parseArtifactBase } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvEvent, KvOp, KvState } from "../kv/mod.ts";
import { decodeValue, encodeValue, type JsonValue, KEY_PREFIXES, kvKeys, kvPrefixes } from "../model/mod.ts";
import { fieldValueProblem, resolveConfig, type SliceManifest } from "../sandbox/mod.ts";
import { parseAllowList } from "./http_client.ts";

export const SLICE_CONFIG_PREFIX = `${KEY_PREFIXES.config}slices/`;
export const SETTINGS_PREFIX = `${KEY_PREFIXES.config}settings/`;
/** Fields one slice's configuration may hold (a schema is a manifest's; this bounds what a request writes). */
const MAX_FIELDS = 256;

/** A node setting an operator may change live, its type and the flag it overrides. */
export interface NodeSetting {
  type: "string" | "integer";
  enum?: readonly string[];
  minimum?: number;
  maximum?: number;
  /** The node flag giving its startup value, or "built-in" for a setting without one (then `builtIn` holds it). */
  flag: string;
  /** The value a node starts with when no flag gives one. */
  builtIn?: JsonValue;
  description: string;
  /** A further check of a value of the right type (e.g. a host list): the problem, or undefined. */
  check?: (value: JsonValue) => string | undefined;
}

/** An integer setting from `minimum` to `maximum`. */
function integerSetting(
  minimum: number,
  maximum: number,
  flag: string,
  description: string,
  builtIn?: number,
): NodeSetting {
  return {
    type: "integer",
    minimum,
    maximum,
    flag,
    description,
    ...(builtIn === undefined ? {} : { builtIn }),
  };
}

/** The range a setting accepts, as an operator reads it in an error. */
export function settingRange(setting: NodeSetting): string {
  if (setting.enum) return `one of ${setting.enum.join(", ")}`;
  if (setting.type === "string") return `text: ${setting.description}`;
  return `an integer from ${setting.minimum} to ${setting.maximum}`;
}

/**
 * The node settings read live (each read where it is used, so a change applies to the next record/request).
 * Other flags (ports, data directory, sandbox mode, limits fixed at start) stay flags.
 */
export const NODE_SETTINGS: Readonly<Record<string, NodeSetting>> = {
  // Outbound HTTP of slices (runtime/infra-host/http_client.ts): the next request reads it.
  "outbound.allow": {
    type: "string",
    flag: "--outbound-allow",
    description:
      "hosts slices may call through ctx.infra.http (host[:port],...; * any declared; empty: none)",
    check: (value) => {
      try {
        parseAllowList(String(value), "outbound.allow");
        return undefined;
      } catch (e) {
        return (e as Error).message;
      }
    },
  },
  "log.level": {
    type: "string",
    enum: ["debug", "info", "warn", "error"],
    flag: "--log-level",
    description: "the least level a node logs",
  },
  // The invoker (runtime/invoke): read by the next call; calls in flight keep what they started with.
  "invoke.defaultTimeoutMs": integerSetting(
    1,
    15 * 60_000,
    "built-in",
    "deadline of a call that names none (a slice's own timeout still caps it)",
    30_000,
  ),
  "invoke.maxAttempts": integerSetting(1, 20, "built-in", "attempts per call, the first included", 6),
  "invoke.baseBackoffMs": integerSetting(
    1,
    10_000,
    "built-in",
    "first retry backoff, doubled per attempt",
    50,
  ),
  "invoke.maxBackoffMs": integerSetting(1, 60_000, "built-in", "longest backoff between two attempts", 1_000),
  "invoke.maxInFlightPerPeer": integerSetting(
    1,
    65_536,
    "built-in",
    "calls in flight to one peer node; more wait",
    1_024,
  ),
  "invoke.maxWaitingPerPeer": integerSetting(
    1,
    65_536,
    "built-in",
    "calls waiting for one peer; beyond it they fail over (overloaded)",
    4_096,
  ),
  "invoke.maxServing": integerSetting(
    1,
    65_536,
    "built-in",
    "calls from peers this node runs at once; beyond it 503 overloaded",
    4_096,
  ),
  // The API and application HTTP listeners (runtime/node/server_guard.ts): the next connection or timer.
  "http.headerTimeoutMs": integerSetting(
    100,
    600_000,
    "--header-timeout-ms",
    "HTTP: from a request's first byte to complete headers",
  ),
  "http.bodyTimeoutMs": integerSetting(
    100,
    600_000,
    "--body-timeout-ms",
    "HTTP: longest a body may send nothing",
  ),
  "http.idleTimeoutMs": integerSetting(
    100,
    3_600_000,
    "--idle-timeout-ms",
    "HTTP: a connection with no request in flight closes after this",
  ),
  "http.maxConnections": integerSetting(
    16,
    1_000_000,
    "--max-connections",
    "HTTP: open connections per listener; new ones beyond it are closed",
  ),
};

export interface ConfigServiceOptions {
  kv: KvAccess;
  state(): KvState;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  /** This node's running instances: their coordinates and a way to give them new values. */
  instances(): Array<{ coordinates: string; updateConfig(values: Record<string, unknown>): void }>;
  /** The flag value of each node setting on this node (what `unset` returns to). */
  flagSettings: Record<string, JsonValue>;
  /** Applies a node setting's effective value (flag or cluster). */
  applySetting(name: string, value: JsonValue): void;
  log: { warn(message: string, fields?: Record<string, unknown>): void };
}

export interface SliceConfigView {
  slice: string;
  /** The values set in the cluster. */
  values: Record<string, JsonValue>;
  /** What an instance of the version checked against runs with (schema defaults overlaid). */
  effective?: Record<string, JsonValue>;
  /** The version whose schema was used. */
  version?: string;
}

export interface SettingView {
  name: string;
  value: JsonValue;
  source: "flag" | "cluster";
  flag: string;
  description: string;
}

function sliceText(slice: string): string {
  const base = parseArtifactBase(slice, "slice");
  return `${base.group}:${base.artifact}`;
}

export class ConfigService {
  readonly #o: ConfigServiceOptions;
  readonly #off: Array<() => void> = [];
  /** Config pushes made and refused (a value an instance's own version does not accept). */
  readonly stats = { pushes: 0, refused: 0 };

  constructor(options: ConfigServiceOptions) {
    this.#o = options;
    this.#off.push(options.onEvents((events) => this.#apply(events)));
    this.#off.push(options.onReset(() => this.#applyAll()));
    for (const name of Object.keys(NODE_SETTINGS)) this.#applySetting(name);
  }

  stop(): void {
    for (const off of this.#off) off();
  }

  /** The values set for a slice (`group:artifact`). */
  sliceValues(slice: string): Record<string, JsonValue> {
    const prefix = `${SLICE_CONFIG_PREFIX}${sliceText(slice)}/`;
    const values: Record<string, JsonValue> = {};
    for (const entry of this.#o.state().range(prefix, MAX_FIELDS)) {
      try {
        values[entry.key.slice(prefix.length)] = decodeValue("config", entry.value, entry.key).value;
      } catch {
        // A record that does not validate is skipped (never half-used).
      }
    }
    return values;
  }

  /** The configuration values for an instance of `coordinates` (what the LOAD passes to the host). */
  valuesFor(coordinates: string): Record<string, JsonValue> {
    const base = parseArtifactBase(coordinates.split(":").slice(0, 2).join(":"), "coordinates");
    return this.sliceValues(`${base.group}:${base.artifact}`);
  }

  /** Every slice with values set. */
  slices(): string[] {
    const names = new Set<string>();
    for (const entry of this.#o.state().range(SLICE_CONFIG_PREFIX, 100_000)) {
      names.add(entry.key.slice(SLICE_CONFIG_PREFIX.length).split("/")[0]);
    }
    return [...names].sort();
  }

  view(slice: string): SliceConfigView {
    const name = sliceText(slice);
    const values = this.sliceValues(name);
    const manifest = this.#manifestOf(name);
    if (!manifest) return { slice: name, values };
    let effective: Record<string, JsonValue> | undefined;
    try {
      effective = resolveConfig(manifest.config.schema, values, "config");
    } catch {
      effective = undefined;
    }
    return {
      slice: name,
      values,
      ...(effective ? { effective } : {}),
      version: manifest.coordinates.split(":")[2],
    };
  }

  /**
   * Sets fields of a slice's configuration, checked against the schema of the version it runs (its target),
   * else its newest published version; every problem is named (field and why). One consensus write.
   */
  async set(slice: string, values: Record<string, unknown>): Promise<SliceConfigView> {
    const name = sliceText(slice);
    if (
      values === null || typeof values !== "object" || Array.isArray(values) ||
      Object.keys(values).length === 0
    ) {
      throw new AetherError("bad_request", `config of ${name}: give at least one field=value`, {
        field: "values",
      });
    }
    const manifest = this.#manifestOf(name);
    if (!manifest) {
      throw new AetherError("not_found", `no published artifact of ${name}: its config schema is unknown`);
    }
    const merged = { ...this.sliceValues(name), ...values };
    resolveConfig(manifest.config.schema, merged, `config of ${manifest.coordinates}`);
    if (Object.keys(merged).length > MAX_FIELDS) {
      throw new AetherError("bad_request", `config of ${name}: more than ${MAX_FIELDS} fields`);
    }
    const updatedAt = Date.now();
    const success: KvOp[] = Object.entries(values).map(([field, value]) => ({
      op: "put",
      key: kvKeys.config(`slices/${name}/${field}`),
      value: encodeValue("config", { value: value as JsonValue, updatedAt }),
    }));
    await this.#o.kv.write({ type: "txn", compare: [], success, failure: [] });
    return this.view(name);
  }

  /** Removes fields (the schema's default applies again); a required field without a default is refused. */
  async unset(slice: string, fields: string[]): Promise<SliceConfigView> {
    const name = sliceText(slice);
    if (!Array.isArray(fields) || fields.length === 0) {
      throw new AetherError("bad_request", `config of ${name}: name at least one field to unset`, {
        field: "fields",
      });
    }
    const current = this.sliceValues(name);
    const missing = fields.filter((f) => !Object.hasOwn(current, f));
    if (missing.length > 0) {
      throw new AetherError(
        "not_found",
        `config of ${name}: ${missing.join(", ")} not set (set: ${
          Object.keys(current).join(", ") || "none"
        })`,
      );
    }
    const manifest = this.#manifestOf(name);
    if (manifest) {
      const rest = { ...current };
      for (const f of fields) delete rest[f];
      resolveConfig(manifest.config.schema, rest, `config of ${manifest.coordinates}`);
    }
    const success: KvOp[] = fields.map((field) => ({
      op: "delete",
      key: kvKeys.config(`slices/${name}/${field}`),
    }));
    await this.#o.kv.write({ type: "txn", compare: [], success, failure: [] });
    return this.view(name);
  }

  settings(): SettingView[] {
    return Object.entries(NODE_SETTINGS).map(([name, setting]) => {
      const cluster = this.#clusterSetting(name);
      return {
        name,
        value: cluster ?? this.#o.flagSettings[name] ?? setting.builtIn ?? null,
        source: cluster === undefined ? "flag" : "cluster",
        flag: setting.flag,
        description: setting.description,
      };
    });
  }

  async setSetting(name: string, value: unknown): Promise<SettingView> {
    const setting = settingOf(name);
    const problem = settingProblem(setting, value);
    if (problem) {
      throw new AetherError("bad_request", `setting ${name}: ${problem} (${settingRange(setting)})`, {
        field: name,
      });
    }
    await this.#o.kv.write({
      type: "put",
      key: kvKeys.config(`settings/${name}`),
      value: encodeValue("config", { value: value as JsonValue, updatedAt: Date.now() }),
    });
    return this.settings().find((s) => s.name === name)!;
  }

  async unsetSetting(name: string): Promise<SettingView> {
    settingOf(name);
    await this.#o.kv.write({ type: "delete", key: kvKeys.config(`settings/${name}`) });
    return this.settings().find((s) => s.name === name)!;
  }

  // -------------------------------------------------------------------------------------------------------

  #clusterSetting(name: string): JsonValue | undefined {
    const entry = this.#o.state().get(kvKeys.config(`settings/${name}`));
    if (!entry) return undefined;
    try {
      return decodeValue("config", entry.value).value;
    } catch {
      return undefined;
    }
  }

  #applySetting(name: string): void {
    if (!Object.hasOwn(NODE_SETTINGS, name)) return;
    let value = this.#clusterSetting(name);
    const problem = value === undefined ? undefined : settingProblem(NODE_SETTINGS[name], value);
    if (problem) {
      // Written past the API (or by a newer node with other ranges): the flag's value stays in force.
      this.#o.log.warn("cluster value of a node setting ignored", { name, error: problem });
      value = undefined;
    }
    value ??= this.#o.flagSettings[name] ?? NODE_SETTINGS[name].builtIn;
    if (value === undefined) return;
    try {
      this.#o.applySetting(name, value);
    } catch (e) {
      this.#o.log.warn("node setting not applied", { name, error: (e as Error).message });
    }
  }

  /** The manifest of the version the slice's target names, else of its newest published version. */
  #manifestOf(slice: string): SliceManifest | undefined {
    const state = this.#o.state();
    const target = state.get(kvKeys.target(slice));
    if (target) {
      try {
        const version = decodeValue("target", target.value).version;
        const artifact = state.get(kvKeys.artifact(`${slice}:${version}`));
        if (artifact) return decodeValue("artifact", artifact.value).manifest;
      } catch {
        // fall through to the newest published version
      }
    }
    const versions = state.range(kvPrefixes.artifactVersions(slice), 10_000);
    const last = versions[versions.length - 1];
    if (!last) return undefined;
    const newest = versions.map((e) => decodeValue("artifact", e.value).manifest)
      .sort((a, b) => compareVersions(a.coordinates.split(":")[2], b.coordinates.split(":")[2]));
    return newest[newest.length - 1];
  }

  #apply(events: readonly KvEvent[]): void {
    const slices = new Set<string>();
    for (const event of events) {
      if (event.key.startsWith(SLICE_CONFIG_PREFIX)) {
        slices.add(event.key.slice(SLICE_CONFIG_PREFIX.length).split("/")[0]);
      } else if (event.key.startsWith(SETTINGS_PREFIX)) {
        this.#applySetting(event.key.slice(SETTINGS_PREFIX.length));
      }
    }
    for (const slice of slices) this.#push(slice);
  }

  #applyAll(): void {
    for (const name of Object.keys(NODE_SETTINGS)) this.#applySetting(name);
    const running = new Set(this.#o.instances().map((i) => i.coordinates.split(":").slice(0, 2).join(":")));
    for (const slice of running) this.#push(slice);
  }

  /** Sends a slice's values to this node's instances of it (each checks them against its own version). */
  #push(slice: string): void {
    const values = this.sliceValues(slice);
    for (const instance of this.#o.instances()) {
      if (!instance.coordinates.startsWith(`${slice}:`)) continue;
      try {
        instance.updateConfig(values);
        this.stats.pushes++;
      } catch (e) {
        this.stats.refused++;
        this.#o.log.warn("config change not applied to an instance: its version does not accept it", {
          coordinates: instance.coordinates,
          error: (e as Error).message,
        });
      }
    }
  }
}

/** What is wrong with `value` for `setting`, or undefined. */
function settingProblem(setting: NodeSetting, value: unknown): string | undefined {
  const problem = fieldValueProblem(
    {
      type: setting.type,
      ...(setting.enum ? { enum: setting.enum } : {}),
      minimum: setting.minimum,
      maximum: setting.maximum,
    },
    value,
  );
  return problem ?? setting.check?.(value as JsonValue);
}

function settingOf(name: string): NodeSetting {
  if (typeof name !== "string" || !Object.hasOwn(NODE_SETTINGS, name)) {
    throw new AetherError(
      "not_found",
      `no live node setting ${JSON.stringify(name)} (settings: ${Object.keys(NODE_SETTINGS).join(", ")})`,
    );
  }
  return NODE_SETTINGS[name];
}

export type { NodeId };
