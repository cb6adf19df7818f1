/**
 * Command-line flags of `aether node`. Every problem names the flag; the caller exits with code 2.
 */

import { parseArgs } from "node:util";
import { createPrivateKey, X509Certificate } from "node:crypto";
import { AetherError, isNodeId, LOG_FORMATS, type LogFormat, type NodeId } from "../core/mod.ts";
import { DEFAULT_SERVER_LIMITS, type ServerLimits } from "./server_guard.ts";
import { parseNodeLabels } from "../model/mod.ts";
import { parseAllowList } from "../infra-host/mod.ts";
import {
  parseSandboxFlags,
  SANDBOX_FLAG_OPTIONS,
  SANDBOX_USAGE,
  SANDBOX_USAGE_SYNOPSIS,
  type SandboxFlags,
} from "./sandbox_flags.ts";
import { DEFAULT_SPAN_RING_CAPACITY, MAX_SPAN_RING_CAPACITY, otlpTracesUrl } from "../metrics/mod.ts";

export interface PeerAddress {
  id: NodeId;
  host: string;
  port: number;
}

export type FsyncPolicy = "always" | "never";

export interface NodeFlags extends SandboxFlags {
  id: NodeId;
  peers: PeerAddress[];
  apiPort: number;
  httpPort: number;
  dataDir: string;
  secretFile: string;
  /** Default bind address of the API and application HTTP servers (each has its own flag too). */
  host: string;
  /** Address the management API binds to (--api-host, default --host). */
  apiHost: string;
  /** Address the application HTTP port binds to (--app-host, default --host). */
  appHost: string;
  /** Header, body and idle timeouts and the connection limit of each HTTP listener (API and app port). */
  serverLimits: ServerLimits;
  /** off: the app port is plain Deno.serve without serverLimits (behind a proxy that enforces its own). */
  appGuard: boolean;
  /** File holding the first admin token (`aether_{id}_{secret}`) a new cluster creates; else a random one. */
  bootstrapTokenFile?: string;
  /** The cluster master key of the secrets (32 bytes, base64); without it secrets answer 503. */
  secretsKeyFile?: string;
  /** Hosts slices may reach through ctx.infra.http (`--outbound-allow`), canonical; absent or empty: none. */
  outboundAllow?: string[];
  /** Host names the management API answers to besides its bind host, 127.0.0.1, localhost and [::1]. */
  apiNames: string[];
  /** Origins whose browser pages may call the API (CORS); none by default. */
  corsOrigins: string[];
  /** `--labels zone=a,disk=ssd`: published as `nodes/{id}/labels` for placement rules. */
  labels: Record<string, string>;
  /** Health and readiness probes need a viewer token too. */
  closedProbes: boolean;
  fsync: FsyncPolicy;
  logLevel: "debug" | "info" | "warn" | "error";
  /** text: one readable line per record; json: one JSON object per line (time, level, node, msg, fields). */
  logFormat: LogFormat;
  /** Nodes that must store a pushed artifact before the push is acknowledged; default min(3, members). */
  artifactReplicas?: number;
  /** Largest artifact bundle the repository accepts. */
  artifactMaxBytes: number;
  /** How slice instances are isolated: a child process each (memory bounded) or a Worker each (faster start). */
  sandbox: "process" | "worker";
  /** Largest request body the application HTTP port accepts (413 beyond). */
  httpMaxBodyBytes: number;
  /** The app port's blue-green preview secret (`--preview-secret-file`); none: x-aether-version ignored there. */
  previewSecret?: string;
  /** A snapshot of the state is taken after this many decided phases. */
  snapshotEveryPhases: number;
  /** Decided phases kept in the log besides those after the snapshot: a member behind by more catches up by
   * snapshot. */
  retainedLogPhases: number;
  /** --tls-cert/--tls-key (both or neither), and --tls-ca for the mesh; absent: plain HTTP and ws. */
  tls?: TlsFiles;
  /** Record request spans (--traces on, the default): GET /api/v1/traces, `aether trace`. */
  traces: boolean;
  /** Where spans are also exported as OTLP/HTTP JSON (the full URL, /v1/traces added to a bare base). */
  otlpEndpoint?: string;
  /** Spans this node keeps for GET /api/v1/traces (the newest; about 0.6 KiB each). */
  traceRingSpans: number;
  /** Alertmanager base URLs the leader sends alerts to (v2 API), from --alertmanager (repeatable). */
  alertmanagers: string[];
  /** Webhook URLs the leader POSTs every alert transition to, from --alert-webhook (repeatable). */
  alertWebhooks: string[];
  /** Record slice calls and HTTP requests into the metrics (--metrics on, the default). */
  metrics: boolean;
}

