/**
 * Who may call the management API. Tokens (`aether_{id}_{secret}`, sent as `Authorization: Bearer ...`) are
 * kept in KV as records holding only the sha-256 of the secret; every node keeps an index of them in memory,
 * fed by a KV watch, so checking a request reads no KV. The secret's hash is compared in constant time.
 *
 * Every request is matched against the one role table (roles.ts); a missing or unknown token is a 401 and too
 * small a role a 403, both problem documents naming the role needed. Requiring the header on every mutating
 * call is also what keeps web pages out: a cross-site form or `fetch` without CORS cannot set it.
 */

import { hash } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import { AetherError, type Logger, randomHex, REQUEST_ID_HEADER } from "../core/mod.ts";
import type { KvAccess, WatchStream } from "../cluster/mod.ts";
import {
  type AuditRecord,
  AUTH_PREFIXES,
  BOOTSTRAP_KEY,
  decodeTokenRecord,
  encodeJson,
  parseToken,
  type Role,
  roleAllows,
  tokenKey,
  type TokenRecord,
} from "../model/mod.ts";
import { problemResponse } from "./_problem.ts";
import { type EndpointRole, RoleTable } from "./roles.ts";

/** Tokens one cluster may hold (records, revoked ones included): the index and `token list` stay bounded. */
export const MAX_TOKENS = 1_000;
/** How long a node waits before it retries creating the bootstrap token (no quorum yet, a timeout). */
const BOOTSTRAP_RETRY_MS = 500;
/** Verified whole tokens a node remembers (see TokenIndex.#verified); at most one live entry per record. */
export const MAX_VERIFIED_TOKENS = 2 * MAX_TOKENS;
/** How long a broken token watch waits before it reads the tokens again. */
const RESYNC_DELAY_MS = 200;

export interface Caller {
  tokenId: string;
  tokenName: string;
  role: Role;
}

export function sha256Hex(text: string): string {
  return hash("sha256", text, "hex");
}

/** Equal-length strings compared without an early exit (no timing hint of how much of a hash matched). */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** A new token's secret part: 32 random bytes, base64url. */
export function newTokenSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function newTokenId(): string {
  return randomHex(6);
}

/** The in-memory copy of `auth/tokens/` (and whether `auth/bootstrap` exists), kept current by a watch. */
export class TokenIndex {
  readonly #tokens = new Map<string, TokenRecord>();
  /**
   * Whole tokens already verified against their record's hash, with the caller they name: a request carrying
   * one again costs a map lookup instead of a parse, a hash and a new Caller. An entry holds the very record
   * object it was verified against; any change to the record (revoked, deleted, a new secret) replaces that
   * object in #tokens, so the entry no longer matches and the next request is checked in full at once. Only
   * tokens whose secret matched get an entry, and the map is cleared when it reaches MAX_VERIFIED_TOKENS.
   */
  readonly #verified = new Map<string, { record: TokenRecord; caller: Caller }>();
  #bootstrapped = false;
  readonly #pending: { id: string; secretSha256: string } | null;
  #watch: WatchStream | null = null;
  #stopped = false;
  #synced: Promise<void>;

  /**
   * `bootstrapToken` (from --bootstrap-token-file) is accepted as admin until the cluster records its first
   * token, so a client holding it can call a node that has not yet seen that record committed.
   */
  constructor(
    readonly kv: KvAccess,
    readonly log: Logger,
    options: { now?: () => number; bootstrapToken?: string } = {},
  ) {
    this.now = options.now ?? Date.now;
    const parsed = options.bootstrapToken ? parseToken(options.bootstrapToken) : null;
    this.#pending = parsed ? { id: parsed.id, secretSha256: sha256Hex(parsed.secret) } : null;
    this.#synced = this.#follow();
  }

  readonly now: () => number;

  /** Resolves once the index holds what this node's KV held when it started. */
  get synced(): Promise<void> {
    return this.#synced;
  }

  get size(): number {
    return this.#tokens.size;
  }

