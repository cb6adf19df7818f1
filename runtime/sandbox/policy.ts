/**
 * The node's sandbox policy (what the operator allows slices on this node) and how a manifest's request is
 * narrowed by it. A slice gets the intersection: what it asked for and the operator allows. Everything else is
 * denied: no file system, no subprocesses, no FFI, no system information, no remote imports.
 */

import { AetherError } from "../core/mod.ts";

/**
 * `process`: each instance in its own Deno process with a V8 heap limit and an RSS watchdog (memory is
 * bounded; costs a process per instance). `worker`: each instance in a Web Worker inside the node process
 * (cheaper, but an instance that allocates without bound takes the whole node down: Deno cannot bound a
 * Worker's memory). See the sandbox section of the README for the figures.
 */
export type IsolationMode = "worker" | "process";

export interface SandboxPolicy {
  /** Isolation used for instances on this node. */
  readonly mode: IsolationMode;
  /** Outbound hosts slices may be granted: `"*"` for any, or `host` (any port) / `host:port` entries. */
  readonly net: "*" | readonly string[];
  /** Environment variables slices may be granted (process mode passes only these into the child). */
  readonly env: readonly string[];
  /** Process mode: the most memory (RSS, and the V8 heap) one instance's process may use; at least 96. */
  readonly memoryLimitMb: number;
}

export const DEFAULT_POLICY: SandboxPolicy = Object.freeze({
  mode: "process",
  net: [],
  env: [],
  memoryLimitMb: 256,
});

export interface PermissionGrant {
  /** Granted outbound hosts, as the manifest wrote them. */
  readonly net: readonly string[];
  readonly env: readonly string[];
  /** What the manifest asked for and the policy refused, e.g. `net:api.example.com:443`. */
  readonly denied: readonly string[];
}

function splitHost(entry: string): { host: string; port?: string } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(entry);
  return m ? { host: m[1].toLowerCase(), port: m[2] } : { host: entry.toLowerCase() };
}

/** May `requested` (`host` or `host:port`) be granted under `policy.net`? A bare host asks for every port. */
export function netAllowed(requested: string, allowed: SandboxPolicy["net"]): boolean {
  if (allowed === "*") return true;
  const want = splitHost(requested);
  return allowed.some((entry) => {
    if (entry === "*") return true;
    const have = splitHost(entry);
    if (have.host !== want.host) return false;
    return have.port === undefined || have.port === want.port;
  });
}

/** The manifest's request narrowed by the policy. */
export function grantPermissions(
  requested: { readonly net: readonly string[]; readonly env: readonly string[] },
  policy: SandboxPolicy,
): PermissionGrant {
  const net = requested.net.filter((entry) => netAllowed(entry, policy.net));
  const env = requested.env.filter((name) => policy.env.includes(name));
  const denied = [
    ...requested.net.filter((entry) => !net.includes(entry)).map((entry) => `net:${entry}`),
    ...requested.env.filter((name) => !env.includes(name)).map((name) => `env:${name}`),
  ];
  return { net, env, denied };
}

/** `deno.permissions` of a slice Worker: the grant, and `false` for everything else. */
export function workerPermissions(grant: PermissionGrant): Deno.PermissionOptionsObject {
  return {
    net: grant.net.length > 0 ? [...grant.net] : false,
    env: grant.env.length > 0 ? [...grant.env] : false,
    read: false,
    write: false,
    run: false,
    ffi: false,
    sys: false,
    import: false,
  };
}

/** `--allow-*` flags of a slice child process: the grant only (Deno denies everything not allowed). */
export function processPermissionFlags(grant: PermissionGrant): string[] {
  const flags: string[] = [];
  if (grant.net.length > 0) flags.push(`--allow-net=${grant.net.join(",")}`);
  if (grant.env.length > 0) flags.push(`--allow-env=${grant.env.join(",")}`);
  return flags;
}

/** Checks a policy from configuration; throws a 400 naming the bad field. */
export function validatePolicy(policy: SandboxPolicy): SandboxPolicy {
  if (policy.mode !== "worker" && policy.mode !== "process") {
    throw new AetherError(
      "invalid_flag",
      `sandbox policy: mode must be "worker" or "process", got "${policy.mode}"`,
    );
  }
  if (policy.net !== "*" && (!Array.isArray(policy.net) || policy.net.some((h) => typeof h !== "string"))) {
    throw new AetherError("invalid_flag", `sandbox policy: net must be "*" or a list of host[:port] entries`);
  }
  for (const entry of policy.net === "*" ? [] : policy.net) {
    if (entry.includes(",") || entry.trim() !== entry || entry === "") {
      throw new AetherError("invalid_flag", `sandbox policy: net entry "${entry}" is not host or host:port`);
    }
  }
  if (!Array.isArray(policy.env) || policy.env.some((n) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(n))) {
    throw new AetherError("invalid_flag", `sandbox policy: env must be a list of environment variable names`);
  }
  // An idle sandbox process already uses about 55 MiB.
  if (!Number.isInteger(policy.memoryLimitMb) || policy.memoryLimitMb < 96) {
    throw new AetherError("invalid_flag", `sandbox policy: memoryLimitMb must be an integer of at least 96`);
  }
  return policy;
}
