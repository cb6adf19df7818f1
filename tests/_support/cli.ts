/** Runs the `aether` CLI (runtime/main.ts) as its own process, the way a user's shell does. */

import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../runtime/main.ts", import.meta.url));

/** What the CLI needs for commands that talk to a node. */
const NETWORK_PERMISSIONS = ["--allow-net", "--allow-read", "--allow-env"];
/** The `cli` task's permissions in deno.json (slice init/build write files and run deno). */
export const CLI_TASK_PERMISSIONS = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-run",
];

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(
  args: string[],
  options: { stdin?: string; cwd?: string; permissions?: string[]; env?: Record<string, string> } = {},
): Promise<CliRun> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...(options.permissions ?? NETWORK_PERMISSIONS), MAIN, ...args],
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}
