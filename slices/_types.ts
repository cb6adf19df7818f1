/**
 * Types slice authors see. Everything here is erased at build time except the string markers (`kind`), which
 * the worker runtime uses to recognise a definition, a slice reference and a response across module copies
 * (the bundle carries its own copy of the SDK, so `instanceof` cannot be used).
 */

// The log types are core's (one definition for the node and the SDK). A file import, not core/mod.ts: the
// slice runtime runs where npm packages cannot load (see runtime/core/trace.ts), and this import is type-only.
import type { JobDeclaration, MachineSpec } from "./_machines.ts";
import type { LogFields, LogLevel, LogWriter } from "../runtime/core/mod.ts";

import type { InfraClients } from "./_infra.ts";
import type { RateLimitClients } from "./_ratelimit.ts";
import type { SubscriptionDeclaration } from "./_subscriptions.ts";

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** `"METHOD /path/{param}?query1&query2"`, relative to the slice's HTTP prefix. */
export type RouteSpec = `${HttpMethod} /${string}`;

// ---------------------------------------------------------------------------------------------------------
// Configuration

export type ConfigFieldType = "string" | "number" | "integer" | "boolean" | "string[]";

export interface ConfigField {
  readonly type: ConfigFieldType;
  /** Used when the deployment gives no value. A field without a default and not optional is required. */
  readonly default?: JsonValue;
  /** The value may be absent (`undefined` in `ctx.config`). */
  readonly optional?: boolean;
  readonly description?: string;
  /** Allowed values (string and number fields). */
  readonly enum?: readonly (string | number)[];
  /** Inclusive bounds (number and integer fields). */
  readonly minimum?: number;
  readonly maximum?: number;
}

export type ConfigSchema = { readonly [name: string]: ConfigField };

type FieldValue<T extends ConfigFieldType> = T extends "string" ? string
  : T extends "boolean" ? boolean
  : T extends "string[]" ? readonly string[]
  : number;

type EnumValue<F extends ConfigField> = F extends { enum: readonly (infer E)[] } ? E : FieldValue<F["type"]>;

/** The type of `ctx.config` for a schema. */
export type ConfigOf<S extends ConfigSchema> = {
  readonly [K in keyof S]: S[K] extends { optional: true } ? EnumValue<S[K]> | undefined : EnumValue<S[K]>;
};

// ---------------------------------------------------------------------------------------------------------
// Calling other slices

declare const API: unique symbol;

/** A dependency: the slice `artifact` (`group:artifact`) in a version `range`, called through API `Api`. */
export interface SliceRef<Api = unknown> {
  readonly kind: "aether.slice-ref";
  readonly artifact: string;
  readonly range: string;
  /** Type-level only: carries `Api` so `ctx.slices.x` is typed. */
  readonly [API]?: Api;
}

export interface CallOptions {
  /** Deadline for this call, in ms from now; never later than the deadline of the call being served. */
  readonly timeoutMs?: number;
}

/** One method of another slice: call it and await the result, or send it without waiting. */
export interface MethodClient<Req, Res> {
  (request: Req, options?: CallOptions): Promise<Res>;
  /** Sends the call without waiting for its result; failures are logged, never thrown. */
  fireAndForget(request: Req, options?: CallOptions): void;
}

/** A typed client for an API type `{ method(request): Promise<response> }`. */
export type ClientOf<Api> = {
  readonly [K in keyof Api & string]: Api[K] extends (request: infer Q, ...rest: never[]) => infer R
    ? MethodClient<Q, Awaited<R>>
    : never;
};

/** `ctx.slices` for a `calls` table. */
export type Clients<Calls> = {
  readonly [K in keyof Calls]: Calls[K] extends SliceRef<infer Api> ? ClientOf<Api> : never;
};

// ---------------------------------------------------------------------------------------------------------
// Context

export type { LogFields, LogLevel };

/** Lines carry the request id of the call they were written in. */
export type Logger = LogWriter;

