/**
 * How `aether` commands are started: the permissions each command's own process runs with (the installed
 * launcher, the self-contained dist/aether and the deno.json tasks all use this table, and a test holds them to
 * it), and `launchNode`, which `aether node` runs: it starts the real node process with the narrow permissions
 * its own flags call for (data directory, secret file; see node/permissions.ts). Standard streams are inherited,
 * so the node's ready line and logs pass straight through and the node exits when standard input closes; SIGTERM
 * and SIGINT are forwarded; the launcher exits with the node's exit code.
 */

import { parseArgs } from "node:util";
import { nodeCommandArgs } from "./node/mod.ts";

/** The commands whose processes get their own permission set; every other first word is a CLI command. */
export type LaunchedCommand = "node" | "forge" | "cli";

/**
 * Deno permission flags per command, for the process that runs runtime/main.ts.
 *
 * - node: only enough to start the narrow node process (read: the project, to load this module; run: the Deno
 *   binary itself). The node's own permissions come from nodePermissionFlags, never from here.
 * - forge: reads the project (examples, its own code), writes only `.forge/` under the working directory,
 *   starts node processes and `deno install`, talks to its nodes on loopback, and reads the environment
 *   (NO_COLOR, the terminal, and what npm packages read as they load).
 * - cli: talks to any node (net), reads blueprints and bundles, writes what `slice init`/`slice build` make,
 *   runs `deno bundle` for `slice build`, reads AETHER_CONNECT and the like. This is the widest set; it is
 *   still a process that only ever acts on behalf of the user at the keyboard.
 *
 * `at.deno` is the Deno binary that will run the command (node may start only that binary), `at.root` the
 * directory holding runtime/ and deno.json.
 */
export function commandPermissions(command: LaunchedCommand, at: { deno: string; root: string }): string[] {
  switch (command) {
    case "node":
      return [`--allow-read=${at.root}`, `--allow-run=${at.deno}`];
    case "forge":
      return ["--allow-read", "--allow-write=.forge", "--allow-run", "--allow-net=127.0.0.1", "--allow-env"];
    case "cli":
      return ["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-run"];
  }
}

/**
 * `aether node <word>` words that are CLI commands against the API (`aether node drain n2`), not flags of a
 * node process; they get the CLI's permissions.
 */
export const NODE_CLI_SUBCOMMANDS: readonly string[] = ["list", "cordon", "drain", "uncordon"];

/** Which permission set a command line's first words select. */
export function launchedCommand(firstArg: string | undefined, secondArg?: string): LaunchedCommand {
  if (firstArg === "node" && secondArg !== undefined && NODE_CLI_SUBCOMMANDS.includes(secondArg)) {
    return "cli";
  }
  return firstArg === "node" || firstArg === "forge" ? firstArg : "cli";
}

/** `aether node <flags>`: starts the node process with its narrow permissions; resolves to its exit code. */
export async function launchNode(args: string[]): Promise<number> {
  // Only the two paths matter here; the node itself validates every flag and reports problems.
  const { values } = parseArgs({
    args,
    strict: false,
    options: { "data-dir": { type: "string" }, "secret-file": { type: "string" } },
  });
  const dataDir = typeof values["data-dir"] === "string" ? values["data-dir"] : ".aether-data";
  const secretFile = typeof values["secret-file"] === "string" ? values["secret-file"] : "secret";

  const child = new Deno.Command(Deno.execPath(), {
    args: nodeCommandArgs({ dataDir, secretFile, nodeArgs: args }),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();

  const forward = (signal: "SIGTERM" | "SIGINT") => () => {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, forward(signal));
  // A node killed by a signal reports 128 + the signal's number, as a shell would.
  return (await child.status).code;
}
