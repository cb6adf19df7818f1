/**
 * The narrow Deno permissions a node process runs with (never -A).
 *
 * Read: the runtime's own code, the slice SDK, installed npm packages, the data directory and the secret file.
 * A slice worker's module loading is checked against these process permissions, not the worker's, so nothing
 * else on disk is readable (see sandbox/ for how bundles are loaded). Write: the data directory only.
 * Net: listening on the node's ports, dialing peers, and the outbound hosts that slices declare (each sandbox
 * is narrowed further to its manifest's hosts). Run: only the Deno binary itself, for process-isolated slice
 * sandboxes (each started with its own narrower permissions). Env: what npm packages read at load time and
 * what sandbox children need to find the module cache. --cached-only: nothing is ever downloaded at run time.
 */

import { fromFileUrl, join, resolve } from "./_path.ts";

/** The repository root: two levels above this file (runtime/node/). */
export const PROJECT_ROOT = resolve(fromFileUrl(new URL("../..", import.meta.url)));

/** The built dashboard the node serves at `/` (`deno task dashboard:build` writes it; it is committed). */
export const DASHBOARD_DIR = join(PROJECT_ROOT, "dashboard", "dist");

export interface NodePermissionInput {
  dataDir: string;
  secretFile: string;
  /** --bootstrap-token-file, when given (read once at start). */
  bootstrapTokenFile?: string;
  /** --secrets-key-file, when given (read once at start). */
  secretsKeyFile?: string;
  /** --tls-cert, --tls-key and --tls-ca, when given (read once at start). */
  tlsFiles?: string[];
  /** --preview-secret-file, when given (read once at start). */
  previewSecretFile?: string;
  projectRoot?: string;
}

export function nodePermissionFlags(input: NodePermissionInput): string[] {
  const root = input.projectRoot ?? PROJECT_ROOT;
  const dataDir = resolve(input.dataDir);
  const readable = [
    join(root, "runtime"),
    join(root, "slices"),
    join(root, "node_modules"),
    join(root, "deno.json"),
    join(root, "deno.lock"),
    join(root, "dashboard", "dist"),
    // The bundled infrastructure services (runtime/infra-host/bundled.ts), read once at start.
    join(root, "infra", "dist"),
    dataDir,
    resolve(input.secretFile),
    ...(input.bootstrapTokenFile ? [resolve(input.bootstrapTokenFile)] : []),
    ...(input.secretsKeyFile ? [resolve(input.secretsKeyFile)] : []),
    ...(input.tlsFiles ?? []).map((file) => resolve(file)),
    ...(input.previewSecretFile ? [resolve(input.previewSecretFile)] : []),
  ];
  return [
    "--unstable-worker-options",
    "--cached-only",
    "--allow-net",
    `--allow-run=${Deno.execPath()}`,
    `--allow-read=${readable.join(",")}`,
    `--allow-write=${dataDir}`,
    "--allow-sys=loadavg,systemMemoryInfo,osUptime,hostname",
    // PGBINARY and PGREPLICATION: the PostgreSQL driver (pg) reads them for every connection, even with every
    // setting given (infra-host/postgres_backend.ts gives all the others, so no other PG* variable is read).
    "--allow-env=NO_COLOR,TERM,DENO_DIR,HOME,XDG_CACHE_HOME,WS_NO_BUFFER_UTIL,WS_NO_UTF_8_VALIDATE,PGBINARY,PGREPLICATION",
  ];
}

/**
 * The full command line (after the deno executable) that starts a node: the node's entry module with the
 * project's configuration named explicitly, so the import map and node_modules are found from any working
 * directory (an installed `aether` runs from wherever its user is).
 */
export function nodeCommandArgs(input: NodePermissionInput & { nodeArgs: string[] }): string[] {
  const root = input.projectRoot ?? PROJECT_ROOT;
  return [
    "run",
    "--config",
    join(root, "deno.json"),
    ...nodePermissionFlags({
      ...input,
      bootstrapTokenFile: input.bootstrapTokenFile ?? flagValue(input.nodeArgs, "--bootstrap-token-file"),
      secretsKeyFile: input.secretsKeyFile ?? flagValue(input.nodeArgs, "--secrets-key-file"),
      previewSecretFile: input.previewSecretFile ?? flagValue(input.nodeArgs, "--preview-secret-file"),
      tlsFiles: input.tlsFiles ??
        ["--tls-cert", "--tls-key", "--tls-ca"].flatMap((flag) => flagValue(input.nodeArgs, flag) ?? []),
    }),
    join(root, "runtime", "node", "entry.ts"),
    ...input.nodeArgs,
  ];
}

/** The value of `--flag VALUE` or `--flag=VALUE` in a node's arguments. */
function flagValue(args: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i].startsWith(`${flag}=`)) return args[i].slice(flag.length + 1);
  }
  return undefined;
}