/** What every method call and hook receives next to its request. */
export interface Context<Config = Record<string, never>, Calls = Record<string, never>> {
  /** The request id, the same in every hop of a request. */
  readonly requestId: string;
  /** W3C trace context of this call. */
  readonly traceparent: string;
  /** Epoch milliseconds after which the caller no longer waits. */
  readonly deadline: number;
  /** Milliseconds left until `deadline` (never negative). */
  readonly remainingMs: number;
  /** Aborted when the deadline passes: hand it to `fetch` and friends. */
  readonly signal: AbortSignal;
  /** This slice's configuration, validated against its schema, defaults applied. */
  readonly config: Config;
  readonly log: Logger;
  /** Typed clients of the slices this slice calls. */
  readonly slices: Clients<Calls>;
  /** Which instance is serving the call. */
  readonly instance: { readonly coordinates: string; readonly instanceId: string };
  /** Clients of the infrastructure services the slice `requires` (`ctx.infra.cache("sessions")`). */
  readonly infra: InfraClients & RateLimitClients;
  /** The cluster secrets the slice declares (`secrets: [...]`); each read is audited. */
  readonly secrets: SecretsClient;
  /**
   * The slice that made this call (`group:artifact:version`), as the runtime knows it: taken by the caller's
   * sandbox host from the caller's manifest, never from the request. Undefined for calls from HTTP or the API.
   */
  readonly caller: string | undefined;
  /**
   * Bundled infrastructure services only (group `aether.infra` with the digest shipped with the runtime): a
   * call to the node-side engine of the service itself (infra/README.md). Refused (403) for any other slice.
   */
  serviceHost(method: string, payload: JsonValue, options?: CallOptions): Promise<unknown>;
  /**
   * Runs `listener` with the new configuration whenever an operator changes it (`aether config set`);
   * `ctx.config` already reads the new values by then. Returns a function that removes the listener.
   */
  onConfigChange(listener: (config: Config) => void): () => void;
}

/** `ctx.secrets`: reads a declared secret's current version (decrypted by the node). */
export interface SecretsClient {
  /** The secret's value; throws (403) for a name the slice does not declare, (404) for none set. */
  get(name: string, options?: CallOptions): Promise<string>;
}

// ---------------------------------------------------------------------------------------------------------
// Responses

declare const BODY: unique symbol;

/** A method's result with an explicit HTTP status and headers; made with `respond()`. */
export interface HttpResponse<Body = unknown> {
  readonly kind: "aether.response";
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Body;
  readonly [BODY]?: Body;
}

/** The body a caller receives from a method result: `respond(...)` wrappers are unwrapped. */
export type BodyOf<T> = T extends HttpResponse<infer B> ? B : T;

// ---------------------------------------------------------------------------------------------------------
// Definitions

/** A slice method: one request in, one result out (a value, a promise, or `respond(...)`). */
// deno-lint-ignore no-explicit-any
export type SliceMethod<Ctx> = (request: any, ctx: Ctx) => unknown;

export interface HttpSpec<M> {
  /** Path prefix of every route, e.g. `/api/v1/inventory`. */
  readonly prefix: string;
  /** Route per method: `"POST /check"`, `"GET /items/{id}"`, `"GET /search?q&limit"`. */
  readonly routes?: { readonly [K in keyof M]?: RouteSpec };
  /** Error-name glob patterns per HTTP status: `{ 404: ["*NotFound*"], 400: ["*Invalid*"] }`. */
  readonly errors?: { readonly [status: number]: readonly string[] };
}

export interface PermissionSpec {
  /** Outbound hosts, `host` or `host:port`. */
  readonly net?: readonly string[];
  /** Environment variable names the slice reads. */
  readonly env?: readonly string[];
}

export type Hook<Ctx> = (ctx: Ctx) => unknown;