/** The TLS files a node was given (paths; readTls reads and checks them). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** The cluster CA: with it the mesh runs over wss:// and accepts only peers with certificates it signed. */
  caFile?: string;
}

/** The TLS files' contents (PEM), checked: the key matches the certificate, which the CA (if any) signed. */
export interface TlsMaterial {
  cert: string;
  key: string;
  ca?: string;
}

export const DEFAULT_ARTIFACT_MAX_BYTES = 16 * 1024 * 1024;
export const DEFAULT_HTTP_MAX_BODY_BYTES = 1024 * 1024;
export const DEFAULT_SNAPSHOT_EVERY_PHASES = 10_000;
export const DEFAULT_RETAINED_LOG_PHASES = 10_000;

export const NODE_USAGE =
  `usage: aether node --id ID --peers ID@HOST:PORT,... --data-dir DIR --secret-file FILE
                   [--api-port 8080] [--http-port 8070] [--host 127.0.0.1]
                   [--api-host ADDRESS] [--app-host ADDRESS]
                   [--header-timeout-ms 10000] [--body-timeout-ms 10000] [--idle-timeout-ms 60000]
                   [--max-connections 4096] [--app-guard on|off]
                   [--bootstrap-token-file FILE] [--api-names NAME,...] [--cors-origins ORIGIN,...]
                   [--closed-probes] [--secrets-key-file FILE] [--labels NAME=VALUE,...]
                   [--outbound-allow HOST[:PORT],...]
                   [--fsync always|never] [--log-level info] [--log-format text|json]
                   [--artifact-replicas N] [--artifact-max-bytes 16777216]
                   [--sandbox process|worker]
${SANDBOX_USAGE_SYNOPSIS}
                   [--http-max-body-bytes 1048576] [--preview-secret-file FILE]
                   [--snapshot-every-phases 10000] [--retained-log-phases 10000]
                   [--tls-cert FILE --tls-key FILE [--tls-ca FILE]]
                   [--alertmanager URL]... [--alert-webhook URL]...
                   [--traces on|off] [--otlp-endpoint URL] [--trace-ring-spans 16384] [--metrics on|off]

  --id           this member's id (lower-case letters, digits, '-')
  --peers        every core member, this one included: n1@127.0.0.1:7101,n2@127.0.0.1:7102,...
                 1, 3 or 5 members; this node binds its own entry's port (0 = any free port)
  --api-port     management API port (0 = any free port)
  --http-port    application HTTP port (0 = any free port)
  --data-dir     where this member keeps its durable state
  --secret-file  file holding the cluster secret (at least 16 bytes); every member needs the same one
  --host         default address for the API and application HTTP servers (default 127.0.0.1)
  --api-host     address the management API binds to (default: --host)
  --app-host     address the application HTTP port binds to (default: --host); the mesh binds the
                 host of this node's own --peers entry
  --header-timeout-ms  HTTP (API and app port): from a request's first byte to complete headers (default
                 10000); slower clients are disconnected
  --body-timeout-ms    HTTP: the longest a request body may send nothing (default 10000)
  --idle-timeout-ms    HTTP: a connection with no request in flight is closed after this long (default 60000)
  --max-connections    HTTP: open connections per listener; beyond it new ones are closed (default 4096)
  --app-guard    on: the app port enforces the four limits above (default); off: plain Deno.serve, about
                 twice the throughput on a trivial route, for a port behind a proxy that enforces its own
  --bootstrap-token-file  a new cluster's first admin token (aether_<id>_<secret>) is read from this file;
                 without it, the node that creates it prints a random one once on standard error
  --secrets-key-file  the cluster master key that encrypts secrets at rest (AES-256-GCM; the same file on
                 every node; aether cluster init writes one); without it secrets are off (503)
  --outbound-allow  hosts slices may call through ctx.infra.http when their manifest declares them too
                 (outbound); host or host:port (bare: ports 80 and 443), * for any declared host;
                 default none: no slice reaches the network
  --api-names    host names the management API answers to besides its bind host, 127.0.0.1 and localhost
                 (a request naming another Host is refused: DNS rebinding)
  --cors-origins origins (https://ops.example) whose pages may call the API; default none
  --labels       this node's labels for placement rules, e.g. zone=a,disk=ssd (blueprint
                 placement = { spread = "zone", require = { disk = "ssd" } }); shown by aether node list
  --closed-probes  /api/v1/health and /api/v1/ready need a token too (default: open)
  --fsync        always: every consensus step is fsynced before it is acknowledged or sent (default)
                 never: written to the OS before it is acknowledged; survives a process crash, not power loss
  --log-level    debug | info | warn | error
  --log-format   text: one readable line per record (default)
                 json: one JSON object per line: time, level, node, msg and the record's fields
  --artifact-replicas   nodes that store a pushed artifact before the push succeeds (default min(3, members))
  --artifact-max-bytes  largest artifact bundle accepted (default 16 MiB)
  --sandbox      process: each slice instance in its own Deno process, memory bounded (default)
                 worker: each instance in a Web Worker of the node (starts faster; memory not bounded),
                 for slices marked trusted only (see --trust-all-slices)
${SANDBOX_USAGE}
  --http-max-body-bytes largest request body on the application HTTP port (default 1 MiB; 413 beyond)
  --preview-secret-file file holding a preview secret (at least 16 characters): an app-port request with
                 headers x-aether-preview-secret (this secret) and x-aether-version V reaches only version V;
                 without this flag x-aether-version is ignored on the app port
  --snapshot-every-phases  take a snapshot of the state after this many decided phases (default 10000)
  --retained-log-phases    decided phases kept besides those after the snapshot; a member behind by more
                           catches up by snapshot (default 10000)
  --tls-cert, --tls-key  PEM certificate and private key: the management API and the application port
                 serve HTTPS (both flags or neither; "aether cluster init" makes them)
  --tls-ca       PEM cluster CA: the mesh runs over wss:// and accepts only members whose certificate this
                 CA signed (needs --tls-cert and --tls-key)
  --alertmanager send alerts (firing, resolved, re-sent while firing) to this Alertmanager's v2 API, e.g.
                 http://127.0.0.1:9093; may be repeated. Only the leader sends.
  --alert-webhook  POST every alert transition (firing, resolved) as JSON to this URL, retried; may be repeated
  --traces       on: record a span per hop of every request in a bounded ring (the newest 16384 per
                 node) for GET /api/v1/traces and aether trace (default); off: record nothing
  --otlp-endpoint  also send every span as OTLP/HTTP JSON to this collector, e.g. http://127.0.0.1:4318
                 (/v1/traces is added to a URL without a path); batched, bounded queue, retried
  --trace-ring-spans  spans this node keeps for aether trace, the newest (default 16384, about 0.6 KiB
                 each, at most 0.9 KiB; 1 to 262144): an order's 10 spans at 200 orders/s stay 8 s
  --metrics      on: count every slice call and application request by slice version, method and route
                 (GET /metrics, /api/v1/metrics, aether top) (default); off: record no calls or requests
                 (the node's own CPU, memory and consensus figures are still sampled)`;

