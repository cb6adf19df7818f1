/**
 * Infrastructure services: `ctx.infra.cache(...)`, `.lock(...)`, `.kv(...)` calls leave the sandbox as
 * call-outs (client `@infra`, artifact `aether.infra:<service>`, allowed by the sandbox host only for services
 * the slice's manifest `requires`). A service with a bundled slice (infra/<service>, service_slices.ts) that is
 * deployed is called through the invoker; its slice reaches the engine here through `@service-host` (bundled
 * digest only, `serveHost`). A service without one is answered here directly (the fallback). Either way every
 * key is scoped to the calling slice's group, taken from its manifest by the runtime (never from the request).
 *
 * SERVICES is a table: a later service (config, secrets, rate limiter) adds one row.
 */

import type { Hono } from "hono";
import { AetherError, isAetherError } from "../core/mod.ts";
import type { InvokeOutcome, OutboundCall } from "../sandbox/mod.ts";
import type { InfraStores } from "./feature.ts";
import type { Store } from "./store_node.ts";
import { CACHE_SERVICE } from "./cache_service.ts";
import { LOCK_SERVICE } from "./lock_service.ts";
import { DB_SERVICE } from "./sqldb_service.ts";
import { KV_SERVICE } from "./kv_service.ts";
import { SCHEDULER_SERVICE } from "./scheduler.ts";
import { STATEMACHINE_SERVICE } from "./statemachine.ts";
import { PUBSUB_SERVICE } from "./pubsub_service.ts";
import { HTTP_SERVICE } from "./http_client.ts";
import { infraServicesRoutes } from "./services_api.ts";
import type { ServiceSlices, ServiceSliceStatus } from "./service_slices.ts";
import { isIdempotentCall, isNodeLocal } from "./service_routing.ts";

/** The artifact group of infrastructure services' calls and the bundled catalog. */
export const INFRA_GROUP = "aether.infra";

/** Who is calling: the group every key is scoped to, and the request's deadline. */
export interface ServiceCall {
  /** The calling slice's group (from its manifest, set by the sandbox host). */
  group: string;
  method: string;
  payload: Record<string, unknown>;
  deadlineMs: number;
  requestId: string;
  /** The calling slice's coordinates (`group:artifact:version`), when a slice calls (pubsub subscribes it). */
  from?: string;
}

export interface InfraService {
  name: string;
  version: string;
  description: string;
  /** The store it keeps its data in, and that store's options; none for a service on the consensus KV. */
  store?: { name: string; engine: "sqlite" | "memory" };
  methods: readonly string[];
  /** Answers a call on the store; a service without a store is answered by `kvServed` (the lock). */
  serve?(store: Store, call: ServiceCall): Promise<unknown>;
}

export const SERVICES: readonly InfraService[] = [
  CACHE_SERVICE,
  LOCK_SERVICE,
  KV_SERVICE,
  SCHEDULER_SERVICE,
  STATEMACHINE_SERVICE,
  HTTP_SERVICE,
  PUBSUB_SERVICE,
  DB_SERVICE,
];

export interface InfraServicesOptions {
  stores: InfraStores;
  /** Services kept in the consensus KV, by name: the lock (lock_service.ts). */
  kvServed: Readonly<Record<string, (call: ServiceCall) => Promise<unknown>>>;
  /**
   * The bundled service slices (infra/, service_slices.ts) and the invoker that reaches their instances. A
   * service with a bundled slice that is deployed is called through the invoker; the others (no bundle yet,
   * or not deployed) are served by the node itself as before. Absent: every service is node-served.
   */
  slices?: ServiceSlices;
  /** `idempotent: false`: no retry after an unknown outcome (service_routing.ts). */
  invoke?: (call: OutboundCall, options: { idempotent: boolean }) => Promise<InvokeOutcome>;
}

/** The reserved client of a bundled service slice's call-outs to its own node-side engine. */
export const SERVICE_HOST_CLIENT = "@service-host";