  records(): TokenRecord[] {
    return [...this.#tokens.values()];
  }

  get(id: string): TokenRecord | undefined {
    return this.#tokens.get(id);
  }

  /** The caller a bearer token names, or the 401 saying why it is refused. */
  verify(token: string): Caller | AetherError {
    const known = this.#verified.get(token);
    if (known !== undefined && this.#tokens.get(known.record.id) === known.record) {
      const expiresAt = known.record.expiresAt;
      if (expiresAt === undefined || this.now() < expiresAt) return known.caller;
    }
    return this.#verifyInFull(token);
  }

  /** Parses the token, hashes its secret and checks the record; a token that passes is remembered. */
  #verifyInFull(token: string): Caller | AetherError {
    const parsed = parseToken(token);
    if (!parsed) return unauthorized("the bearer token is not an Aether token (aether_<id>_<secret>)");
    const record = this.#tokens.get(parsed.id);
    if (!record) return this.#verifyPending(parsed.id, parsed.secret);
    if (!constantTimeEqual(sha256Hex(parsed.secret), record.secretSha256)) {
      return unauthorized("the token is not known to this cluster");
    }
    if (record.revokedAt !== undefined) return unauthorized(`token ${record.id} was revoked`);
    if (record.expiresAt !== undefined && this.now() >= record.expiresAt) {
      return unauthorized(`token ${record.id} expired at ${new Date(record.expiresAt).toISOString()}`);
    }
    const caller: Caller = Object.freeze({ tokenId: record.id, tokenName: record.name, role: record.role });
    if (this.#verified.size >= MAX_VERIFIED_TOKENS) this.#verified.clear();
    this.#verified.set(token, { record, caller });
    return caller;
  }

  #verifyPending(id: string, secret: string): Caller | AetherError {
    const pending = this.#pending;
    if (
      pending && !this.#bootstrapped && pending.id === id &&
      constantTimeEqual(sha256Hex(secret), pending.secretSha256)
    ) {
      return { tokenId: id, tokenName: "bootstrap admin", role: "admin" };
    }
    return unauthorized("the token is not known to this cluster");
  }

  stop(): void {
    this.#stopped = true;
    this.#watch?.cancel();
  }

