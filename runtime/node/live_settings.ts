/**
 * Applies the node settings that change live (runtime/infra-host/config.ts NODE_SETTINGS) to the parts of this
 * node that read them: the logger, the invoker's call defaults and the HTTP listeners' limits. The config
 * feature starts before the invoker, so values arriving earlier are kept and applied once it is bound.
 */

import type { JsonValue } from "../model/mod.ts";
import type { LiveCallDefaults, SliceInvoker } from "../invoke/mod.ts";
import type { ServerLimits } from "./server_guard.ts";
import type { NodeFlags } from "./flags.ts";

/** The invoker setting each `invoke.*` name changes. */
const INVOKE_SETTINGS: Record<string, (value: number) => LiveCallDefaults> = {
  "invoke.defaultTimeoutMs": (v) => ({ defaultTimeoutMs: v }),
  "invoke.maxAttempts": (v) => ({ retry: { maxAttempts: v } }),
  "invoke.baseBackoffMs": (v) => ({ retry: { baseBackoffMs: v } }),
  "invoke.maxBackoffMs": (v) => ({ retry: { maxBackoffMs: v } }),
  "invoke.maxInFlightPerPeer": (v) => ({ flow: { maxInFlightPerPeer: v } }),
  "invoke.maxWaitingPerPeer": (v) => ({ flow: { maxWaitingPerPeer: v } }),
  "invoke.maxServing": (v) => ({ flow: { maxServing: v } }),
};

/** The listeners' limit each `http.*` name changes (both listeners read the one limits object live). */
const HTTP_SETTINGS: Record<string, keyof ServerLimits> = {
  "http.headerTimeoutMs": "headerTimeoutMs",
  "http.bodyTimeoutMs": "bodyTimeoutMs",
  "http.idleTimeoutMs": "idleTimeoutMs",
  "http.maxConnections": "maxConnections",
};

export interface LiveSettings {
  /** The flag value of each setting that has a flag (what `unset` returns to). */
  readonly flagSettings: Record<string, JsonValue>;
  apply(name: string, value: JsonValue): void;
  /** Binds the invoker once it exists; settings applied before are applied to it now. */
  bindInvoker(invoker: Pick<SliceInvoker, "setDefaults">): void;
}

export function liveSettings(
  flags: Pick<NodeFlags, "logLevel" | "serverLimits">,
  setLogLevel: (level: NodeFlags["logLevel"]) => void,
): LiveSettings {
  let invoker: Pick<SliceInvoker, "setDefaults"> | undefined;
  const early = new Map<string, LiveCallDefaults>();
  const flagSettings: Record<string, JsonValue> = { "log.level": flags.logLevel };
  for (const [name, limit] of Object.entries(HTTP_SETTINGS)) flagSettings[name] = flags.serverLimits[limit];
  return {
    flagSettings,
    apply(name, value) {
      if (name === "log.level") return setLogLevel(value as NodeFlags["logLevel"]);
      const http = HTTP_SETTINGS[name];
      if (http) {
        flags.serverLimits[http] = value as number;
        return;
      }
      const toDefaults = INVOKE_SETTINGS[name];
      if (!toDefaults) return;
      const defaults = toDefaults(value as number);
      if (invoker) invoker.setDefaults(defaults);
      else early.set(name, defaults);
    },
    bindInvoker(bound) {
      invoker = bound;
      for (const defaults of early.values()) bound.setDefaults(defaults);
      early.clear();
    },
  };
}