export interface InfraServices {
  readonly name: "infra";
  /** GET /infra, GET /infra/{name}, POST /infra/{name}/install (services_api.ts). */
  readonly api: Hono;
  /** True for a call to an infrastructure service (`aether.infra:<name>`). */
  handles(call: OutboundCall): boolean;
  serve(call: OutboundCall): Promise<InvokeOutcome>;
  /** The bundled catalog: name, version, description, methods. */
  catalog(): Array<{ name: string; version: string; description: string; methods: readonly string[] }>;
  /**
   * Makes sure each named service runs (opens its store, which the leader then places), in the order given;
   * a name not in the catalog throws the seed's message: the missing name, the services available, the
   * command that installs one.
   */
  ensure(names: readonly string[], timeoutMs?: number): Promise<void>;
  /**
   * Which services run, with the store's status; a bundled service slice adds `slice` (its artifact,
   * instances): it runs once it has an ACTIVE instance.
   */
  status(): Array<
    { name: string; version: string; running: boolean; store: string; slice?: ServiceSliceStatus }
  >;
  /**
   * Calls a service's method as a slice of `group` would (the operator's API, e.g. a cache's configuration:
   * the same checks and errors as a slice's call). Throws AetherError.
   */
  callAs(group: string, service: string, method: string, payload: Record<string, unknown>): Promise<unknown>;
}

export function startInfraServices(options: InfraServicesOptions): InfraServices {
  const byName = new Map(SERVICES.map((s) => [s.name, s]));
  const opening = new Map<string, Promise<Store>>();
  const storeOf = (service: string, spec: NonNullable<InfraService["store"]>): Promise<Store> => {
    let store = opening.get(service);
    if (!store) {
      store = options.stores.open(spec.name, { engine: spec.engine });
      opening.set(service, store);
      store.catch(() => opening.delete(service)); // a failed open is tried again by the next call
    }
    return store;
  };
  const services: InfraServices = {
    name: "infra",
    get api() {
      return api ??= infraServicesRoutes(services);
    },
    handles: (call) => call.target.artifact.startsWith(`${INFRA_GROUP}:`),
    serve(call) {
      const name = call.target.artifact.slice(INFRA_GROUP.length + 1);
      if (call.name === SERVICE_HOST_CLIENT) return serveHost(name, call);
      // A bundled service slice that runs: through the invoker to its instances (the caller travels with the
      // call as `caller`, taken by the sandbox host from the caller's manifest). A transaction's calls stay on
      // this node, and effects that must not repeat are not retried (service_routing.ts).
      if (options.slices?.deployed(name) && options.invoke && !isNodeLocal(name, call.method)) {
        return options.invoke(call, { idempotent: isIdempotentCall(name, call.method, call.payload) });
      }
      return answer(name, call);
    },
    catalog: () =>
      SERVICES.map((s) => ({
        name: s.name,
        version: s.version,
        description: s.description,
        methods: s.methods,
      })),
    async ensure(names, timeoutMs = 30_000) {
      for (const name of names) {
        const service = byName.get(name);
        if (!service) throw new AetherError("not_found", missingMessage(name), { service: name });
      }
      // In the order given: a service runs (store open, slice ACTIVE) before the next one starts.
      for (const name of names) {
        const service = byName.get(name)!;
        if (service.store) {
          await withTimeout(
            storeOf(name, service.store),
            timeoutMs,
            `starting infrastructure service ${name}`,
          );
        }
        await options.slices?.ensure(name, timeoutMs);
      }
    },
    async callAs(group, name, method, payload) {
      const service = byName.get(name);
      if (!service?.store || !service.serve) {
        throw new AetherError("not_found", `no store-backed infrastructure service "${name}"`, {
          service: name,
        });
      }
      const store = await storeOf(service.name, service.store);
      return await service.serve(store, {
        group,
        method,
        payload,
        deadlineMs: Date.now() + 10_000,
        requestId: crypto.randomUUID(),
      });
    },
    status: () => {
      const existing = new Set(options.stores.list());
      return SERVICES.map((s) => {
        const slice = options.slices?.status(s.name);
        const stored = s.store ? existing.has(s.store.name) : true;
        return {
          name: s.name,
          version: s.version,
          running: slice ? stored && slice.active > 0 : stored,
          store: s.store?.name ?? "consensus KV",
          ...(slice ? { slice } : {}),
        };
      });
    },
  };
  /** Runs a service's method on this node's engine for `call.from`'s group (node-served, or for the slice). */
  const answer = async (name: string, call: OutboundCall): Promise<InvokeOutcome> => {
    const service = byName.get(name);
    try {
      if (!service) throw new AetherError("not_found", missingMessage(name));
      if (!service.methods.includes(call.method)) {
        throw new AetherError(
          "not_found",
          `${name} has no method "${call.method}" (methods: ${service.methods.join(", ")})`,
        );
      }
      const payload = call.payload;
      if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
        throw new AetherError("bad_request", `${name}.${call.method}: the request must be a JSON object`);
      }
      const serviceCall: ServiceCall = {
        group: call.from.split(":")[0],
        method: call.method,
        payload: payload as Record<string, unknown>,
        deadlineMs: call.deadlineMs,
        requestId: call.requestId,
        from: call.from,
      };
      const value = service.store && service.serve
        ? await service.serve(await storeOf(service.name, service.store), serviceCall)
        : await kvServedOf(service.name)(serviceCall);
      return { ok: true, value: (value ?? null) as never };
    } catch (e) {
      return { ok: false, error: failure(e) };
    }
  };
  /**
   * A bundled service slice's call to its engine: only the bundled artifact itself (the sandbox host let
   * through only a slice of `aether.infra` calling its own service; here the digest must be the bundled one),
   * with `{caller, request}`: the calling slice the service slice read from `ctx.caller`.
   */
  const serveHost = (name: string, call: OutboundCall): Promise<InvokeOutcome> => {
    const bundled = options.slices?.bundledFor(name);
    const expected = bundled?.coordinates ?? `${INFRA_GROUP}:${name}`;
    if (!bundled || call.from !== bundled.coordinates || call.fromSha256 !== bundled.sha256) {
      return Promise.resolve({
        ok: false,
        error: {
          name: "Forbidden",
          status: 403,
          message: `${SERVICE_HOST_CLIENT} is reserved for the bundled infrastructure service ` +
            `${expected}, at its bundled digest: ${call.from} is not it`,
        },
      });
    }
    const envelope = call.payload as { caller?: unknown; request?: unknown } | null;
    const caller = envelope?.caller;
    if (typeof caller !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}:/.test(caller)) {
      return Promise.resolve({
        ok: false,
        error: {
          name: "BadRequest",
          status: 400,
          message: `${SERVICE_HOST_CLIENT}: caller must be slice coordinates`,
        },
      });
    }
    return answer(name, { ...call, from: caller, payload: envelope?.request });
  };
  let api: Hono | undefined;
  const kvServedOf = (name: string) => {
    const serve = options.kvServed[name];
    if (!serve) {
      throw new AetherError("unavailable", `infrastructure service ${name} is not served by this node`);
    }
    return serve;
  };
  return services;
}