function flagError(flag: string, message: string): AetherError {
  return new AetherError("invalid_flag", `--${flag}: ${message}`, { flag });
}

export function parsePort(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) throw flagError(flag, `"${text}" is not a port (0-65535)`);
  return port;
}

export function parsePeers(text: string | undefined): PeerAddress[] {
  if (!text) {
    throw flagError("peers", "is required, e.g. n1@127.0.0.1:7101,n2@127.0.0.1:7102,n3@127.0.0.1:7103");
  }
  const peers = text.split(",").map((entry) => {
    const match = /^([^@]+)@(.+):(\d+)$/.exec(entry.trim());
    if (!match) throw flagError("peers", `"${entry}" is not ID@HOST:PORT`);
    const [, id, host, port] = match;
    if (!isNodeId(id)) throw flagError("peers", `"${id}" is not a valid node id`);
    return { id, host: host.replace(/^\[(.*)\]$/, "$1"), port: parsePort("peers", port, 0) };
  });
  const ids = new Set(peers.map((p) => p.id));
  if (ids.size !== peers.length) throw flagError("peers", "lists a member twice");
  if (![1, 3, 5].includes(peers.length)) {
    throw flagError("peers", `lists ${peers.length} members; a cluster has 1, 3 or 5 core members`);
  }
  return peers;
}

