/**
 * `defineSlice`, `slice`, `respond` and `SliceError`: the runtime half of the SDK. This code is bundled into
 * every slice, so it has no dependencies and stays small; it checks the structure of a definition at once
 * (the first time the module is evaluated, in tests too). Coordinates and version ranges are checked in full
 * by the build (`validateManifest`) and by `testSlice`.
 */

import { jobsProblems, machinesProblems } from "./_machines.ts";
import { type SubscriptionDeclaration, subscriptionsProblems } from "./_subscriptions.ts";
import type {
  ConfigOf,
  ConfigSchema,
  Context,
  HttpResponse,
  SliceDefinition,
  SliceMethod,
  SliceRef,
  SliceSpec,
} from "./_types.ts";

export const METHOD_NAME = /^[a-z][a-zA-Z0-9]+$/;
const ROUTE = /^(GET|POST|PUT|PATCH|DELETE) (\/\S*)$/;

/** Thrown by `defineSlice` when a definition is malformed; the message names the field. */
export class SliceDefinitionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SliceDefinitionError";
  }
}

/**
 * Base class for errors a slice throws on purpose. The class name becomes the error name that the HTTP
 * layer matches against `http.errors` patterns (`class OrderNotFound extends SliceError {}` → 404 with
 * `{ 404: ["*NotFound*"] }`). `status` overrides the mapping; `details` travel to the caller as JSON.
 */
export class SliceError extends Error {
  readonly status?: number;
  readonly details?: unknown;

  constructor(message: string, options: { status?: number; details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    if (options.status !== undefined) this.status = options.status;
    if (options.details !== undefined) this.details = options.details;
  }
}

/** Declares a dependency on another slice, called through a typed client: `slice<PricingApi>("org.example:pricing", "^1.0.0")`. */
export function slice<Api>(artifact: string, range: string): SliceRef<Api> {
  if (typeof artifact !== "string" || artifact.split(":").length !== 2) {
    throw new SliceDefinitionError(`slice("${artifact}", ...): expected "group:artifact" without a version`);
  }
  if (typeof range !== "string" || range.trim() === "") {
    throw new SliceDefinitionError(`slice("${artifact}", ...): expected a version range such as "^1.0.0"`);
  }
  return Object.freeze({ kind: "aether.slice-ref", artifact, range }) as SliceRef<Api>;
}

/** A method result with an explicit status and headers: `return respond({ status: 201, body: order })`. */
export function respond<Body>(
  init: { status?: number; headers?: Record<string, string>; body: Body },
): HttpResponse<Body> {
  const status = init.status ?? 200;
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new SliceDefinitionError(`respond(): status ${status} is not an HTTP status between 200 and 599`);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(init.headers ?? {})) {
    if (typeof value !== "string") {
      throw new SliceDefinitionError(`respond(): header "${name}" must be a string`);
    }
    headers[name.toLowerCase()] = value;
  }
  return { kind: "aether.response", status, headers, body: init.body } as HttpResponse<Body>;
}

function describeWhere(spec: { coordinates?: unknown }): string {
  return `defineSlice(${typeof spec.coordinates === "string" ? spec.coordinates : "?"})`;
}

function checkStringList(where: string, field: string, value: unknown): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new SliceDefinitionError(`${where}: ${field} must be a list of strings`);
  }
  return Object.freeze([...value]);
}

function checkMethods(where: string, methods: unknown): void {
  if (methods === null || typeof methods !== "object") {
    throw new SliceDefinitionError(`${where}: methods must be an object of functions`);
  }
  const names = Object.keys(methods);
  if (names.length === 0) {
    throw new SliceDefinitionError(`${where}: methods is empty; a slice needs one method`);
  }
  for (const name of names) {
    if (!METHOD_NAME.test(name)) {
      throw new SliceDefinitionError(
        `${where}: method name "${name}" must match ${METHOD_NAME.source} (lower camel case, 2+ characters)`,
      );
    }
    if (typeof (methods as Record<string, unknown>)[name] !== "function") {
      throw new SliceDefinitionError(`${where}: methods.${name} must be a function`);
    }
  }
}