  /** Reads every token, then applies changes from the next revision on; starts over if the watch breaks. */
  #follow(): Promise<void> {
    let markSynced!: () => void;
    const synced = new Promise<void>((resolve) => (markSynced = resolve));
    (async () => {
      while (!this.#stopped) {
        try {
          const { revision, items } = this.kv.range(AUTH_PREFIXES.tokens, { limit: MAX_TOKENS });
          this.#tokens.clear();
          this.#verified.clear();
          for (const item of items) this.#apply(item.key, item.value);
          this.#bootstrapped = (await this.kv.get(BOOTSTRAP_KEY)) !== undefined;
          markSynced();
          this.#watch = this.kv.watch(AUTH_ROOT, revision + 1);
          if (this.#stopped) this.#watch.cancel(); // stop() ran while this was reading
          for await (const event of this.#watch) this.#event(event.type, event.key, event.value);
        } catch (e) {
          if (!this.#stopped) this.log.warn("token watch broke; reading the tokens again", { error: e });
        }
        if (!this.#stopped) await new Promise((r) => setTimeout(r, RESYNC_DELAY_MS));
      }
    })();
    return synced;
  }

  #event(type: string, key: string, value: Uint8Array | undefined): void {
    if (key === BOOTSTRAP_KEY) this.#bootstrapped = type !== "delete";
    else if (!key.startsWith(AUTH_PREFIXES.tokens)) return;
    else if (type === "delete") this.#tokens.delete(key.slice(AUTH_PREFIXES.tokens.length));
    else if (value) this.#apply(key, value);
  }

  #apply(key: string, value: Uint8Array): void {
    try {
      const record = decodeTokenRecord(value, key);
      // A new record object: verified tokens naming the old one no longer match it (see #verified).
      this.#tokens.set(record.id, record);
    } catch (e) {
      this.log.error("ignoring a malformed token record", { key, error: e });
    }
  }
}

/** The watch covers the tokens and the bootstrap marker. */
const AUTH_ROOT = "auth/";

/**
 * Runtime KV families whose raw reads (GET /kv, /kv/{key}, /kv-watch) need more than a viewer: token records
 * (admin, like GET /tokens) and the audit log (operator, like GET /audit).
 */
export const PROTECTED_KV_PREFIXES: readonly { prefix: string; role: Role }[] = [
  { prefix: AUTH_ROOT, role: "admin" },
  { prefix: AUTH_PREFIXES.audit, role: "operator" },
];

/** The role a raw KV read of `key` needs beyond viewer, or undefined when a viewer may read it. */
export function kvReadRole(key: string): Role | undefined {
  return PROTECTED_KV_PREFIXES.find((p) => key.startsWith(p.prefix))?.role;
}

/** Whether this request's caller may read `key` through the KV API. */
export function kvReadable(c: Context, key: string): boolean {
  const needed = kvReadRole(key);
  if (needed === undefined) return true;
  const caller = callerOf(c);
  return caller !== undefined && roleAllows(caller.role, needed);
}

function unauthorized(why: string, needed?: EndpointRole): AetherError {
  return new AetherError(
    "unauthorized",
    `${why}; send "Authorization: Bearer <token>"${
      needed ? ` of a token with role ${needed} or above` : ""
    } ` +
      `(the CLI: --token, AETHER_TOKEN or "aether login")`,
    needed ? { roleNeeded: needed } : {},
  );
}

export interface AuthOptions {
  /** Health and readiness probes need a viewer token too. */
  closedProbes?: boolean;
  /**
   * Host names this API answers to besides localhost and IP literals (a DNS-rebinding page reaches the API
   * under its own domain name, never an IP literal). Absent: the Host header is not checked.
   */
  hostNames?: readonly string[];
  /** Origins whose pages may call the API (CORS preflights answered for them; others refused). */
  corsOrigins?: readonly string[];
  /** Where authenticated mutating calls are recorded. */
  audit?: { record(entry: Omit<AuditRecord, "node">): void };
}

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Methods and headers a CORS preflight from an allowed origin is told it may use. */
const CORS_ALLOW_METHODS = "GET, POST, PUT, DELETE";
const CORS_ALLOW_HEADERS = "authorization, content-type, x-request-id, x-aether-timeout-ms, last-event-id";
const CORS_MAX_AGE_S = "600";

/** `host[:port]` without the port; brackets kept off IPv6. */
function hostName(hostHeader: string): string {
  const bracketed = /^\[([^\]]+)\](:\d+)?$/.exec(hostHeader);
  if (bracketed) return bracketed[1].toLowerCase();
  return hostHeader.replace(/:\d+$/, "").toLowerCase();
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

/** The problem for a Host the API does not answer to, or undefined when it is one of its names. */
function hostProblem(header: string, names: ReadonlySet<string>): AetherError | undefined {
  const host = hostName(header);
  if (isIpLiteral(host) || names.has(host)) return undefined;
  return new AetherError(
    "forbidden",
    `Host "${header}" is not a name of this API (DNS rebinding is refused); its names: ` +
      `${[...names].join(", ")} and IP addresses; add one with --api-names`,
    { host: header },
  );
}

/** Distinct Host headers whose verdict a middleware remembers (cleared when full: a client may send any). */
const MAX_REMEMBERED_HOSTS = 64;

/**
 * hostProblem, remembered per exact header: nearly every request names one of a few hosts, and the verdict
 * depends on nothing else (the names are fixed when the middleware is made).
 */
function hostChecker(names: ReadonlySet<string>): (header: string) => AetherError | undefined {
  const verdicts = new Map<string, AetherError | null>();
  return (header) => {
    let verdict = verdicts.get(header);
    if (verdict === undefined) {
      verdict = hostProblem(header, names) ?? null;
      if (verdicts.size >= MAX_REMEMBERED_HOSTS) verdicts.clear();
      verdicts.set(header, verdict);
    }
    return verdict ?? undefined;
  };
}

/** An Origin the API accepts: a configured one, or the API's own (a page it serves). */
function originAllowed(host: string | null, origin: string, origins: ReadonlySet<string>): boolean {
  if (origins.has(origin)) return true;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

function corsPreflight(origin: string): Response {
  return new Response(null, {
    status: 204,
    headers: {
      "access-control-allow-origin": origin,
      "access-control-allow-methods": CORS_ALLOW_METHODS,
      "access-control-allow-headers": CORS_ALLOW_HEADERS,
      "access-control-max-age": CORS_MAX_AGE_S,
      vary: "Origin",
    },
  });
}

/**
 * Where the middleware leaves the caller: a variable of the request's Hono context (mounted sub-apps share
 * it). Not a WeakMap keyed by the request: an entry per request there cost 0.2-0.7 µs (its garbage
 * collection), a context variable 0.04 µs (/tmp/notes/auth-perf.md).
 */
const CALLER_VARIABLE = "aether.caller";

/**
 * A browser cannot put an Authorization header on a WebSocket: it offers the token as the subprotocol
 * `bearer.<token>` next to WEBSOCKET_PROTOCOL, which the server picks (the token never goes into a URL).
 */
export const WEBSOCKET_PROTOCOL = "aether.v1";
const BEARER_PROTOCOL_PREFIX = "bearer.";

/** The token a WebSocket upgrade offers as a subprotocol, if any. */
export function webSocketToken(request: Request): string | undefined {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return undefined;
  const offered = request.headers.get("sec-websocket-protocol")?.split(",").map((p) => p.trim()) ?? [];
  return offered.find((p) => p.startsWith(BEARER_PROTOCOL_PREFIX))?.slice(BEARER_PROTOCOL_PREFIX.length);
}

/** Whether a WebSocket upgrade offers WEBSOCKET_PROTOCOL (then the answer must pick it). */
export function offersWebSocketProtocol(request: Request): boolean {
  return request.headers.get("sec-websocket-protocol")?.split(",").some((p) =>
    p.trim() === WEBSOCKET_PROTOCOL
  ) ??
    false;
}

/** The caller of an authenticated request (set by the middleware). */
export function callerOf(c: Context): Caller | undefined {
  return c.get(CALLER_VARIABLE) as Caller | undefined;
}

/**
 * Checks every request against the role table. The problem documents name the role needed (`roleNeeded`) and,
 * for a 403, the role held.
 */
export function authMiddleware(
  index: TokenIndex,
  options: AuthOptions = {},
  table = new RoleTable(),
): MiddlewareHandler {
  const names = new Set(["localhost", ...(options.hostNames ?? []).map((n) => n.toLowerCase())]);
  const origins = new Set(options.corsOrigins ?? []);
  const checkHost = options.hostNames ? hostChecker(names) : undefined;
  // Each header is read once, straight from the request (a served request's headers are materialised lazily).
  return async (c, next) => {
    const raw = c.req.raw;
    const headers = raw.headers;
    const method = raw.method;
    const host = headers.get("host");
    if (checkHost !== undefined && host !== null) {
      const problem = checkHost(host);
      if (problem) return problemResponse(c, problem);
    }
    const origin = headers.get("origin");
    if (origin !== null) {
      if (!originAllowed(host, origin, origins)) {
        return problemResponse(
          c,
          new AetherError(
            "forbidden",
            `Origin "${origin}" may not call this API (cross-site requests are refused); allow it with ` +
              "--cors-origins",
            { origin },
          ),
        );
      }
      if (method === "OPTIONS") return corsPreflight(origin);
      c.header("access-control-allow-origin", origin);
      c.header("vary", "Origin");
    }
    const found = table.find(method, c.req.path);
    let needed: EndpointRole = found?.entry.role ?? "viewer";
    if (needed === "open") {
      if (!options.closedProbes) return await next();
      needed = "viewer";
    }
    const header = headers.get("authorization") ?? webSocketAuthorization(raw);
    if (header === undefined) {
      return problemResponse(c, unauthorized(`${method} ${c.req.path} needs a token`, needed));
    }
    if (!header.startsWith("Bearer ")) {
      return problemResponse(c, unauthorized('the Authorization header is not "Bearer <token>"', needed));
    }
    const caller = index.verify(bearerToken(header));
    if (caller instanceof AetherError) {
      return problemResponse(c, new AetherError(caller.code, caller.message, { roleNeeded: needed }));
    }
    if (!roleAllows(caller.role, needed)) {
      if (options.audit && !READ_METHODS.has(method)) {
        options.audit.record(auditEntry(c, caller, found?.target, 403));
      }
      return problemResponse(
        c,
        new AetherError(
          "forbidden",
          `${method} ${c.req.path} needs role ${needed} or above; token ${caller.tokenId} ` +
            `("${caller.tokenName}") has role ${caller.role}`,
          { roleNeeded: needed, role: caller.role },
        ),
      );
    }
    c.set(CALLER_VARIABLE, caller);
    await next();
    if (options.audit && !READ_METHODS.has(method)) {
      options.audit.record(auditEntry(c, caller, found?.target, c.res.status));
    }
  };
}

/** The Authorization a WebSocket upgrade carries as its `bearer.` subprotocol, if it offers one. */
function webSocketAuthorization(request: Request): string | undefined {
  const token = webSocketToken(request);
  return token === undefined ? undefined : `Bearer ${token}`;
}

/** The token after "Bearer ": trimmed only when it has surrounding blanks (the usual header has none). */
function bearerToken(header: string): string {
  const token = header.slice(7);
  const last = token.charCodeAt(token.length - 1);
  return token.charCodeAt(0) <= 32 || last <= 32 ? token.trim() : token;
}

function auditEntry(
  c: Context,
  caller: Caller,
  target: string | undefined,
  status: number,
): Omit<AuditRecord, "node"> {
  return {
    time: Date.now(),
    tokenId: caller.tokenId,
    tokenName: caller.tokenName,
    role: caller.role,
    method: c.req.method,
    path: c.req.path,
    ...(target === undefined ? {} : { target }),
    status,
    requestId: requestIdOf(c),
  };
}

/** The call's request id: the one the client or handler set, else a new one sent back to the client. */
function requestIdOf(c: Context): string {
  const given = c.res.headers.get(REQUEST_ID_HEADER) ?? c.req.header(REQUEST_ID_HEADER);
  if (given !== undefined && given !== null && /^[A-Za-z0-9._:-]{1,128}$/.test(given)) return given;
  const id = randomHex(8);
  try {
    c.res.headers.set(REQUEST_ID_HEADER, id);
  } catch {
    // An immutable response (a stream already sent): the id stays in the audit record only.
  }
  return id;
}

/** Reads and checks --bootstrap-token-file before the node starts anything; the problem names the flag. */
export async function readBootstrapTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    text = (await Deno.readTextFile(path)).trim();
  } catch (e) {
    throw new AetherError(
      "invalid_flag",
      `--bootstrap-token-file: cannot read "${path}": ${(e as Error).message}`,
      {
        flag: "bootstrap-token-file",
      },
    );
  }
  if (!parseToken(text)) throw badTokenFile();
  return text;
}

