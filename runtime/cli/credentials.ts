/**
 * Which token the CLI sends, first found wins:
 *   1. `--token TOKEN`
 *   2. `AETHER_TOKEN`
 *   3. `.forge/admin-token` beside the `.forge/forge.json` the CLI found its nodes through, or whose nodes
 *      --connect names (Forge writes it)
 *   4. the credentials file `aether login` writes ($XDG_CONFIG_HOME/aether/credentials, else
 *      ~/.config/aether/credentials; mode 0600), keyed by the cluster's node addresses
 */

import { dirname, join } from "node:path";

export const FORGE_TOKEN_FILE = "admin-token";
/** Clusters one credentials file remembers (a login for more replaces the oldest). */
const MAX_CREDENTIAL_ENTRIES = 256;

export interface CredentialsFile {
  /** Per node address (`http://host:port`): the token to send it. */
  clusters: Record<string, { token: string; savedAt: string }>;
}

export interface TokenChoice {
  token?: string;
  /** Where it came from (for the hint on a 401). */
  source: "--token" | "AETHER_TOKEN" | "credentials" | "forge" | "none";
  path?: string;
}

export function credentialsPath(): string | undefined {
  const xdg = Deno.env.get("XDG_CONFIG_HOME");
  if (xdg) return join(xdg, "aether", "credentials");
  const home = Deno.env.get("HOME");
  return home ? join(home, ".config", "aether", "credentials") : undefined;
}

export function readCredentials(path = credentialsPath()): CredentialsFile {
  if (!path) return { clusters: {} };
  try {
    const value = JSON.parse(Deno.readTextFileSync(path));
    if (value && typeof value === "object" && value.clusters && typeof value.clusters === "object") {
      return value as CredentialsFile;
    }
  } catch {
    // Absent or unreadable: no saved tokens.
  }
  return { clusters: {} };
}

/** Saves `token` for every address in `endpoints`; the file and its directory are private to the user. */
export function saveCredentials(
  endpoints: readonly string[],
  token: string,
  path = credentialsPath(),
): string {
  if (!path) throw new Error("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the credentials");
  const file = readCredentials(path);
  const savedAt = new Date().toISOString();
  for (const endpoint of endpoints) file.clusters[endpoint] = { token, savedAt };
  const entries = Object.entries(file.clusters).sort((a, b) => a[1].savedAt.localeCompare(b[1].savedAt));
  file.clusters = Object.fromEntries(entries.slice(-MAX_CREDENTIAL_ENTRIES));
  Deno.mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  Deno.writeTextFileSync(path, JSON.stringify(file, null, 2) + "\n", { mode: 0o600 });
  Deno.chmodSync(path, 0o600);
  return path;
}

/** The token for a node list, in the order the module comment gives. */
export function chooseToken(
  flag: string | undefined,
  endpoints: readonly string[],
  forgeFile: string | undefined,
): TokenChoice {
  if (flag) return { token: flag, source: "--token" };
  const env = Deno.env.get("AETHER_TOKEN");
  if (env) return { token: env.trim(), source: "AETHER_TOKEN" };
  // Before the credentials file: a Forge cluster is often made anew (--clean) on the same ports, so a token
  // saved for those addresses is likely an old cluster's, while .forge/admin-token is this one's.
  if (forgeFile) {
    const tokenPath = join(dirname(forgeFile), FORGE_TOKEN_FILE);
    try {
      return { token: Deno.readTextFileSync(tokenPath).trim(), source: "forge", path: tokenPath };
    } catch {
      // An older Forge, or not readable: look further.
    }
  }
  const path = credentialsPath();
  const saved = readCredentials(path).clusters;
  for (const endpoint of endpoints) {
    if (saved[endpoint]?.token) return { token: saved[endpoint].token, source: "credentials", path };
  }
  return { source: "none" };
}

/** What the CLI says after a 401: how to supply a token. */
export function tokenHint(choice: TokenChoice): string {
  const how = 'pass --token TOKEN, set AETHER_TOKEN, or run "aether login" once (a local Forge cluster ' +
    "needs none: its .forge/admin-token is used)";
  switch (choice.source) {
    case "none":
      return `no token was sent; ${how}`;
    case "credentials":
      return `the token saved in ${choice.path} was refused; ${how}`;
    case "forge":
      return `the token in ${choice.path} was refused (is this Forge's cluster?); ${how}`;
    default:
      return `the token from ${choice.source} was refused; ${how}`;
  }
}
