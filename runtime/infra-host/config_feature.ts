/**
 * The node feature `"config"`: dynamic configuration (config.ts), secrets (secrets.ts) and the cluster-wide
 * rate limiter (ratelimit.ts), and the answers to the slices' calls of the node-served services `secrets`
 * (`ctx.secrets.get`) and `ratelimit` (`ctx.infra.rateLimit(name).tryAcquire()`), which leave the sandbox as
 * call-outs to `aether.infra:<service>` like the other infrastructure services (services.ts).
 */

import { AetherError, isAetherError, type Logger, type NodeId } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvEvent, KvState } from "../kv/mod.ts";
import type { Mesh } from "../net/mod.ts";
import { decodeValue, type JsonValue, kvKeys } from "../model/mod.ts";
import { type InvokeOutcome, type OutboundCall, resolveConfig } from "../sandbox/mod.ts";
import { ConfigService } from "./config.ts";
import { type SecretReadAudit, SecretsService } from "./secrets.ts";
import { RateLimiter } from "./ratelimit.ts";

/** Services this feature answers for slices (`aether.infra:<name>`), besides the store-backed ones. */
export const NODE_SERVED_SERVICES = ["secrets", "ratelimit"] as const;

export interface ConfigFeatureOptions {
  self: NodeId;
  members: readonly NodeId[];
  log: Logger;
  mesh: Pick<Mesh, "send" | "onMessage">;
  isConnected(node: NodeId): boolean;
  kv: KvAccess;
  state(): KvState;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  isLeader(): boolean;
  leader(): { nodeId: NodeId } | null;
  /** This node's instances (the deployment executor's list) with their hosts. */
  instances(): Array<{ coordinates: string; host?: { updateConfig(values: Record<string, unknown>): void } }>;
  /** The node's flag values of the live settings (NODE_SETTINGS). */
  flagSettings: Record<string, JsonValue>;
  applySetting(name: string, value: JsonValue): void;
  /** The master key of the secrets (`--secrets-key-file`); none: secrets answer 503. */
  secretsKey?: CryptoKey;
  /** Where slices' secret reads are recorded (the audit log). */
  auditSecretRead(entry: SecretReadAudit): void;
}

export interface ConfigFeature {
  readonly name: "config";
  readonly config: ConfigService;
  readonly secrets: SecretsService;
  readonly rateLimits: RateLimiter;
  /** An instance's configuration values at LOAD (only values its version accepts). */
  valuesFor(coordinates: string): Record<string, unknown>;
  /** True for a slice's call this feature answers. */
  handles(call: OutboundCall): boolean;
  serve(call: OutboundCall): Promise<InvokeOutcome>;
  status(): unknown;
  stop(): Promise<void>;
}

export function startConfigFeature(options: ConfigFeatureOptions): ConfigFeature {
  const log = options.log.with({ component: "config" });
  const config = new ConfigService({
    kv: options.kv,
    state: options.state,
    onEvents: options.onEvents,
    onReset: options.onReset,
    instances: () =>
      options.instances().flatMap((i) =>
        i.host ? [{ coordinates: i.coordinates, updateConfig: (v) => i.host!.updateConfig(v) }] : []
      ),
    flagSettings: options.flagSettings,
    applySetting: options.applySetting,
    log,
  });
  const secrets = new SecretsService({
    kv: options.kv,
    state: options.state,
    ...(options.secretsKey ? { key: options.secretsKey } : {}),
    audit: options.auditSecretRead,
  });
  const rateLimits = new RateLimiter({
    self: options.self,
    members: options.members,
    log: log.with({ component: "ratelimit" }),
    mesh: options.mesh,
    isConnected: options.isConnected,
    kv: options.kv,
    state: options.state,
    onEvents: options.onEvents,
    onReset: options.onReset,
    isLeader: options.isLeader,
    leaderId: () => options.leader()?.nodeId,
  });
  const served = new Set<string>(NODE_SERVED_SERVICES.map((s) => `aether.infra:${s}`));

  const valuesFor = (coordinates: string): Record<string, unknown> => {
    const values = config.valuesFor(coordinates);
    if (Object.keys(values).length === 0) return values;
    try {
      const entry = options.state().get(kvKeys.artifact(coordinates));
      if (entry) resolveConfig(decodeValue("artifact", entry.value).manifest.config.schema, values, "config");
      return values;
    } catch (e) {
      // The cluster's values were checked against another version's schema: this one loads with its defaults.
      log.warn("config values not accepted by this version; it loads with its defaults", {
        coordinates,
        error: (e as Error).message,
      });
      return {};
    }
  };

  const serve = async (call: OutboundCall): Promise<InvokeOutcome> => {
    try {
      const payload = (call.payload ?? {}) as Record<string, unknown>;
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        throw new AetherError(
          "bad_request",
          `${call.target.artifact}.${call.method}: the request must be an object`,
        );
      }
      if (call.target.artifact === "aether.infra:secrets" && call.method === "get") {
        const value = await secrets.read(String(payload.name), {
          slice: call.from,
          instanceId: call.instanceId,
          requestId: call.requestId,
        });
        return { ok: true, value };
      }
      if (call.target.artifact === "aether.infra:ratelimit" && call.method === "tryAcquire") {
        const permits = payload.permits === undefined ? 1 : payload.permits;
        return { ok: true, value: rateLimits.tryAcquire(String(payload.name), permits as number) };
      }
      throw new AetherError("not_found", `${call.target.artifact} has no method "${call.method}"`);
    } catch (e) {
      const error = isAetherError(e) ? e : new AetherError("internal", String((e as Error)?.message ?? e));
      return {
        ok: false,
        error: { name: errorName(error.code), message: error.message, status: statusOf(error.code) },
      };
    }
  };

  return {
    name: "config",
    config,
    secrets,
    rateLimits,
    valuesFor,
    handles: (call) => served.has(call.target.artifact),
    serve,
    status: () => ({
      settings: config.settings(),
      slices: config.slices().length,
      pushes: config.stats,
      secrets: { enabled: secrets.enabled, count: secrets.list().length, ...secrets.stats },
      rateLimits: rateLimits.list(),
    }),
    stop: () => {
      rateLimits.stop();
      config.stop();
      return Promise.resolve();
    },
  };
}

function statusOf(code: string): number {
  switch (code) {
    case "bad_request":
      return 400;
    case "forbidden":
      return 403;
    case "not_found":
      return 404;
    case "unavailable":
      return 503;
    default:
      return 500;
  }
}

function errorName(code: string): string {
  switch (code) {
    case "forbidden":
      return "SecretNotDeclared";
    case "not_found":
      return "NotFound";
    case "bad_request":
      return "BadRequest";
    case "unavailable":
      return "Unavailable";
    default:
      return "InternalError";
  }
}