export function parseNodeFlags(args: string[]): NodeFlags {
  let values;
  try {
    values = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        id: { type: "string" },
        peers: { type: "string" },
        "api-port": { type: "string" },
        "http-port": { type: "string" },
        "data-dir": { type: "string" },
        "secret-file": { type: "string" },
        host: { type: "string" },
        "api-host": { type: "string" },
        "app-host": { type: "string" },
        "header-timeout-ms": { type: "string" },
        "body-timeout-ms": { type: "string" },
        "idle-timeout-ms": { type: "string" },
        "max-connections": { type: "string" },
        "app-guard": { type: "string" },
        "bootstrap-token-file": { type: "string" },
        "secrets-key-file": { type: "string" },
        "outbound-allow": { type: "string" },
        "api-names": { type: "string" },
        "cors-origins": { type: "string" },
        labels: { type: "string" },
        "closed-probes": { type: "boolean" },
        fsync: { type: "string" },
        "log-level": { type: "string" },
        "log-format": { type: "string" },
        "artifact-replicas": { type: "string" },
        "artifact-max-bytes": { type: "string" },
        sandbox: { type: "string" },
        ...SANDBOX_FLAG_OPTIONS,
        "http-max-body-bytes": { type: "string" },
        "preview-secret-file": { type: "string" },
        "snapshot-every-phases": { type: "string" },
        "retained-log-phases": { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "tls-ca": { type: "string" },
        traces: { type: "string" },
        "otlp-endpoint": { type: "string" },
        "trace-ring-spans": { type: "string" },
        alertmanager: { type: "string", multiple: true },
        "alert-webhook": { type: "string", multiple: true },
        metrics: { type: "string" },
      },
    }).values;
  } catch (e) {
    // parseArgs says e.g. "Unknown option '--foo'"; keep its words, they name the flag.
    throw new AetherError("invalid_flag", (e as Error).message);
  }
  if (!values.id) throw flagError("id", "is required");
  if (!isNodeId(values.id)) throw flagError("id", `"${values.id}" is not a valid node id`);
  const peers = parsePeers(values.peers);
  if (!peers.some((p) => p.id === values.id)) {
    throw flagError(
      "peers",
      `does not list this node ("${values.id}"); list every member, this one included`,
    );
  }
  if (!values["data-dir"]) throw flagError("data-dir", "is required");
  if (!values["secret-file"]) throw flagError("secret-file", "is required");
  const fsync = values.fsync ?? "always";
  if (fsync !== "always" && fsync !== "never") throw flagError("fsync", `"${fsync}" is not always or never`);
  const logLevel = values["log-level"] ?? "info";
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw flagError("log-level", `"${logLevel}" is not debug, info, warn or error`);
  }
  const logFormat = values["log-format"] ?? "text";
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    throw flagError("log-format", `"${logFormat}" is not text or json`);
  }
  const sandbox = values.sandbox ?? "process";
  if (sandbox !== "process" && sandbox !== "worker") {
    throw flagError("sandbox", `"${sandbox}" is not process or worker`);
  }
  const host = parseHost("host", values.host) ?? "127.0.0.1";
  const appGuard = values["app-guard"] ?? "on";
  if (appGuard !== "on" && appGuard !== "off") throw flagError("app-guard", `"${appGuard}" is not on or off`);
  const traces = values.traces ?? "on";
  if (traces !== "on" && traces !== "off") throw flagError("traces", `"${traces}" is not on or off`);
  const metrics = values.metrics ?? "on";
  if (metrics !== "on" && metrics !== "off") throw flagError("metrics", `"${metrics}" is not on or off`);
  const artifactReplicas = positiveInt("artifact-replicas", values["artifact-replicas"]);
  if (artifactReplicas !== undefined && artifactReplicas > peers.length) {
    throw flagError("artifact-replicas", `${artifactReplicas} is more than the ${peers.length} members`);
  }
  return {
    id: values.id,
    peers,
    apiPort: parsePort("api-port", values["api-port"], 8080),
    httpPort: parsePort("http-port", values["http-port"], 8070),
    dataDir: values["data-dir"],
    secretFile: values["secret-file"],
    host,
    apiHost: parseHost("api-host", values["api-host"]) ?? host,
    appHost: parseHost("app-host", values["app-host"]) ?? host,
    serverLimits: {
      headerTimeoutMs: timeoutFlag("header-timeout-ms", values["header-timeout-ms"]) ??
        DEFAULT_SERVER_LIMITS.headerTimeoutMs,
      bodyTimeoutMs: timeoutFlag("body-timeout-ms", values["body-timeout-ms"]) ??
        DEFAULT_SERVER_LIMITS.bodyTimeoutMs,
      idleTimeoutMs: timeoutFlag("idle-timeout-ms", values["idle-timeout-ms"]) ??
        DEFAULT_SERVER_LIMITS.idleTimeoutMs,
      maxConnections: positiveInt("max-connections", values["max-connections"]) ??
        DEFAULT_SERVER_LIMITS.maxConnections,
    },
    appGuard: appGuard === "on",
    bootstrapTokenFile: values["bootstrap-token-file"] || undefined,
    secretsKeyFile: values["secrets-key-file"] || undefined,
    outboundAllow: outboundAllowFlag(values["outbound-allow"]),
    apiNames: listFlag("api-names", values["api-names"], /^[A-Za-z0-9.:_\[\]-]{1,253}$/),
    corsOrigins: listFlag("cors-origins", values["cors-origins"], /^https?:\/\/[A-Za-z0-9.:\[\]-]+$/),
    closedProbes: values["closed-probes"] ?? false,
    labels: labelsFlag(values.labels),
    fsync,
    logLevel: logLevel as NodeFlags["logLevel"],
    logFormat: logFormat as LogFormat,
    artifactReplicas,
    sandbox,
    ...parseSandboxFlags(values),
    artifactMaxBytes: positiveInt("artifact-max-bytes", values["artifact-max-bytes"]) ??
      DEFAULT_ARTIFACT_MAX_BYTES,
    httpMaxBodyBytes: positiveInt("http-max-body-bytes", values["http-max-body-bytes"]) ??
      DEFAULT_HTTP_MAX_BODY_BYTES,
    ...previewSecretFlag(values["preview-secret-file"]),
    snapshotEveryPhases: positiveInt("snapshot-every-phases", values["snapshot-every-phases"]) ??
      DEFAULT_SNAPSHOT_EVERY_PHASES,
    retainedLogPhases: positiveInt("retained-log-phases", values["retained-log-phases"]) ??
      DEFAULT_RETAINED_LOG_PHASES,
    tls: tlsFlags(values["tls-cert"], values["tls-key"], values["tls-ca"]),
    traces: traces === "on",
    otlpEndpoint: otlpFlag(values["otlp-endpoint"]),
    traceRingSpans: ringSpansFlag(values["trace-ring-spans"]),
    alertmanagers: (values.alertmanager ?? []).map((url) => httpUrlFlag("alertmanager", url)),
    alertWebhooks: (values["alert-webhook"] ?? []).map((url) => httpUrlFlag("alert-webhook", url)),
    metrics: metrics === "on",
  };
}