/** What `defineSlice` takes. */
export interface SliceSpec<M, C, S extends ConfigSchema> {
  /** `group:artifact:version`, e.g. `org.example:inventory:1.0.0`. */
  readonly coordinates: string;
  readonly methods: M;
  readonly start?: Hook<Context<ConfigOf<S>, C>>;
  readonly stop?: Hook<Context<ConfigOf<S>, C>>;
  readonly http?: HttpSpec<M>;
  readonly calls?: C;
  /** Infrastructure services this slice needs, e.g. `["cache"]`. */
  readonly requires?: readonly string[];
  /**
   * State machines of this slice's group (`requires: ["statemachine"]`, `ctx.infra.machine(name)`): states,
   * events, transitions with declarative guards, timeouts, onEnter methods (slices/_machines.ts).
   */
  readonly machines?: Readonly<Record<string, MachineSpec>>;
  /** Jobs the scheduler creates when the slice is deployed: `{ nightly: { cron: "0 3 * * *", method } }`. */
  readonly jobs?: Readonly<Record<string, JobDeclaration>>;
  /**
   * Consumer groups of pub/sub topics of this slice's group that deliver to its methods (`requires:
   * ["pubsub"]`), created when the slice is deployed: `[{ topic: "orders", group: "billing", method: "onOrder" }]`.
   */
  readonly subscriptions?: readonly SubscriptionDeclaration[];
  /** Names of the cluster secrets this slice reads with `ctx.secrets.get(name)`; no other can be read. */
  readonly secrets?: readonly string[];
  /**
   * Hosts `ctx.infra.http.request` may reach (`"api.example.com"`, `"127.0.0.1:9000"`; a bare host means ports
   * 80 and 443); with `requires: ["http"]`. The operator must allow them too (`aether node --outbound-allow`).
   */
  readonly outbound?: readonly string[];
  /**
   * Field names or dotted paths (`"password"`, `"card.number"`) shown as `"[redacted]"` when a dynamic aspect
   * logs this slice's arguments and results (besides the defaults: password, token, secret, authorization...).
   */
  readonly redact?: readonly string[];
  /**
   * SQL databases the slice uses with `ctx.infra.db(name)` (`requires: ["db"]`) and their migrations: applied
   * once across the cluster, in order, before the slice's first statement (`{ orders: { migrations: [...] } }`).
   */
  readonly databases?: Readonly<Record<string, { readonly migrations?: readonly string[] }>>;
  readonly permissions?: PermissionSpec;
  readonly config?: S;
}

/** The value `defineSlice` returns; export it as the module's default export. */
export interface SliceDefinition<
  M = Record<string, unknown>,
  C = Record<string, SliceRef>,
  S extends ConfigSchema = ConfigSchema,
> {
  readonly kind: "aether.slice";
  readonly format: 1;
  readonly coordinates: string;
  readonly methods: M;
  readonly start?: Hook<Context<ConfigOf<S>, C>>;
  readonly stop?: Hook<Context<ConfigOf<S>, C>>;
  readonly http?: HttpSpec<M>;
  readonly calls: C;
  readonly requires: readonly string[];
  readonly machines?: Readonly<Record<string, MachineSpec>>;
  readonly jobs?: Readonly<Record<string, JobDeclaration>>;
  readonly subscriptions?: readonly SubscriptionDeclaration[];
  readonly secrets: readonly string[];
  readonly outbound?: readonly string[];
  readonly redact?: readonly string[];
  readonly databases?: Readonly<Record<string, { readonly migrations?: readonly string[] }>>;
  readonly permissions: PermissionSpec;
  readonly config: S;
}

/** Any slice definition, whatever its methods, calls and configuration. */
// deno-lint-ignore no-explicit-any
export type AnySliceDefinition = SliceDefinition<any, any, any>;

/**
 * The API another slice sees for a definition: `ApiOf<typeof inventory>` gives
 * `{ checkStock(request: CheckStockRequest): Promise<StockAvailability>, ... }`.
 */
export type ApiOf<D> = D extends SliceDefinition<infer M, infer _C, infer _S> ? {
    [K in keyof M]: M[K] extends (request: infer Q, ctx: never) => infer R
      ? (request: Q) => Promise<BodyOf<Awaited<R>>>
      : never;
  }
  : never;
