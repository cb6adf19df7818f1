/**
 * The `aether` entry point: `node` starts a cluster member (as a child process with the node's narrow
 * permissions, see launch.ts), `forge` a local cluster, anything else is a CLI command against a node's
 * management API. Each branch loads only its own modules, so `aether --help` and `aether status` do not pay
 * for the node's or Forge's code.
 */

/** `deno task node -- --id n1` passes the `--` through; it only separates the task's arguments from deno's. */
const withoutSeparator = (args: string[]) => args[0] === "--" ? args.slice(1) : args;

const args = withoutSeparator(Deno.args);
const [command, ...rest] = args;

// `aether node drain n2` and its siblings are CLI commands (runtime/launch.ts NODE_CLI_SUBCOMMANDS).
const NODE_CLI_SUBCOMMANDS = ["list", "cordon", "drain", "uncordon"];

if (command === "node" && !NODE_CLI_SUBCOMMANDS.includes(rest[0])) {
  const { launchNode } = await import("./launch.ts");
  Deno.exit(await launchNode(withoutSeparator(rest)));
} else if (command === "forge") {
  const { runForge } = await import("./forge/mod.ts");
  Deno.exit(await runForge(withoutSeparator(rest)));
} else {
  const { runCli } = await import("./cli/mod.ts");
  Deno.exit(await runCli(args));
}