/** An http(s) URL without credentials, or a flag error naming `flag`. */
function httpUrlFlag(flag: string, text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw flagError(flag, `"${text}" is not a URL (e.g. http://127.0.0.1:9093)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw flagError(flag, `"${text}" is not an http:// or https:// URL`);
  }
  if (url.username || url.password) throw flagError(flag, "put no credentials in the URL");
  return text.replace(/\/+$/, "");
}

function ringSpansFlag(text: string | undefined): number {
  const spans = positiveInt("trace-ring-spans", text) ?? DEFAULT_SPAN_RING_CAPACITY;
  if (spans > MAX_SPAN_RING_CAPACITY) {
    throw flagError("trace-ring-spans", `${spans} is more than ${MAX_SPAN_RING_CAPACITY}`);
  }
  return spans;
}

function otlpFlag(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    return otlpTracesUrl(text);
  } catch (e) {
    throw flagError("otlp-endpoint", (e as Error).message);
  }
}

function tlsFlags(
  cert: string | undefined,
  key: string | undefined,
  ca: string | undefined,
): TlsFiles | undefined {
  if (cert === "" || key === "" || ca === "") {
    const flag = cert === "" ? "tls-cert" : key === "" ? "tls-key" : "tls-ca";
    throw flagError(flag, "needs a file");
  }
  if (cert === undefined && key === undefined) {
    if (ca !== undefined) throw flagError("tls-ca", "needs --tls-cert and --tls-key too");
    return undefined;
  }
  if (cert === undefined) throw flagError("tls-cert", "is required with --tls-key (both or neither)");
  if (key === undefined) throw flagError("tls-key", "is required with --tls-cert (both or neither)");
  return { certFile: cert, keyFile: key, ...(ca === undefined ? {} : { caFile: ca }) };
}