function checkHttp(where: string, http: unknown, methods: object): void {
  if (http === undefined) return;
  if (http === null || typeof http !== "object") {
    throw new SliceDefinitionError(`${where}: http must be an object`);
  }
  const { prefix, routes = {}, errors = {} } = http as Record<string, unknown>;
  if (typeof prefix !== "string" || !prefix.startsWith("/")) {
    throw new SliceDefinitionError(`${where}: http.prefix must be a path starting with "/"`);
  }
  for (const [method, route] of Object.entries(routes as Record<string, unknown>)) {
    if (!(method in methods)) {
      throw new SliceDefinitionError(`${where}: http.routes.${method} names no method of this slice`);
    }
    if (typeof route !== "string" || !ROUTE.test(route)) {
      throw new SliceDefinitionError(
        `${where}: http.routes.${method} is ${
          JSON.stringify(route)
        }; expected "METHOD /path" with METHOD one ` +
          `of GET, POST, PUT, PATCH, DELETE`,
      );
    }
  }
  for (const [status, patterns] of Object.entries(errors as Record<string, unknown>)) {
    const code = Number(status);
    if (!Number.isInteger(code) || code < 400 || code > 599) {
      throw new SliceDefinitionError(
        `${where}: http.errors key ${status} is not an HTTP error status (400-599)`,
      );
    }
    checkStringList(where, `http.errors.${status}`, patterns);
  }
}

function checkCalls(where: string, calls: unknown): void {
  if (calls === undefined) return;
  if (calls === null || typeof calls !== "object") {
    throw new SliceDefinitionError(`${where}: calls must be an object`);
  }
  for (const [name, ref] of Object.entries(calls)) {
    if ((ref as { kind?: unknown })?.kind !== "aether.slice-ref") {
      throw new SliceDefinitionError(
        `${where}: calls.${name} must be made with slice<Api>("group:artifact", "^1.0.0")`,
      );
    }
  }
}

/**
 * Defines a slice. Export the result as the module's default export:
 *
 * ```ts
 * export default defineSlice({
 *   coordinates: "org.example:inventory:1.0.0",
 *   methods: { async checkStock(req: CheckStock, ctx) { ... } },
 *   http: { prefix: "/api/v1/inventory", routes: { checkStock: "POST /check" } },
 * });
 * ```
 */
export function defineSlice<
  // No default for M: with none, TypeScript types the methods' `ctx` from this constraint.
  M extends Record<string, SliceMethod<Context<ConfigOf<S>, C>>>,
  const S extends ConfigSchema = Record<never, never>,
  const C extends Record<string, SliceRef<unknown>> = Record<never, never>,
>(spec: SliceSpec<M, C, S>): SliceDefinition<M, C, S> {
  if (spec === null || typeof spec !== "object") {
    throw new SliceDefinitionError("defineSlice: expected an object");
  }
  const where = describeWhere(spec);
  if (typeof spec.coordinates !== "string" || spec.coordinates.split(":").length !== 3) {
    throw new SliceDefinitionError(`${where}: coordinates must be "group:artifact:version"`);
  }
  checkMethods(where, spec.methods);
  for (const hook of ["start", "stop"] as const) {
    if (spec[hook] !== undefined && typeof spec[hook] !== "function") {
      throw new SliceDefinitionError(`${where}: ${hook} must be a function`);
    }
  }
  checkHttp(where, spec.http, spec.methods);
  checkCalls(where, spec.calls);
  const permissions = spec.permissions ?? {};
  if (permissions === null || typeof permissions !== "object") {
    throw new SliceDefinitionError(`${where}: permissions must be an object`);
  }
  if (spec.config !== undefined && (spec.config === null || typeof spec.config !== "object")) {
    throw new SliceDefinitionError(`${where}: config must be an object of field schemas`);
  }
  return Object.freeze({
    kind: "aether.slice",
    format: 1,
    coordinates: spec.coordinates,
    methods: spec.methods,
    start: spec.start,
    stop: spec.stop,
    http: spec.http,
    calls: (spec.calls ?? {}) as C,
    requires: checkStringList(where, "requires", spec.requires),
    ...checkDeclarations(where, spec as { machines?: unknown; jobs?: unknown; methods: unknown }),
    ...checkSubscriptions(where, spec.subscriptions, spec.methods as object, spec.requires),
    secrets: checkStringList(where, "secrets", spec.secrets),
    outbound: checkStringList(where, "outbound", spec.outbound),
    redact: checkStringList(where, "redact", spec.redact),
    databases: checkDatabases(where, spec.databases),
    permissions: Object.freeze({
      net: checkStringList(where, "permissions.net", permissions.net),
      env: checkStringList(where, "permissions.env", permissions.env),
    }),
    config: (spec.config ?? {}) as S,
  });
}