function badTokenFile(): AetherError {
  return new AetherError(
    "invalid_flag",
    "--bootstrap-token-file: the file does not hold a token of the form aether_<id>_<secret> " +
      "(id: 4-32 lower-case letters or digits; secret: 16-128 base64url characters)",
    { flag: "bootstrap-token-file" },
  );
}

export interface BootstrapOptions {
  kv: KvAccess;
  log: Logger;
  /** The whole first admin token (`aether_{id}_{secret}`), read from --bootstrap-token-file; else random. */
  token?: string;
  /** Shows a generated token to the person who started the node, once (standard error, never the log ring). */
  announce(text: string): void;
  now?: () => number;
}

/** A running bootstrap: `done` resolves when the cluster has its first token (by this node or another). */
export interface Bootstrap {
  done: Promise<"created" | "exists" | "stopped">;
  stop(): void;
}

/**
 * Creates the cluster's first admin token unless it has one: a transaction that writes the token record and
 * `auth/bootstrap` only if `auth/bootstrap` does not exist, so among nodes starting together exactly one
 * succeeds, and a restarted cluster never makes another. Retried until the cluster can write.
 */
export function bootstrapAdminToken(options: BootstrapOptions): Bootstrap {
  const { kv, log } = options;
  let stopped = false;
  const parsed = options.token === undefined ? null : parseToken(options.token);
  if (options.token !== undefined && !parsed) throw badTokenFile();
  const id = parsed?.id ?? newTokenId();
  const secret = parsed?.secret ?? newTokenSecret();
  const record: TokenRecord = {
    id,
    name: "bootstrap admin",
    role: "admin",
    secretSha256: sha256Hex(secret),
    createdAt: (options.now ?? Date.now)(),
  };
  // After an ambiguous write (a timeout that still committed), the marker names this node's token: created.
  const existing = (): "created" | "exists" | null => {
    const marker = kv.range(BOOTSTRAP_KEY, { limit: 1 }).items.find((e) => e.key === BOOTSTRAP_KEY);
    if (!marker) return null;
    try {
      return JSON.parse(new TextDecoder().decode(marker.value)).tokenId === id ? "created" : "exists";
    } catch {
      return "exists";
    }
  };
  const attempt = async (): Promise<"created" | "exists" | null> => {
    const found = existing();
    if (found) return found;
    try {
      const outcome = await kv.write({
        type: "txn",
        compare: [{ key: BOOTSTRAP_KEY, modRevision: 0 }],
        success: [
          { op: "put", key: BOOTSTRAP_KEY, value: encodeJson({ tokenId: id }) },
          { op: "put", key: tokenKey(id), value: encodeJson(record) },
        ],
        failure: [],
      });
      return outcome.succeeded ? "created" : existing() ?? "exists";
    } catch (e) {
      log.debug("bootstrap token not written yet; retrying", { error: e });
      return null;
    }
  };
  const done = (async () => {
    while (!stopped) {
      const result = await attempt();
      if (result === "created") {
        log.info("bootstrap admin token created", { tokenId: id, fromFile: parsed !== null });
        if (!parsed) options.announce(announcement(`aether_${id}_${secret}`));
        return result;
      }
      if (result === "exists") return result;
      await new Promise((r) => setTimeout(r, BOOTSTRAP_RETRY_MS));
    }
    return "stopped" as const;
  })();
  return { done, stop: () => (stopped = true) };
}

function announcement(token: string): string {
  const rule = "=".repeat(78);
  return [
    rule,
    "AETHER ADMIN TOKEN: created for this new cluster and shown only this once (only its hash is stored).",
    "",
    `  ${token}`,
    "",
    `Use it: aether login --token ${token}`,
    "    or: export AETHER_TOKEN=<token>   (then create narrower ones: aether token create --role operator)",
    rule,
    "",
  ].join("\n");
}
