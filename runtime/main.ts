/**
 * The `aether` entry point: `node` runs a cluster member, `forge` a local cluster, anything else is a CLI
 * command against a node's management API.
 */

const [command, ...rest] = Deno.args;

if (command === "node") {
  const { runNode } = await import("./node/mod.ts");
  Deno.exit(await runNode(rest));
} else if (command === "forge") {
  const { runForge } = await import("./forge/mod.ts");
  Deno.exit(await runForge(rest));
} else {
  const { runCli } = await import("./cli/mod.ts");
  Deno.exit(await runCli(Deno.args));
}