/** `databases: { orders: { migrations: ["CREATE TABLE ..."] } }`: names as ctx.infra.db takes them. */
function checkDatabases(
  where: string,
  databases: unknown,
): Readonly<Record<string, { readonly migrations: readonly string[] }>> {
  if (databases === undefined) return {};
  if (databases === null || typeof databases !== "object" || Array.isArray(databases)) {
    throw new SliceDefinitionError(`${where}: databases must be an object of { migrations: [...] } by name`);
  }
  const out: Record<string, { migrations: readonly string[] }> = {};
  for (const [name, spec] of Object.entries(databases)) {
    if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(name)) {
      throw new SliceDefinitionError(
        `${where}: databases.${name}: a name is 1-64 letters, digits, '.', '_', '-'`,
      );
    }
    if (spec === null || typeof spec !== "object") {
      throw new SliceDefinitionError(
        `${where}: databases.${name} must be an object like { migrations: [...] }`,
      );
    }
    const migrations = checkStringList(
      where,
      `databases.${name}.migrations`,
      (spec as { migrations?: unknown }).migrations,
    );
    out[name] = Object.freeze({ migrations });
  }
  return Object.freeze(out);
}

/** `subscriptions` (slices/_subscriptions.ts): the first problem names its path. */
function checkSubscriptions(
  where: string,
  value: unknown,
  methods: object,
  requires: unknown,
): { subscriptions?: readonly SubscriptionDeclaration[] } {
  if (value === undefined) return {};
  const { problems, subscriptions } = subscriptionsProblems(
    value,
    "subscriptions",
    new Set(Object.keys(methods)),
    Array.isArray(requires) ? requires : [],
  );
  if (problems.length > 0) {
    throw new SliceDefinitionError(`${where}: ${problems[0].path} ${problems[0].message}`);
  }
  return { subscriptions: Object.freeze(subscriptions) };
}

/** `machines` and `jobs` (slices/_machines.ts): the first problem names its path. */
function checkDeclarations(
  where: string,
  spec: { machines?: unknown; jobs?: unknown; methods: unknown },
): { machines?: never; jobs?: never } {
  const methods = new Set(Object.keys(spec.methods as object));
  const out: Record<string, unknown> = {};
  for (const [field, check] of [["machines", machinesProblems], ["jobs", jobsProblems]] as const) {
    const value = spec[field];
    if (value === undefined) continue;
    const { problems } = check(value, field, methods);
    if (problems.length > 0) {
      throw new SliceDefinitionError(`${where}: ${problems[0].path} ${problems[0].message}`);
    }
    out[field] = value;
  }
  return out as { machines?: never; jobs?: never };
}

/** True for a value made by `defineSlice` (from any copy of the SDK). */
export function isSliceDefinition(value: unknown): value is SliceDefinition {
  return value !== null && typeof value === "object" && (value as { kind?: unknown }).kind === "aether.slice";
}