/** Reads the TLS files and checks them: PEM, the key is the certificate's, the CA (if given) signed it. */
export async function readTls(files: TlsFiles): Promise<TlsMaterial> {
  const read = async (flag: string, path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw flagError(flag, `cannot read "${path}": ${(e as Error).message}`);
    }
  };
  const cert = await read("tls-cert", files.certFile);
  const key = await read("tls-key", files.keyFile);
  const ca = files.caFile === undefined ? undefined : await read("tls-ca", files.caFile);
  const parsed = parsePem("tls-cert", files.certFile, () => new X509Certificate(cert));
  const privateKey = parsePem("tls-key", files.keyFile, () => createPrivateKey(key));
  if (!parsed.checkPrivateKey(privateKey)) {
    throw flagError("tls-key", `"${files.keyFile}" is not the private key of "${files.certFile}"`);
  }
  if (ca !== undefined) {
    // A bundle (several CAs, while the CA is rotated) is accepted when any of them signed the certificate.
    const blocks = ca.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [ca];
    const authorities = blocks.map((block) =>
      parsePem("tls-ca", files.caFile!, () => new X509Certificate(block))
    );
    if (!authorities.some((authority) => parsed.verify(authority.publicKey))) {
      throw flagError("tls-cert", `"${files.certFile}" is not signed by the CA in "${files.caFile}"`);
    }
  }
  return { cert, key, ...(ca === undefined ? {} : { ca }) };
}

function parsePem<T>(flag: string, path: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    throw flagError(
      flag,
      `"${path}" is not a PEM ${flag === "tls-key" ? "private key" : "certificate"}: ${(e as Error).message}`,
    );
  }
}

/** `--outbound-allow`: each entry canonical (runtime/infra-host/http_client.ts); a bad one names the flag. */
function outboundAllowFlag(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  try {
    return parseAllowList(text).map((r) =>
      r.any ? "*" : r.port === undefined ? r.host : `${r.host}:${r.port}`
    );
  } catch (e) {
    throw new AetherError("invalid_flag", (e as Error).message);
  }
}

/** A comma-separated list; every entry must match `pattern` (the problem names the entry). */
function listFlag(flag: string, text: string | undefined, pattern: RegExp): string[] {
  if (text === undefined) return [];
  const entries = text.split(",").map((e) => e.trim()).filter((e) => e !== "");
  for (const entry of entries) {
    if (!pattern.test(entry)) throw flagError(flag, `"${entry}" is not a valid entry`);
  }
  return entries;
}

/** A bind address: an IP literal or a host name (an IPv6 literal may come in brackets). */
export function parseHost(flag: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const host = text.replace(/^\[(.*)\]$/, "$1");
  if (!/^[A-Za-z0-9.:%_-]{1,253}$/.test(host) || !/[A-Za-z0-9:]/.test(host)) {
    throw flagError(flag, `"${text}" is not an address to bind (an IP address or a host name)`);
  }
  return host;
}

/** Timers hold at most 2^31-1 ms; a longer one would fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;

function timeoutFlag(flag: string, text: string | undefined): number | undefined {
  const ms = positiveInt(flag, text);
  if (ms !== undefined && ms > MAX_TIMEOUT_MS) throw flagError(flag, `${ms} is over ${MAX_TIMEOUT_MS} ms`);
  return ms;
}

function positiveInt(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9]\d{0,14}$/.test(text)) throw flagError(flag, `"${text}" is not a positive integer`);
  return Number(text);
}

/** Reads and checks the cluster secret; a missing or short secret is a flag error. */
export async function readSecret(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw flagError("secret-file", `cannot read "${path}": ${(e as Error).message}`);
  }
  const text = new TextDecoder().decode(bytes).trim();
  if (text.length < 16) {
    throw flagError("secret-file", `"${path}" holds ${text.length} characters; need at least 16`);
  }
  return new TextEncoder().encode(text);
}

/** `--preview-secret-file FILE`: the secret it holds (trimmed, at least 16 characters). */
function previewSecretFlag(path: string | undefined): { previewSecret?: string } {
  if (path === undefined) return {};
  let text: string;
  try {
    text = Deno.readTextFileSync(path).trim();
  } catch (e) {
    throw flagError("preview-secret-file", `cannot read "${path}": ${(e as Error).message}`);
  }
  if (text.length < 16) {
    throw flagError("preview-secret-file", `"${path}" holds ${text.length} characters; need at least 16`);
  }
  return { previewSecret: text };
}

/** `--labels zone=a,disk=ssd`; a bad pair is a usage error naming it. */
function labelsFlag(text: string | undefined): Record<string, string> {
  try {
    return parseNodeLabels(text ?? "", "--labels");
  } catch (e) {
    throw new AetherError("invalid_flag", (e as Error).message, { flag: "labels" });
  }
}