/** The seed's message for a service not in the catalog. */
export function missingMessage(name: string): string {
  return [
    "Blueprint deployment failed:",
    "",
    `Required infrastructure service '${name}' not found.`,
    "",
    "Available services in infrastructure repository:",
    ...SERVICES.map((s) => `  - ${s.name} (v${s.version})`),
    "",
    `To add ${name} service:`,
    `  aether infra install ${name}`,
  ].join("\n");
}

function failure(e: unknown): { name: string; message: string; status: number; details?: never } {
  if (isAetherError(e)) {
    const name = e.code === "bad_request" ? "BadRequest" : e.code === "conflict" ? "Conflict" : e.name;
    const out: { name: string; message: string; status: number; details?: never } = {
      name: typeof e.extra.errorName === "string" ? e.extra.errorName : name,
      message: e.message,
      status: e.status,
    };
    if (e.extra.details !== undefined) out.details = e.extra.details as never;
    return out;
  }
  return { name: "InfraError", message: e instanceof Error ? e.message : String(e), status: 500 };
}

async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new AetherError("timeout", `${what} took longer than ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Request field checks shared by the services: each error names the service, method and field.

export function stringField(call: ServiceCall, service: string, field: string, maxBytes = 512): string {
  const value = call.payload[field];
  if (typeof value !== "string" || value === "") {
    throw new AetherError("bad_request", `${service}.${call.method}: ${field} must be a non-empty string`, {
      field,
    });
  }
  if (new TextEncoder().encode(value).byteLength > maxBytes) {
    throw new AetherError("bad_request", `${service}.${call.method}: ${field} is over ${maxBytes} bytes`, {
      field,
    });
  }
  return value;
}

export function optionalMs(
  call: ServiceCall,
  service: string,
  field: string,
  maxMs: number,
): number | undefined {
  const value = call.payload[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > maxMs) {
    throw new AetherError(
      "bad_request",
      `${service}.${call.method}: ${field} must be an integer from 1 to ${maxMs} (ms), got ${
        JSON.stringify(value)
      }`,
      { field },
    );
  }
  return value;
}

/** Milliseconds left of the caller's deadline, capped for one store call. */
export function remainingMs(call: ServiceCall, capMs = 5_000): number {
  return Math.max(1, Math.min(capMs, call.deadlineMs - Date.now()));
}
