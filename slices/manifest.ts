/**
 * The slice manifest: what a built slice declares about itself, stored next to its bundle in the artifact
 * repository and read by deployment (calls, requires), the HTTP router (routes, error mapping) and the sandbox
 * (permissions, configuration). `validateManifest` is what the repository runs on every upload: it reports
 * every problem with its path, e.g. `routes.entries[1].path: "/items/{id" has an unclosed "{"`.
 */

import { AetherError, parseArtifactBase, parseCoordinates, parseVersionRange } from "../runtime/core/mod.ts";
import { METHOD_NAME } from "./_define.ts";
import type { ConfigField, HttpMethod, JsonValue } from "./_types.ts";
import { defaultsOf, type Problem, schemaProblems } from "./config.ts";
import { type JobDeclaration, jobsProblems, machinesProblems, type ManifestMachine } from "./_machines.ts";
import { type SubscriptionDeclaration, subscriptionsProblems } from "./_subscriptions.ts";
import type { SliceDescription } from "./protocol.ts";

export type { Problem } from "./config.ts";

export const MANIFEST_FORMAT = 1;

export interface RouteEntry {
  /** The slice method serving the route. */
  method: string;
  httpMethod: HttpMethod;
  /** Relative to the prefix, as written: `/items/{id}`. */
  path: string;
  /** Prefix and path joined: `/api/v1/inventory/items/{id}`. */
  fullPath: string;
  pathParams: string[];
  /** Optional query parameters named in the route (`?q&limit`). */
  queryParams: string[];
}

export interface ErrorRule {
  status: number;
  /** Glob patterns over error names: `*` any run of characters, `?` one character. */
  patterns: string[];
}

export interface ManifestRoutes {
  /** Starts with `/`, no trailing `/` (except the root itself). */
  prefix: string;
  entries: RouteEntry[];
  /** Ordered by status; the first rule with a matching pattern gives the status. */
  errors: ErrorRule[];
}

export interface SliceManifest {
  format: 1;
  coordinates: string;
  methods: string[];
  routes: ManifestRoutes | null;
  calls: Record<string, { artifact: string; range: string }>;
  requires: string[];
  /** State machines the slice declares (absent: none); runtime/infra-host/statemachine.ts runs them. */
  machines?: Record<string, ManifestMachine>;
  /** Scheduled jobs the slice declares (absent: none), created when the slice is deployed. */
  jobs?: Record<string, JobDeclaration>;
  /** Pub/sub consumer groups delivering to the slice's methods (absent: none), created when deployed. */
  subscriptions?: SubscriptionDeclaration[];
  /** Secret names the slice may read (`ctx.secrets.get`); absent in manifests built before secrets. */
  secrets?: string[];
  /** Hosts `ctx.infra.http` may reach, `host` or `host:port` (absent: none). */
  outbound?: string[];
  /** Field names or dotted paths dynamic aspects redact when they log calls (absent: the defaults only). */
  redact?: string[];
  permissions: { net: string[]; env: string[] };
  config: { schema: Record<string, ConfigField>; defaults: Record<string, JsonValue> };
  /** Lower-case hex SHA-256 of the bundle. */
  sha256: string;
  sizeBytes: number;
  /** ISO 8601 time of the build. */
  builtAt: string;
}

const HTTP_METHODS: readonly HttpMethod[] = ["GET", "POST", "PUT", "PATCH", "DELETE"];
const IDENTIFIER = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const LITERAL_SEGMENT = /^[A-Za-z0-9._~!$&'()*+,;=:@-]+$/;
const PARAM_SEGMENT = /^\{([a-zA-Z_][a-zA-Z0-9_]*)\}$/;
const HOST_NAME =
  /^(?=.{1,253}$)[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SERVICE_NAME = /^[a-z][a-z0-9-]*$/;
const SECRET_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const ERROR_PATTERN = /^[A-Za-z0-9_$*?]+$/;
const TOP_LEVEL_KEYS = [
  "format",
  "coordinates",
  "methods",
  "routes",
  "calls",
  "requires",
  "secrets",
  "outbound",
  "redact",
  "permissions",
  "config",
  "sha256",
  "sizeBytes",
  "builtAt",
];
const MAX_LIST = 256;
/** Optional declarations (slices/_machines.ts): absent in most manifests. */
const DECLARATION_KEYS = ["machines", "jobs", "subscriptions"];
/** Fields manifests built before them lack: absent is valid. */
const OPTIONAL_KEYS = ["secrets", "outbound", "redact"];
const REDACT_PATH = /^[A-Za-z0-9_$-]{1,64}(?:\.[A-Za-z0-9_$-]{1,64}){0,7}$/;

// ---------------------------------------------------------------------------------------------------------
// Routes

export interface ParsedRoute {
  httpMethod: HttpMethod;
  path: string;
  pathParams: string[];
  queryParams: string[];
}

/** Parses `"GET /items/{id}?verbose"`; returns a problem message instead of throwing. */
export function parseRoute(spec: unknown): ParsedRoute | string {
  if (typeof spec !== "string") return `expected "METHOD /path", got ${JSON.stringify(spec)}`;
  const space = spec.indexOf(" ");
  const method = space < 0 ? spec : spec.slice(0, space);
  if (space < 0 || !HTTP_METHODS.includes(method as HttpMethod)) {
    return `"${spec}" must start with one of ${HTTP_METHODS.join(", ")} followed by one space`;
  }
  const rest = spec.slice(space + 1);
  const [path, query, extra] = rest.split("?");
  if (extra !== undefined) return `"${spec}" has more than one "?"`;
  const pathProblem = pathProblemOf(path, true);
  if (pathProblem) return `"${spec}": ${pathProblem}`;
  const pathParams = path.split("/").slice(1).flatMap((segment) => {
    const m = PARAM_SEGMENT.exec(segment);
    return m ? [m[1]] : [];
  });
  if (new Set(pathParams).size !== pathParams.length) return `"${spec}" names a path parameter twice`;
  const queryParams = query === undefined ? [] : query.split("&");
  for (const name of queryParams) {
    if (!IDENTIFIER.test(name)) return `"${spec}": query parameter "${name}" is not an identifier`;
    if (pathParams.includes(name)) return `"${spec}": "${name}" is both a path and a query parameter`;
  }
  if (new Set(queryParams).size !== queryParams.length) return `"${spec}" names a query parameter twice`;
  return { httpMethod: method as HttpMethod, path, pathParams, queryParams };
}

function pathProblemOf(path: string, allowParams: boolean): string | undefined {
  if (!path.startsWith("/")) return `path "${path}" must start with "/"`;
  if (path === "/") return undefined;
  if (path.endsWith("/")) return `path "${path}" must not end with "/"`;
  for (const segment of path.split("/").slice(1)) {
    if (segment === "") return `path "${path}" has an empty segment ("//")`;
    if (segment.includes("{") || segment.includes("}")) {
      if (!allowParams) return `path "${path}" must not contain parameters`;
      if (!PARAM_SEGMENT.test(segment)) {
        return `path "${path}": segment "${segment}" must be a whole parameter like {id} (letters, digits, _)`;
      }
    } else if (!LITERAL_SEGMENT.test(segment)) {
      return `path "${path}": segment "${segment}" has characters not allowed in a URL path`;
    }
  }
  return undefined;
}

/** `/api/v1/x/` → `/api/v1/x`; the root stays `/`. */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.length > 1 && prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
  return trimmed === "" ? "/" : trimmed;
}

function joinPath(prefix: string, path: string): string {
  if (prefix === "/") return path;
  return path === "/" ? prefix : prefix + path;
}

/** Does the glob `pattern` (`*` any run, `?` one character) match the whole error `name`? */
export function matchesErrorPattern(pattern: string, name: string): boolean {
  const source = pattern.split("").map((c) => c === "*" ? ".*" : c === "?" ? "." : c.replace(/[$]/g, "\\$"))
    .join("");
  return new RegExp(`^${source}$`).test(name);
}

/** The HTTP status for an error a slice threw: its own status, else the first matching rule, else 500. */
export function statusForError(
  routes: Pick<ManifestRoutes, "errors"> | null,
  error: { name: string; status?: number },
): number {
  if (error.status !== undefined) return error.status;
  for (const rule of routes?.errors ?? []) {
    if (rule.patterns.some((p) => matchesErrorPattern(p, error.name))) return rule.status;
  }
  return 500;
}

// ---------------------------------------------------------------------------------------------------------
// From a description (build)

function routesFromDescription(http: SliceDescription["http"], problems: Problem[]): ManifestRoutes | null {
  if (http === null) return null;
  const prefix = normalizePrefix(http.prefix);
  const entries: RouteEntry[] = [];
  for (const [method, spec] of Object.entries(http.routes)) {
    const parsed = parseRoute(spec);
    if (typeof parsed === "string") {
      problems.push({ path: `http.routes.${method}`, message: parsed });
      continue;
    }
    entries.push({ method, ...parsed, fullPath: joinPath(prefix, parsed.path) });
  }
  const errors = Object.entries(http.errors)
    .map(([status, patterns]) => ({ status: Number(status), patterns: [...patterns] }))
    .sort((a, b) => a.status - b.status);
  return { prefix, entries, errors };
}

/** Builds the manifest from what a loaded bundle says about itself, and validates it. */
export function manifestFromDescription(
  description: SliceDescription,
  artifact: { sha256: string; sizeBytes: number; builtAt: string; coordinates?: string },
): SliceManifest {
  const problems: Problem[] = [];
  const schema = description.config ?? {};
  const manifest: SliceManifest = {
    format: MANIFEST_FORMAT,
    coordinates: artifact.coordinates ?? description.coordinates,
    methods: [...description.methods],
    routes: routesFromDescription(description.http, problems),
    calls: description.calls,
    requires: description.requires,
    ...(description.machines
      ? { machines: machinesProblems(description.machines, "machines").machines }
      : {}),
    ...(description.jobs ? { jobs: jobsProblems(description.jobs, "jobs").jobs } : {}),
    ...(description.subscriptions?.length
      ? { subscriptions: subscriptionsProblems(description.subscriptions, "subscriptions").subscriptions }
      : {}),
    ...(description.secrets?.length ? { secrets: description.secrets } : {}),
    ...(description.outbound?.length ? { outbound: description.outbound } : {}),
    ...(description.redact?.length ? { redact: description.redact } : {}),
    permissions: description.permissions,
    config: { schema, defaults: schemaProblems(schema).length === 0 ? defaultsOf(schema) : {} },
    sha256: artifact.sha256,
    sizeBytes: artifact.sizeBytes,
    builtAt: artifact.builtAt,
  };
  problems.push(...manifestProblems(manifest));
  if (problems.length > 0) throw invalid(problems);
  return manifest;
}

// ---------------------------------------------------------------------------------------------------------
// Validation (upload)

function invalid(problems: Problem[]): AetherError {
  const shown = problems.slice(0, 5).map((p) => `${p.path}: ${p.message}`).join("; ");
  const more = problems.length > 5 ? ` (and ${problems.length - 5} more)` : "";
  return new AetherError("bad_request", `invalid slice manifest: ${shown}${more}`, {
    field: problems[0].path,
    problems,
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function stringList(
  value: unknown,
  path: string,
  problems: Problem[],
  check?: (s: string) => string | undefined,
) {
  if (!Array.isArray(value)) {
    problems.push({ path, message: "must be a list of strings" });
    return;
  }
  if (value.length > MAX_LIST) problems.push({ path, message: `has more than ${MAX_LIST} entries` });
  const seen = new Set<string>();
  value.forEach((item, i) => {
    if (typeof item !== "string") {
      return problems.push({ path: `${path}[${i}]`, message: "must be a string" });
    }
    if (seen.has(item)) problems.push({ path: `${path}[${i}]`, message: `"${item}" is listed twice` });
    seen.add(item);
    const problem = check?.(item);
    if (problem) problems.push({ path: `${path}[${i}]`, message: problem });
  });
}

function netEntryProblem(entry: string): string | undefined {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(entry);
  if (!m) return `"${entry}" is not host or host:port`;
  const [, host, port] = m;
  if (!HOST_NAME.test(host) && !IPV6.test(host)) return `"${host}" is not a host name or IP address`;
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return `port ${port} is out of range`;
  return undefined;
}

function errorOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

function checkRoutes(routes: unknown, methods: Set<string>, problems: Problem[]): void {
  if (routes === null) return;
  if (!isObject(routes)) return void problems.push({ path: "routes", message: "must be an object or null" });
  const { prefix, entries, errors } = routes;
  if (typeof prefix !== "string") problems.push({ path: "routes.prefix", message: "must be a string" });
  else {
    const problem = pathProblemOf(prefix, false);
    if (problem) problems.push({ path: "routes.prefix", message: problem });
  }
  const seenMethods = new Set<string>();
  const seenRoutes = new Map<string, number>();
  if (!Array.isArray(entries)) problems.push({ path: "routes.entries", message: "must be a list" });
  else {
    entries.forEach((entry, i) => {
      const at = `routes.entries[${i}]`;
      if (!isObject(entry)) return problems.push({ path: at, message: "must be an object" });
      if (typeof entry.method !== "string" || !methods.has(entry.method)) {
        problems.push({
          path: `${at}.method`,
          message: `${JSON.stringify(entry.method)} is not a method of the slice`,
        });
      } else if (seenMethods.has(entry.method)) {
        problems.push({ path: `${at}.method`, message: `method "${entry.method}" has two routes` });
      }
      seenMethods.add(String(entry.method));
      const parsed = parseRoute(`${entry.httpMethod} ${entry.path}`);
      if (typeof parsed === "string") return problems.push({ path: at, message: parsed });
      if (JSON.stringify(entry.pathParams) !== JSON.stringify(parsed.pathParams)) {
        problems.push({ path: `${at}.pathParams`, message: `must be ${JSON.stringify(parsed.pathParams)}` });
      }
      if (!Array.isArray(entry.queryParams) || entry.queryParams.some((q) => !IDENTIFIER.test(String(q)))) {
        problems.push({ path: `${at}.queryParams`, message: "must be a list of identifiers" });
      }
      if (typeof prefix === "string" && entry.fullPath !== joinPath(prefix, parsed.path)) {
        problems.push({ path: `${at}.fullPath`, message: `must be "${joinPath(prefix, parsed.path)}"` });
      }
      const shape = `${parsed.httpMethod} ${String(entry.fullPath).replace(/\{[^}]*\}/g, "{}")}`;
      const other = seenRoutes.get(shape);
      if (other !== undefined) {
        problems.push({ path: at, message: `${shape} is the same route as routes.entries[${other}]` });
      }
      seenRoutes.set(shape, i);
    });
  }
  if (!Array.isArray(errors)) problems.push({ path: "routes.errors", message: "must be a list" });
  else {
    errors.forEach((rule, i) => {
      const at = `routes.errors[${i}]`;
      if (!isObject(rule)) return problems.push({ path: at, message: "must be an object" });
      if (!Number.isInteger(rule.status) || (rule.status as number) < 400 || (rule.status as number) > 599) {
        problems.push({ path: `${at}.status`, message: "must be an HTTP error status (400-599)" });
      }
      stringList(
        rule.patterns,
        `${at}.patterns`,
        problems,
        (p) =>
          ERROR_PATTERN.test(p) ? undefined : `"${p}" is not a name pattern (letters, digits, _, * and ?)`,
      );
    });
  }
}

function checkCalls(calls: unknown, own: string | undefined, problems: Problem[]): void {
  if (!isObject(calls)) return void problems.push({ path: "calls", message: "must be an object" });
  for (const [name, ref] of Object.entries(calls)) {
    const at = `calls.${name}`;
    if (!IDENTIFIER.test(name)) problems.push({ path: at, message: "client names are identifiers" });
    if (!isObject(ref)) {
      problems.push({ path: at, message: 'must be { artifact: "group:artifact", range: "^1.0.0" }' });
      continue;
    }
    const artifactProblem = errorOf(() => parseArtifactBase(ref.artifact as string, `${at}.artifact`));
    if (artifactProblem) {
      problems.push({ path: `${at}.artifact`, message: artifactProblem.replace(/^[^:]*: /, "") });
    } else if (own !== undefined && ref.artifact === own) {
      problems.push({ path: `${at}.artifact`, message: `a slice cannot call itself (${own})` });
    }
    const rangeProblem = errorOf(() => parseVersionRange(ref.range as string, `${at}.range`));
    if (rangeProblem) problems.push({ path: `${at}.range`, message: rangeProblem.replace(/^[^:]*: /, "") });
  }
}

/** Every problem with a manifest, each with its path; empty when it is valid. */
export function manifestProblems(json: unknown): Problem[] {
  const problems: Problem[] = [];
  if (!isObject(json)) return [{ path: "(manifest)", message: "must be a JSON object" }];
  for (const key of Object.keys(json)) {
    if (!TOP_LEVEL_KEYS.includes(key) && !DECLARATION_KEYS.includes(key)) {
      problems.push({ path: key, message: "is not a manifest field" });
    }
  }
  for (const key of TOP_LEVEL_KEYS) {
    // `secrets` is optional: manifests built before it stay valid.
    if (!(key in json) && !OPTIONAL_KEYS.includes(key)) problems.push({ path: key, message: "is missing" });
  }
  if (json.format !== MANIFEST_FORMAT) {
    problems.push({
      path: "format",
      message: `must be ${MANIFEST_FORMAT} (got ${JSON.stringify(json.format)})`,
    });
  }
  let ownBase: string | undefined;
  const coordinatesProblem = errorOf(() => {
    const c = parseCoordinates(json.coordinates as string, "coordinates");
    ownBase = `${c.group}:${c.artifact}`;
  });
  if (coordinatesProblem) {
    problems.push({ path: "coordinates", message: coordinatesProblem.replace(/^[^:]*: /, "") });
  }

  const methods = new Set<string>();
  if (!Array.isArray(json.methods) || json.methods.length === 0) {
    problems.push({ path: "methods", message: "must be a non-empty list of method names" });
  } else {
    stringList(json.methods, "methods", problems, (m) => {
      methods.add(m);
      return METHOD_NAME.test(m) ? undefined : `"${m}" must match ${METHOD_NAME.source}`;
    });
  }
  if ("routes" in json) checkRoutes(json.routes, methods, problems);
  if ("calls" in json) checkCalls(json.calls, ownBase, problems);
  stringList(
    json.requires,
    "requires",
    problems,
    (s) => SERVICE_NAME.test(s) ? undefined : `"${s}" is not a service name (lower-case letters, digits, -)`,
  );
  if (json.secrets !== undefined) {
    stringList(
      json.secrets,
      "secrets",
      problems,
      (s) =>
        SECRET_NAME.test(s) ? undefined : `"${s}" is not a secret name (1-64 of a-z, 0-9, ".", "_", "-")`,
    );
  }
  if (json.outbound !== undefined) stringList(json.outbound, "outbound", problems, netEntryProblem);
  if (json.redact !== undefined) {
    stringList(
      json.redact,
      "redact",
      problems,
      (s) => REDACT_PATH.test(s) ? undefined : `"${s}" is not a field name or dotted path (card.number)`,
    );
  }
  if (json.machines !== undefined) {
    problems.push(...machinesProblems(json.machines, "machines", methods).problems);
  }
  if (json.jobs !== undefined) problems.push(...jobsProblems(json.jobs, "jobs", methods).problems);
  if (json.subscriptions !== undefined) {
    const requires = Array.isArray(json.requires) ? json.requires as string[] : [];
    problems.push(...subscriptionsProblems(json.subscriptions, "subscriptions", methods, requires).problems);
  }
  if (!isObject(json.permissions)) {
    problems.push({ path: "permissions", message: "must be { net: [...], env: [...] }" });
  } else {
    for (const key of Object.keys(json.permissions)) {
      if (key !== "net" && key !== "env") {
        problems.push({
          path: `permissions.${key}`,
          message: "is not a permission slices can ask for (net, env)",
        });
      }
    }
    stringList(json.permissions.net, "permissions.net", problems, netEntryProblem);
    stringList(
      json.permissions.env,
      "permissions.env",
      problems,
      (s) => ENV_NAME.test(s) ? undefined : `"${s}" is not an environment variable name`,
    );
  }
  if (!isObject(json.config)) {
    problems.push({ path: "config", message: "must be { schema: {...}, defaults: {...} }" });
  } else {
    const schemaIssues = schemaProblems(json.config.schema, "config.schema");
    problems.push(...schemaIssues);
    if (schemaIssues.length === 0) {
      const expected = defaultsOf(json.config.schema as Record<string, ConfigField>);
      if (JSON.stringify(json.config.defaults) !== JSON.stringify(expected)) {
        problems.push({
          path: "config.defaults",
          message: `must equal the schema's defaults ${JSON.stringify(expected)}`,
        });
      }
    }
  }
  if (typeof json.sha256 !== "string" || !SHA256.test(json.sha256)) {
    problems.push({ path: "sha256", message: "must be 64 lower-case hex digits" });
  }
  if (!Number.isSafeInteger(json.sizeBytes) || (json.sizeBytes as number) <= 0) {
    problems.push({ path: "sizeBytes", message: "must be a positive integer" });
  }
  if (
    typeof json.builtAt !== "string" || Number.isNaN(Date.parse(json.builtAt)) || !json.builtAt.includes("T")
  ) {
    problems.push({ path: "builtAt", message: "must be an ISO 8601 date-time" });
  }
  return problems;
}

/** Validates parsed JSON as a manifest; throws a 400 AetherError listing every problem with its path. */
export function validateManifest(json: unknown): SliceManifest {
  const problems = manifestProblems(json);
  if (problems.length > 0) throw invalid(problems);
  return json as SliceManifest;
}

/** Lower-case hex SHA-256 of bytes. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  let out = "";
  for (const b of digest) out += b.toString(16).padStart(2, "0");
  return out;
}
